"""Every name symgrad makes or accepts: derivative results (d_out_d_x, d2_out_d_x2, hvp_out_x),
the temporaries, constants and helpers of generated code (t0, c0, dim_n), and what a name written
into source must be. Which node gets which name stays with the caller (graph's hints, codegen's
table of names). Sits below graph: imports nothing from symgrad but errors.
"""

import itertools
import keyword
import re

from .errors import SymgradError

# Names the emitted source itself relies on; a variable with one of these names is renamed.
RESERVED = frozenset({"np", "special", "linalg", "stride_tricks", "float", "_sg_ws", "_sg_take",
                      "_sg_give", "_sg_compress", "sparse", "range"})
# The entries' own names (an input with one of them is renamed in the entry).
SCALAR_NAMES = frozenset({"math", "_sg_self", "_sg_missing", "_sg_float", "_sg_general",
                          "_sg_extra", "_sg_unexpected", "_sg_refusals", "type", "_sg_body", "_sg_ndarray",
                          "_sg_float64", "_sg_float32", "_sg_float64_scalar"})
# What a derivative's name says for a function or a variable that is an expression, not a variable
FUNCTION_LABEL = "out"
EXPRESSION_LABEL = "t"
# The variables of the loops over blocks of rows (codegen's blocked sums)
BLOCK_LOOP = ("rows", "block")
# The names of a loop's (ops.loops' scan) step index, carries, slices of xs and stacked results
STEP, CARRY, SLICE, STACKED = "step", "carry", "x_step", "stacked"
# ... and those of a checkpointed loop's kept carries, segment bounds and recomputed residuals
CHECKPOINTS, SEGMENT_START, SEGMENT_STOP, RECOMPUTED = "checkpoints", "start", "stop", "recomputed"

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_name(name):
    """A variable name: an ASCII identifier, not a Python keyword, not a dunder.

    Names reach generated source verbatim, so nothing else may pass.

    >>> check_name("x_1")
    'x_1'
    """
    if not isinstance(name, str) or not _VARIABLE_NAME.match(name):
        raise SymgradError(f"variable name {name!r} must be an ASCII identifier "
                           f"(letters, digits and _, not starting with a digit)")
    if keyword.iskeyword(name) or name.startswith("__"):
        raise SymgradError(f"variable name {name!r} is reserved")
    return name


def is_identifier(text):
    """Whether ``text`` can stand as a name in generated source (keywords aside).

    >>> is_identifier("d_out_d_x"), is_identifier("x; y")
    (True, False)
    """
    return isinstance(text, str) and text.isascii() and text.isidentifier()


def checked_identifier(text, what):
    """The last guard before a name is written into source, whoever built the graph (a node added
    with Graph.add never went through check_name).

    >>> checked_identifier("t0", "name")
    't0'
    """
    if not is_identifier(text):
        raise SymgradError(f"{what} {text!r} cannot be written into generated source: it must be "
                           f"an ASCII identifier")
    return text


def is_reserved_function_name(name):
    """Whether a generated function may not be called ``name``: a keyword, a dunder (it would
    rebind the namespace's own entries, def __builtins__ ...) or a name the source relies on.

    >>> is_reserved_function_name("np"), is_reserved_function_name("loss")
    (True, False)
    """
    return name in RESERVED or keyword.iskeyword(name) or str(name).startswith("__")


def derivative_name(kind, function, variables):
    """The name a derivative result suggests: ``kind`` is "hvp" or a derivative ("grad",
    "jacobian", "hessian"), ``function`` the differentiated variable's name, ``variables`` the
    names of those it was differentiated with respect to, outermost last; None stands for an
    expression that is not a variable.

    >>> derivative_name("grad", None, ["x"]), derivative_name("grad", "y", ["x", "x"])
    ('d_out_d_x', 'd2_y_d_x2')
    >>> derivative_name("hessian", None, ["x", "y"]), derivative_name("hvp", None, ["w"])
    ('d2_out_d_x_d_y', 'hvp_out_w')
    """
    base = FUNCTION_LABEL if function is None else function
    labels = [EXPRESSION_LABEL if variable is None else variable for variable in variables]
    if kind == "hvp":
        return f"hvp_{base}_{'_'.join(labels)}"
    if len(labels) == 1:
        return f"d_{base}_d_{labels[0]}"
    if len(set(labels)) == 1:
        return f"d{len(labels)}_{base}_d_{labels[0]}{len(labels)}"
    return f"d{len(labels)}_{base}_" + "_".join(f"d_{label}" for label in labels)


def temporary(index):
    """The ``index``-th intermediate value's name: ``t0``, ``t1``, ..."""
    return f"t{index}"


def constant(index):
    """The name of a constant put in the function's namespace (or drawn in a picture): ``c0``."""
    return f"c{index}"


def dimension(name):
    """The variable holding the run-time length of dimension ``name``: ``dim_n``."""
    return f"dim_{name}"


def kernel(index):
    """The name of the ``index``-th fused loop kernel in the namespace."""
    return f"_sg_kernel_{index}"


# the kernel in its own module (one module per distinct loop body), and its two loops
KERNEL = "_sg_kernel"


# a fused loop's own names (codegen.numba): a kernel's parameters and locals are made here alone,
# so no user text reaches a kernel
LOOP_INDEX = "i"
LOOP_LENGTH = "n"
# a fused loop's parallel form: the range of entries of a chunk, the chunk a thread runs, the
# number of chunks and the chunks' sums
LOOP_START, LOOP_STOP, LOOP_CHUNK, LOOP_CHUNKS, LOOP_PARTIAL = \
    "start", "stop", "chunk", "chunks", "partial"
_KERNEL_LOCALS = {"array": "a", "number": "s", "value": "v", "output": "o", "sum": "r"}


def kernel_local(kind, index):
    """A kernel's ``index``-th name of a kind: an operand "array" (``a0``) or "number" (``s1``),
    the "value" of a member (``v2``), an "output" array (``o2``) or a "sum" (``r3``)."""
    return f"{_KERNEL_LOCALS[kind]}{index}"


# a whole loop's kernel (codegen.numba_loop): its number of steps, what its locals add to the
# names of the body's placeholders (the array a slice is read from, the value a carry starts
# from), an array constant, a number of a loop's pass, and the loops' indices
STEPS, SCANNED, START, CONSTANT, ENTRY = "steps", "scanned", "start", "constant", "entry"


def loop_index(depth):
    """The index of the loop over the ``depth``-th axis in a whole loop's kernel: ``i0``."""
    return f"i{depth}"


def axis_length(index):
    """The ``index``-th length of an axis a whole loop's kernel takes: ``length0``."""
    return f"length{index}"


def suffixed(name, suffix):
    """A name derived from ``name``: a helper of its value (``t3_mask``, ``t1_float64``) or the
    next candidate when it is taken (``x_2``).

    >>> suffixed("x", 2)
    'x_2'
    """
    return f"{name}_{suffix}"


class Namer:
    """Hands out unique Python names, keeping the users' own wherever they are free: a taken name
    or a keyword gets the first free ``_2``, ``_3``... suffix; temporaries skip taken names.

    >>> namer = Namer(taken=["t0"])
    >>> namer.claim("x"), namer.claim("x"), namer.claim("lambda"), namer.temp()
    ('x', 'x_2', 'lambda_2', 't1')
    """

    def __init__(self, taken=()):
        self.taken = set(RESERVED) | set(taken)
        self._temps = itertools.count()

    def claim(self, wanted):
        name = checked_identifier(wanted, "name")
        suffix = 2
        while name in self.taken or keyword.iskeyword(name):
            name = suffixed(wanted, suffix)
            suffix += 1
        self.taken.add(name)
        return name

    def temp(self):
        while True:
            name = temporary(next(self._temps))
            if name not in self.taken:
                self.taken.add(name)
                return name
