"""SciPy's functions on expressions, under SciPy's module and function names
(``from symgrad.scipy.special import erf``, ``from symgrad.scipy.signal import convolve2d``).
Imports ops only.
"""

from . import linalg, signal, special, stats  # noqa: F401

__all__ = ["linalg", "signal", "special", "stats"]
