"""``scipy.special``'s functions on expressions, with SciPy's names and semantics: each builds
the op of symgrad.ops.special (or sigmoid's, for expit), differentiable to any order.
Imports ops only.
"""

from ..ops.special import erf, erfc, expit, logit, xlogy

__all__ = ["erf", "erfc", "expit", "logit", "xlogy"]
