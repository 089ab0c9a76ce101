"""The memory decisions: passes over a plan (symgrad.codegen.plan), each filling in its own
decisions on the steps, each switchable on its own. A backend runs those it can honour, in the
order of ``PASSES`` (numpy runs them all; the array API, whose arrays may be immutable, only
``release_dead_arrays``; a trace, which shows every value, none). Each is tested on its own in
tests/test_memory.py.

- boolean_masks: a unit step read only by products is a boolean mask, a byte an entry.
- writes_into_slices: slicing's cotangent is written straight into the slice of its gradient.
- diagonal_sums: a large derivative's term, a part of eye(n) times values, is added on its
  diagonal alone.
- blocked_sums: a large sum of an array and a term of inputs alone is made in blocks of rows.
- workspace: large intermediates live in arrays the function keeps between calls.
- inline_small_values: a small value read once is written into its reader's expression.
- reuse_buffers: a result is written into the array of an operand dying there (``out=``).
- update_in_place: ... as an augmented assignment (``t1 *= 2.0``) where the op has one.
- release_dead_arrays: an array is released (``del``) right after its last use.

Then ``number_workspace_slots`` says which kept array each workspace value lives in.

Imports ops and errors, and codegen.emission; the plan it decides on is codegen.plan's.
"""

import functools
import math
import string

from ..errors import InternalError, SymgradError
from ..ops import OPS, static_shape
from ..ops.shape import _FULL, _NEWAXIS
from .emission import EmitContext, LazyLiterals, emitted, fills_any_buffer, numpy_emitter

# Intermediate arrays of at least this many float64 entries (128 KiB, glibc's default threshold
# for serving an allocation from fresh mmap'd pages) live in a workspace the compiled function
# keeps between calls. A fresh large array costs a page fault per 4 KiB page touched, and glibc
# hands such memory back to the system as soon as a few of them are freed together (what it
# costs a large Rosenbrock HVP: tests/benchmarks/README.md).
WORKSPACE_MIN = 1 << 14
# ... and of at most this many (32 MiB): a workspace array is held from the start of a call to its
# end and between calls, so larger ones (a dense Hessian's n^4-entry intermediates) are fresh
# arrays, released when they die, and the call's peak memory is what is alive at once
# (tests/benchmarks/dense_hessian.py).
WORKSPACE_MAX = 1 << 22
# A sum of a large array and a term computed from inputs alone (a weight decay's 2 c W added to
# W's gradient) of at least this many entries (1 MiB of float64, a core's L2 cache here) is made
# in blocks of rows of about BLOCK_ENTRIES entries: each block of the term is made and added
# while it is in cache, where NumPy would write the whole term to memory and read it back
# (its gain on the MLP: tests/benchmarks/README.md).
BLOCKED_SUM_MIN = 1 << 17
BLOCK_ENTRIES = 1 << 15
# ... and so is one of more than WORKSPACE_MAX entries with a term broadcast from operands of at
# most 1/SPREAD_MIN of its entries each, which would otherwise be a fresh array of the sum's size
SPREAD_MIN = 8
# Values of at most this many entries, read by one statement whose arrays are all that small, are
# written into its expression (inline_small_values): an element-wise chain reads as one line, and
# the unrolled char-RNN of tests/benchmarks/small_arrays.py has 2.8 times fewer statements with
# 1024. Off (0) by default: its time per call there moved within the shared machine's noise
# either way (python tests/benchmarks/small_arrays.py), so programs keep their statements.
SMALL_ARRAY_MAX = 0
# ... and so into one statement of at most this many ops: a sum over an unrolled loop stays a few
# lines, not one line of hundreds of terms that keeps each of them alive until it is read.
SMALL_EXPRESSION_OPS = 6


# The order the decisions are taken in: each reads what those before it decided (reuse_buffers
# keeps a workspace array from an output, release_dead_arrays follows the arrays an update hands
# on...), so a pass refuses to run after one that comes later (decision).
ORDER = ("boolean_masks", "writes_into_slices", "diagonal_sums", "blocked_sums", "workspace",
         "inline_small_values", "reuse_buffers", "update_in_place", "release_dead_arrays")


def decision(memory_pass):
    """A memory pass that records itself on the plan (``plan.decided``) and refuses to run after
    a pass that comes later in ORDER, or twice."""
    rank = ORDER.index(memory_pass.__name__)

    @functools.wraps(memory_pass)
    def run(plan, *args, **kwargs):
        late = [name for name in plan.decided if ORDER.index(name) >= rank]
        if late:
            raise InternalError(f"memory pass {memory_pass.__name__} runs before {late[0]}, "
                                f"not after it (codegen.memory.ORDER)")
        plan.decided.append(memory_pass.__name__)
        return memory_pass(plan, *args, **kwargs)
    return run


# -- what a step makes, as the decisions taken so far have it ---------------------------------------

def plain_compute(plan, step):
    """Whether ``step`` computes one node by the op's own emission: not as a mask, not into a
    slice, not in blocks, not as a slice's array made by its value."""
    return (step.kind == "compute" and not step.mask and step.blocked_term is None
            and not step.in_blocks and not step.inlined and step.node not in plan.into_slice
            and not array_made_by_its_cotangent(plan, step) and not step.diagonal_terms
            and step.node not in plan.diagonal_terms)


def array_made_by_its_cotangent(plan, step):
    """Whether ``step`` is an index_grad whose array its value's step makes (into_slice)."""
    return step.node in plan.slice_arrays


def new_workspace_arrays(plan, step):
    """The nodes ``step`` makes a new array for in the workspace."""
    if step.kind == "group":
        group = step.group
        return [n for n in group.outputs if n in plan.workspace_eligible
                and n not in group.reductions and n not in plan.into_slice
                and plan.nodes[n]["dtype"] != "bool"]
    if step.node in plan.workspace_eligible and step.reuses is None and step.updates is None \
            and plain_compute(plan, step) and fills_any_buffer(plan.nodes[step.node]["op"]):
        return [step.node]
    return []


def fresh_arrays(plan, step):
    """The nodes whose arrays ``step`` leaves fresh, owned by the function alone: only these
    may be taken over by a later step or released early."""
    if step.kind != "compute":
        if step.kind == "group":
            return [n for n in step.group.outputs if n not in step.group.reductions]
        return []
    node = step.node
    if step.in_blocks or step.inlined or node in plan.diagonal_terms:
        return []
    if step.diagonal_terms:
        return [node]
    if step.blocked_term is not None:
        return [node, step.blocked_term]
    if step.mask or node in plan.into_slice or array_made_by_its_cotangent(plan, step):
        return [node]
    data = plan.nodes[node]
    if data["shape"] == ():
        return []
    if not OPS[data["op"]].emit.view or step.reuses is not None or step.updates is not None \
            or new_workspace_arrays(plan, step):
        return [node]
    return []


# -- boolean masks -----------------------------------------------------------------------------------

@decision
def boolean_masks(plan):
    """Give as boolean masks (Emission.numpy_mask) the values that are not outputs, not scalars,
    and read only by products of their own with a floating array, each moved to just after the
    step computing its operand. Only when every input is float64: with float32 ones a number
    meeting a float32 array keeps float32 at run time, where the graph may say float64, so a
    product's dtype could change with the mask."""
    if not plan.float64_only:
        return plan
    nodes = plan.nodes
    for step in plan.node_steps():
        node = step.node
        if node in plan.output_set or nodes[node]["shape"] == () \
                or OPS[nodes[node]["op"]].emit.numpy_mask is None:
            continue
        if all(_multiplies_a_float(plan, reader, node) for reader in plan.readers.get(node, ())):
            step.mask = True
    _masks_after_their_operands(plan)
    return plan


def _multiplies_a_float(plan, step, mask):
    """Whether ``step`` is a float64 product of ``mask`` with another float64 value, not a
    mask itself (two masks multiply as booleans; a float32 constant would make the product
    float32)."""
    nodes = plan.nodes
    if step.kind == "group" or nodes[step.node]["op"] != "multiply" \
            or nodes[step.node]["dtype"] != "float64":
        return False
    other = [operand for operand in nodes[step.node]["inputs"] if operand != mask]
    return (len(other) == 1 and OPS[nodes[other[0]]["op"]].emit.numpy_mask is None
            and plan.operand_dtype(other[0]) == "float64")


def _masks_after_their_operands(plan):
    """Each mask moved to just after the step computing its operand. A mask costs a byte an
    entry to keep, and its operand is then free for its other readers: the last of them can take
    its buffer (a ReLU's pre-activation becomes its activation, in place) or release it, where
    otherwise the operand would live until the backward pass reads it. An operand computed
    inside a group of steps (codegen.numba) keeps its mask where it was."""
    masks = [step for step in plan.steps if step.mask]
    if not masks:
        return
    computed_alone = {step.node for step in plan.steps if step.kind != "group"}
    following = {}      # node -> the mask steps moved right after its step
    for step in masks:
        if plan.nodes[step.node]["inputs"][0] in computed_alone:
            following.setdefault(plan.nodes[step.node]["inputs"][0], []).append(step)
    if not following:
        return
    moved = {id(mask) for masks in following.values() for mask in masks}
    reordered = []
    for step in plan.steps:
        if id(step) not in moved:
            reordered.append(step)
            if step.kind != "group":
                reordered.extend(following.get(step.node, ()))
    plan.steps = reordered
    plan.update_liveness()


# -- writes into slices -----------------------------------------------------------------------------

@decision
def writes_into_slices(plan):
    """Where the op computing a cotangent can write it straight into the slice of the zeros its
    only reader, an index_grad of static shape, starts from: one pass instead of an array and a
    copy (slicing's gradient, as a careful hand writes it). Records {value: index_grad} in
    ``plan.into_slice``; the renderer makes the index_grad's array with its value."""
    nodes = plan.nodes
    for step in plan.node_steps():
        if nodes[step.node]["op"] != "index_grad":
            continue
        value = nodes[step.node]["inputs"][0]
        data = nodes[value]
        readers = plan.readers.get(value, ())
        group = plan.group_of.get(value)
        if group is not None and len(group.shape) != 1:
            continue        # a loop fills a slice only of a vector
        if (len(readers) == 1 and readers[0] is step and value not in plan.output_set
                and fills_any_buffer(data["op"]) and data["shape"] != ()
                and plan.float64_only and data["dtype"] == "float64"
                and static_shape(nodes[step.node]["shape"])
                and not plan.constant_operands(data)):
            plan.into_slice[value] = step.node
            plan.slice_arrays.add(step.node)
    return plan


# -- sums on diagonals -------------------------------------------------------------------------------

@decision
def diagonal_sums(plan):
    """Make a float64 derivative's sum (or difference) of at least BLOCKED_SUM_MIN entries whose
    term is a part of eye(n) times values (a dense Hessian's term, its identity seed spread over
    a factor) by adding the values on the diagonal the part selects, a view of the sum's array,
    where the term would be an array of the sum's size to make, read and add, zeros nearly all
    of it. The other operand is the zeros of a new array when it is such a term too (added on its
    own diagonal), else its array, taken over or copied. Records ``plan.diagonal_terms`` {term:
    (the part of eye(n), the values, the two axes, negated)} and the terms on the sum's step.

    Each entry is what the sum's was: off the diagonal the term adds a zero, and x + 0 is x
    (only a zero's sign may differ); on it, the term is 1.0 * values (or -1.0 * values, and x +
    -v is x - v). Values of inf or nan made 0 * inf = nan off the diagonal: the emitted code
    checks them, and adds such a term whole."""
    nodes = plan.nodes
    decided = False
    for step, data, step_of_node in _large_sums_and_steps(plan):
        shape = data["shape"]
        if not data["derivative"]:
            continue
        first, second = data["inputs"]
        if first == second:
            continue
        terms = {operand: _diagonal_term(plan, operand, shape)
                 for operand in (first, second) if operand in step_of_node
                 and step_of_node[operand].kind == "compute"
                 and operand not in plan.output_set and len(plan.readers[operand]) == 1}
        terms = {term: found for term, found in terms.items() if found is not None}
        if not terms or (data["op"] == "subtract" and first in terms and second not in terms):
            continue            # term - other would start from other's negation: left as it is
        if len(terms) == 1:
            other = first if second in terms else second
            if nodes[other]["op"] in ("var", "const") or nodes[other]["shape"] != shape \
                    or nodes[other]["dtype"] != "float64":
                continue
        step.diagonal_terms = tuple(term for term in (first, second) if term in terms)
        for term, found in terms.items():
            plan.diagonal_terms[term] = found
            step_of_node[term].operands = ()
        # the terms' operands are read where the sum is made, the terms are not
        step.operands = tuple(operand for operand in step.operands if operand not in terms) \
            + tuple(operand for term in terms for operand in nodes[term]["inputs"])
        decided = True
    if decided:
        plan.update_liveness()
    return plan


def _steps_by_node(plan):
    """{node: the step computing it alone} (not in a group of steps); made only when a large sum
    needs it, as most plans have none."""
    return {step.node: step for step in plan.steps if step.kind != "group"}


def _large_sums_and_steps(plan):
    """_large_sums' (step, node data), each with the map from a node to its step, made at the
    first such sum: most plans have none, and then pay nothing for it."""
    step_of_node = None
    for step, data in _large_sums(plan):
        if step_of_node is None:
            step_of_node = _steps_by_node(plan)
        yield step, data, step_of_node


def _large_sums(plan):
    """(step, node data) of each float64 sum or difference of a static shape of at least
    BLOCKED_SUM_MIN entries, not written into a slice nor made on diagonals; none unless every
    input is float64."""
    if not plan.float64_only:
        return
    large = {}              # shape -> whether it is static and that large
    for step in plan.node_steps():
        data = plan.nodes[step.node]
        if data["op"] in ("add", "subtract") and step.node not in plan.into_slice \
                and not step.diagonal_terms and data["dtype"] == "float64":
            shape = data["shape"]
            if shape not in large:
                large[shape] = static_shape(shape) and math.prod(shape) >= BLOCKED_SUM_MIN
            if large[shape]:
                yield step, data


def _diagonal_term(plan, node, shape):
    """(the part, values, (a, b), negated) when ``node`` is a float64 derivative's product of
    ``shape`` of a part of eye(m) (_identity_on_axes), meeting the result's axes a < b, and
    values, any float64 operand; None otherwise."""
    nodes = plan.nodes
    data = nodes[node]
    if data["op"] != "multiply" or not data["derivative"] or data["dtype"] != "float64" \
            or data["shape"] != shape or len(shape) > len(EINSUM_LETTERS):
        return None
    x, y = data["inputs"]
    for factor, values in ((x, y), (y, x)):
        found = _identity_on_axes(plan, factor)
        if found is not None and nodes[values]["dtype"] == "float64":
            (a, b), negated = found
            skipped = len(shape) - len(nodes[factor]["shape"])
            return factor, values, (a + skipped, b + skipped), negated
    return None


def _identity_on_axes(plan, node):
    """((a, b), negated) when ``node`` is eye(m) with axes added (m > 1: ones along axes a < b
    where their indices are equal, zeros elsewhere), or its negation; None otherwise."""
    nodes = plan.nodes
    data = nodes[node]
    negated = data["op"] == "negative"
    if negated:
        data = nodes[data["inputs"][0]]
    if data["op"] != "getitem" or nodes[data["inputs"][0]]["op"] != "identity" \
            or len(nodes[data["inputs"][0]]["attrs"]["shape"]) != 1 \
            or not all(item in (_FULL, _NEWAXIS) for item in data["attrs"]["index"]):
        return None
    axes = tuple(k for k, length in enumerate(data["shape"]) if length != 1)
    return (axes, negated) if len(axes) == 2 else None


# the subscripts a diagonal of an array is written with, np.einsum("ijkj->ikj", t): NumPy's
# einsum gives a writable view of its operand's diagonal
EINSUM_LETTERS = "ijklmnopqrstuvwxyzabcdefgh"


def diagonal_subscripts(ndim, axes):
    """np.einsum's subscripts of the diagonal along ``axes`` (a, b) of an array of ``ndim``
    axes, the diagonal's axis last as in np.diagonal: "ijkj->ikj" for (1, 3) of 4."""
    a, b = axes
    letters = list(EINSUM_LETTERS[:ndim])
    letters[b] = letters[a]
    rest = [letter for k, letter in enumerate(letters) if k not in axes]
    return f"{''.join(letters)}->{''.join(rest)}{letters[a]}"


# -- blocked sums -------------------------------------------------------------------------------------

@decision
def blocked_sums(plan):
    """Make in blocks of rows (BLOCKED_SUM_MIN) a float64 sum or difference, not written into a
    slice, of an array of its shape computed here (not one broadcast) and a term that is an
    element-wise op (Emission.scalar) on inputs of the sum's shape and numbers, or on values
    much smaller than it (_spread_from_small_values), read only there. The term's step then
    computes nothing: the sum's makes it, block by block."""
    nodes = plan.nodes
    spread_terms = False
    for step, data, step_of_node in _large_sums_and_steps(plan):
        first, second = data["inputs"]
        # first - term, or either order of a sum (exactly commutative in floating point)
        for term, other in ((second, first), (first, second))[:2 if data["op"] == "add" else 1]:
            if term != other and term in step_of_node and len(plan.readers[term]) == 1 \
                    and term not in plan.diagonal_terms \
                    and term not in plan.output_set and nodes[other]["op"] not in ("var", "const") \
                    and nodes[other]["shape"] == data["shape"] \
                    and nodes[other]["dtype"] == "float64":
                spread = _spread_from_small_values(plan, term, data["shape"])
                if not spread and not _elementwise_on_inputs(plan, term, data["shape"]):
                    continue
                step.blocked_term = term
                step_of_node[term].in_blocks = True
                if spread:      # the term's operands are now read where the sum is made
                    step.operands = list(step.operands) + list(nodes[term]["inputs"])
                    spread_terms = True
                break
    if spread_terms:
        plan.update_liveness()
    return plan


def _spread_from_small_values(plan, node, shape):
    """Whether ``node`` is a float64 element-wise op of ``shape``, of more than WORKSPACE_MAX
    entries, on values (and numbers) broadcast to it that each have at most 1/SPREAD_MIN as
    many: made whole, it would be a fresh array the sum's size where each block of it is made
    from a few rows of small arrays (a dense Hessian's terms, a part of its identity seed
    times a small factor)."""
    nodes = plan.nodes
    data = nodes[node]
    emit = OPS[data["op"]].emit
    size = math.prod(shape)
    if emit.scalar is None or emit.numpy_into is None or emit.into_positions not in (None, ()) \
            or data["shape"] != shape or data["dtype"] != "float64" or size <= WORKSPACE_MAX:
        return False
    operands = [nodes[i] for i in data["inputs"]]
    return all(o["dtype"] == "float64" and static_shape(o["shape"])
               and math.prod(o["shape"]) * SPREAD_MIN <= size for o in operands) \
        and any(o["shape"] != () for o in operands)


def _elementwise_on_inputs(plan, node, shape):
    """Whether ``node`` is a float64 element-wise op (one with a Python-float form, writing
    every entry of an out= array) of ``shape`` on inputs of that shape and numbers, at least
    one of them an input (ops on constants alone are computed at compile time)."""
    nodes = plan.nodes
    data = nodes[node]
    emit = OPS[data["op"]].emit
    if emit.scalar is None or emit.numpy_into is None or emit.into_positions not in (None, ()) \
            or data["shape"] != shape or data["dtype"] != "float64":
        return False
    operands = [nodes[i] for i in data["inputs"]]
    return all(o["op"] in ("var", "const") and o["shape"] in ((), shape) for o in operands) \
        and any(o["op"] == "var" and o["shape"] == shape for o in operands)


def block_rows(shape):
    """(the shape of one block of rows of an array of ``shape``, (rows of the array, rows of
    the block) per block) for a blocked sum."""
    shape = tuple(shape)
    per_block = max(1, BLOCK_ENTRIES // math.prod(shape[1:]))
    block_shape = (min(per_block, shape[0]), *shape[1:])
    blocks = tuple((slice(start, min(start + per_block, shape[0])),
                    slice(0, min(per_block, shape[0] - start)))
                   for start in range(0, shape[0], per_block))
    return block_shape, blocks


# -- the workspace ----------------------------------------------------------------------------------

@decision
def workspace(plan, minimum=None):
    """Let new arrays of float64 intermediates (not outputs, which the caller keeps) of a static
    shape with at least ``minimum`` (WORKSPACE_MIN) and at most WORKSPACE_MAX entries live in the
    workspace:
    ``plan.workspace_eligible``.
    Not a value read from a transposition: NumPy lays the result out as the transposed operand
    is (K order), which the matrix product reading it next takes faster than a C-ordered buffer
    ((A.T * p) @ A)."""
    if not plan.float64_only:
        return plan
    minimum = WORKSPACE_MIN if minimum is None else minimum
    sized = {}              # shape -> whether its arrays have a workspace's size
    for node in plan.order:
        data = plan.nodes[node]
        shape = data["shape"]
        if not shape or node in plan.output_set or data["dtype"] != "float64":
            continue
        fits = sized.get(shape)
        if fits is None:
            fits = sized[shape] = static_shape(shape) \
                and minimum <= math.prod(shape) <= WORKSPACE_MAX
        if fits and not _reads_a_transpose(plan, data):
            plan.workspace_eligible.add(node)
    return plan


def _reads_a_transpose(plan, data):
    """Whether an operand is a transposition, or a folded view of a constant in another order
    than C's (c.T)."""
    for operand in data["inputs"]:
        value = plan.folded.get(operand)
        if plan.nodes[operand]["op"] == "transpose" or value is not None \
                and value.ndim >= 2 and not value.flags.c_contiguous:
            return True
    return False


# -- small values inlined --------------------------------------------------------------------------

@decision
def inline_small_values(plan, maximum=None):
    """Write a value into the expression of the one statement reading it, where both are plain
    statements of one NumPy expression on static shapes of at most ``maximum``
    (SMALL_ARRAY_MAX) entries, the value is no output and has no readable name of its own, and
    the reader's templates name it once, up to SMALL_EXPRESSION_OPS ops a statement:
    ``t5 = (1.0 - (t3 * t3)) * t4`` where there were three statements. The same operations run
    on the same operands in the same order, so the numbers are those of the separate statements
    (tests/test_memory.py compares random programs bit for bit); each operand of the value is
    read by the reader's step from then on, so no array it reads is released or updated before."""
    maximum = SMALL_ARRAY_MAX if maximum is None else maximum
    if maximum <= 0:
        return plan
    nodes = plan.nodes
    ops = {}            # step -> the ops its statement makes, itself and the values written in

    def small(node):
        shape = nodes[node]["shape"]
        return static_shape(shape) and math.prod(shape) <= maximum

    for step in plan.node_steps():
        node = step.node
        readers = plan.readers.get(node, ())
        if len(readers) != 1 or node in plan.output_set or node in plan.workspace_eligible \
                or not plain_compute(plan, step) \
                or plan.graph.readable_name(node) or not _one_expression(plan, node) \
                or not small(node) or not all(small(operand) for operand in step.operands):
            continue
        reader = readers[0]
        joined = ops.get(id(step), 1) + ops.get(id(reader), 1)
        if not plain_compute(plan, reader) or not small(reader.node) \
                or not all(small(operand) for operand in reader.operands) \
                or joined > SMALL_EXPRESSION_OPS or not _names_once(nodes[reader.node], node):
            continue
        ops[id(reader)] = joined
        step.inlined = True
        reader.operands = (*(o for o in reader.operands if o != node), *step.operands)
        step.operands = ()
    plan.update_liveness()
    return plan


def _one_expression(plan, node):
    """Whether the node is emitted as one expression: its NumPy emission is a template, or an
    emitter giving one expression for these operands (asked with stand-in names for arrays)."""
    data = plan.nodes[node]
    emitter = numpy_emitter(data["op"], data["dtype"])
    if isinstance(emitter, str):
        return True
    args = [plan.literal(i) if plan.is_literal(i) else f"_sg_operand_{k}"
            for k, i in enumerate(data["inputs"])]
    ctx = EmitContext(_StandInNames(), plan.nodes, node, args, "_sg_value",
                      [plan.operand_dtype(i) for i in data["inputs"]])
    try:
        return isinstance(emitted(emitter, ctx, LazyLiterals(data["attrs"])), str)
    except SymgradError:        # an emission refused here is refused when rendered
        return False


class _StandInNames:
    """The naming services of an emission asked for its form only."""

    def dim(self, name):
        raise SymgradError(f"dimension {name!r} is not static")

    def claim(self, wanted):
        return wanted

    def library(self, name, op_name):
        return name


def _names_once(data, operand):
    """Whether the node's templates (its emission, and that into an existing array) read
    ``operand`` once: written in, it is computed once."""
    inputs = data["inputs"]
    template = numpy_emitter(data["op"], data["dtype"])
    if inputs.count(operand) != 1 or not isinstance(template, str):
        return False
    slot = str(inputs.index(operand))
    into = OPS[data["op"]].emit.numpy_into
    templates = [template]
    if into is not None:
        if not isinstance(into, str):
            return False
        templates.append(into)
    for template in templates:
        fields = [field.split(".")[0].split("[")[0]
                  for _, field, _, _ in string.Formatter().parse(template) if field is not None]
        if fields.count(slot) != 1:
            return False
    return True


# -- buffer reuse and updates in place --------------------------------------------------------------

@decision
def reuse_buffers(plan):
    """Write a result into the array of an operand (Emission.numpy_into) that is fresh, of the
    result's shape and dtype, and dies at this very step: saves an allocation, and for large
    arrays the page faults of touching new memory. A blocked sum takes its other operand's array
    the same way, and so does a sum adding one term on its diagonal. An array of the workspace
    is never passed on to an output: the caller keeps what it is given. With float32 inputs a
    Python-number constant keeps float32 at run time, so the buffer's dtype there is not the one
    the graph records: no reuse."""
    if not plan.float64_only:
        return plan
    owned, in_workspace = set(), set()
    for k, step in enumerate(plan.steps):
        if step.kind == "compute" and (step.blocked_term is not None
                                       or len(step.diagonal_terms) == 1):
            other = next(i for i in plan.nodes[step.node]["inputs"]
                         if i not in (step.blocked_term, *step.diagonal_terms))
            if other in owned and plan.last_use.get(other) == k \
                    and (other not in in_workspace or step.node not in plan.output_set):
                step.reuses = other
                if other in in_workspace:
                    in_workspace.add(step.node)
        elif plain_compute(plan, step):
            step.reuses = _dying_operand(plan, step, k, owned, in_workspace)
            if step.reuses is not None and step.reuses in in_workspace:
                in_workspace.add(step.node)
        if plan.workspace_eligible:
            in_workspace.update(new_workspace_arrays(plan, step))
        owned.update(fresh_arrays(plan, step))
    return plan


def _dying_operand(plan, step, k, owned, in_workspace):
    node = step.node
    data = plan.nodes[node]
    if OPS[data["op"]].emit.numpy_into is None or data["shape"] == ():
        return None
    positions = OPS[data["op"]].emit.into_positions
    for position, operand in enumerate(data["inputs"]):
        if positions is not None and position not in positions:
            continue
        if operand not in owned or plan.last_use.get(operand) != k:
            continue        # (most operands: looked at first)
        operand_data = plan.nodes[operand]
        operand_step = plan.step_of.get(operand)
        if (not (operand_step is not None and operand_step.mask)
                and operand_data["shape"] == data["shape"]
                and operand_data["dtype"] == data["dtype"]):
            if operand in in_workspace and node in plan.output_set:
                continue
            return operand
    return None


@decision
def update_in_place(plan):
    """Write a reuse of a dying operand's array as an augmented assignment to it (``t1 *= -2.0``),
    which then carries on under that name, as a careful hand writes it: the same arithmetic as
    ``np.multiply(t1, -2.0, out=t1)``, and cheaper than a ufunc's out= keyword
    (tests/benchmarks/README.md). Not for an output (it keeps its readable name) or a value with
    a readable name, and only where the dying operand is the first, or the op commutes exactly
    in floating point (add, multiply)."""
    for step in plan.steps:
        if step.reuses is None or step.kind != "compute" or step.blocked_term is not None \
                or step.diagonal_terms:
            continue
        data = plan.nodes[step.node]
        if OPS[data["op"]].emit.augmented is None or step.node in plan.output_set \
                or plan.graph.readable_name(step.node):
            continue
        # found by node, not by name: an alias (stop_gradient's operand) reads under the same
        # name, and the node handed on must be the one whose array this is
        position = data["inputs"].index(step.reuses)
        if position == 0 or data["op"] in ("add", "multiply"):
            step.updates, step.reuses = step.reuses, None
    return plan


# -- releases and slots ---------------------------------------------------------------------------

@decision
def release_dead_arrays(plan):
    """Release each fresh array (``del``) right after the step that reads it last; an array an
    update in place handed on lives on under its new node."""
    dying = {}              # step index -> the fresh arrays read last there
    handed_on = set()
    last_use = plan.last_use
    for k, step in enumerate(plan.steps):
        for node in fresh_arrays(plan, step):
            last = last_use.get(node, k)
            if last in dying:
                dying[last].append(node)
            else:
                dying[last] = [node]
        if step.updates is not None:
            handed_on.add(step.updates)
        last_read = dying.pop(k, None)
        step.released = () if last_read is None else [n for n in last_read
                                                      if n not in handed_on]
    return plan


def number_workspace_slots(plan):
    """Give each workspace array a slot: a kept array of its shape that no live value holds
    (freed when its value is released), else a new one. ``plan.slot_shapes`` lists them."""
    free = {}               # shape -> slots no live value holds
    slot_of = {}

    def take(shape):
        slots = free.get(tuple(shape))
        if slots:
            return slots.pop()
        plan.slot_shapes.append(tuple(shape))
        return len(plan.slot_shapes) - 1

    for step in plan.steps:
        if step.blocked_term is not None:
            block_shape, _ = block_rows(plan.nodes[step.node]["shape"])
            step.block_slot = take(block_shape)
        taken_over = step.reuses if step.reuses is not None else step.updates
        if taken_over is not None and taken_over in slot_of:
            slot_of[step.node] = plan.slots[step.node] = slot_of.pop(taken_over)
        for node in new_workspace_arrays(plan, step) if plan.workspace_eligible else ():
            slot_of[node] = plan.slots[node] = take(plan.nodes[node]["shape"])
        if step.block_slot is not None:
            free.setdefault(plan.slot_shapes[step.block_slot], []).append(step.block_slot)
        for node in step.released:
            if node in slot_of:
                slot = slot_of.pop(node)
                free.setdefault(plan.slot_shapes[slot], []).append(slot)
    return plan


# The decisions in the order they run; a backend runs those it can honour. The workspace slots
# are numbered after them all (codegen.numpy.planned), whichever ran.
PASSES = (boolean_masks, writes_into_slices, diagonal_sums, blocked_sums, workspace,
          inline_small_values, reuse_buffers, update_in_place, release_dead_arrays)
