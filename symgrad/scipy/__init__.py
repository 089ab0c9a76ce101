"""SciPy's functions on expressions, under SciPy's module and function names
(``from symgrad.scipy.special import erf``). Imports ops only.
"""

from . import linalg, special  # noqa: F401

__all__ = ["linalg", "special"]
