"""Code generation: a plan of the function (plan), the memory decisions taken on it (memory), and
one renderer per backend writing it out (numpy, scalar, numba, array_api); the entries that
check arguments and compile the source (entry); what an op's emission sees (emission).
Imports ops, naming and errors.
"""

from .array_api import generate_array_api
from .emission import LIBRARIES
from .entry import (build_function, check_least_lengths, generate_entry, least_dimension_lengths,
                    real_argument)
from .numba import generate_numba
from .numpy import generate, tabulated
from .scalar import SCALAR_REFUSALS, generate_scalar, scalar_ready

__all__ = ["LIBRARIES", "SCALAR_REFUSALS", "build_function", "check_least_lengths", "generate",
           "generate_array_api", "generate_entry", "generate_numba", "generate_scalar",
           "least_dimension_lengths", "real_argument", "scalar_ready", "tabulated"]
