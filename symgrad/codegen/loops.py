"""Loops in generated code: the scan nodes of one loop (ops.loops: one node per final carry or
stacked value, all of one body and the same operands) are written together, at the first of
them, as a ``for`` loop over the body's own statements. The body is a plan of its own, rendered
by a renderer of the same backend nested in the function's (sharing its names and namespace):
the carries are variables updated at the end of each step, and the stacked values are arrays
allocated before the loop and filled one slice a step.

Only what the function reads is computed: a carry whose final value nobody reads, and that no
read value depends on, is dropped from the loop (a gradient's accumulator that is not asked for).
Imports ops, naming and errors, and codegen's emission, plan and memory.
"""

from dataclasses import dataclass

from .. import naming
from ..ops import OPS
from .emission import scalar_type
from .memory import boolean_masks, release_dead_arrays, reuse_buffers, update_in_place
from .memory import writes_into_slices
from .plan import Plan

# the memory decisions a loop's body takes (its arrays live for one step: no workspace, whose
# slots are the function's, and no blocked sums, which take one)
BODY_PASSES = (boolean_masks, writes_into_slices, reuse_buffers, update_in_place,
               release_dead_arrays)


@dataclass
class LoopView:
    """What views of a graph (symgrad.render) show of a rendered loop: the statements before its
    steps (the ``for`` line last), the body's plan with each body node's name and statements,
    the statements reading a step's slices and those ending a step, which outer node each
    placeholder stands for (role "carry", "x" or "closed"), and which body node each scan node
    of the loop reads."""
    length: object
    reverse: bool
    header: list
    plan: Plan
    names: dict
    statements: dict
    slices: list
    tail: list
    operands: dict
    results: dict


def loop_views(renderer):
    """(id of a plan's graph, scan node) -> LoopView of every loop the renderer wrote, nested ones
    too: the renderers of bodies share the dict with their function's."""
    return renderer.__dict__.setdefault("loop_views", {})


def is_loop(data):
    return data["op"] == "scan"


def loop_key(data):
    """What the scan nodes of one loop share: all but which result each is."""
    attrs = data["attrs"]
    return (data["inputs"], attrs["body"], attrs["reverse"], attrs["length"])


def loops_of(renderer):
    """loop key -> the scan nodes of that loop in the renderer's plan, in evaluation order."""
    found = getattr(renderer, "_loops", None)
    if found is None:
        found = {}
        for node in renderer.plan.order:
            data = renderer.plan.nodes[node]
            if is_loop(data):
                found.setdefault(loop_key(data), []).append(node)
        renderer._loops = found
    return found


def render_loop(renderer, step, lines):
    """Write the loop of ``step``'s scan node, naming every result of it the plan reads; the
    steps of its other results then write nothing."""
    node = step.node
    if node in renderer.names:
        step.statements[node] = []
        return
    plan = renderer.plan
    data = plan.nodes[node]
    attrs = data["attrs"]
    body = attrs["body"]
    members = loops_of(renderer)[loop_key(data)]
    finals, stacked = {}, {}
    for member in members:
        kind, which = plan.nodes[member]["attrs"]["output"]
        (finals if kind == "final" else stacked).setdefault(which, []).append(member)
    carries = body.needed_carries(finals, stacked)
    inputs = data["inputs"]
    count_carries, count_xs = len(body.carries), len(body.xs)
    outputs = [body.carry_out[j] for j in carries] + list(stacked)
    inner_inputs = [body.carries[j] for j in carries] + list(body.xs) + list(body.closed)
    inner_plan = Plan(body.graph, list(dict.fromkeys(outputs)), inner_inputs)
    for memory_pass in renderer.body_passes:
        inner_plan = memory_pass(inner_plan)

    names = {}
    loop_lines = []
    carry_names = []
    for j in carries:
        name = renderer.claim(naming.CARRY)
        names[body.carries[j]] = name
        carry_names.append(name)
        loop_lines.append(f"{name} = {renderer.operand(inputs[j])}")
    for k, placeholder in enumerate(body.closed):
        names[placeholder] = renderer.operand(inputs[count_carries + count_xs + k])
    length = attrs["length"]
    steps = str(length) if isinstance(length, int) else renderer.dim(length)
    stacks = {}
    for value in stacked:
        value_data = body.graph._node[value]
        shape = [steps, *(str(d) if isinstance(d, int) else renderer.dim(d)
                          for d in value_data["shape"])]
        stacks[value] = renderer.claim(naming.STACKED)
        loop_lines.extend(renderer.loop_stack_start(stacks[value], shape, value_data["dtype"]))
    index = renderer.claim(naming.STEP)
    renderer.namespace["range"] = range
    backwards = attrs["reverse"]
    last = str(length - 1) if isinstance(length, int) else f"{steps} - 1"
    span = f"{last}, -1, -1" if backwards else steps
    loop_lines.append(f"for {index} in range({span}):  # one step of the loop"
                      + (", last to first" if backwards else ""))
    step_lines = []
    for k, placeholder in enumerate(body.xs):
        name = renderer.claim(naming.SLICE)
        names[placeholder] = name
        scanned = renderer.operand(inputs[count_carries + k])
        step_lines.append(f"{name} = {renderer.loop_slice(scanned, index)}")
    slice_lines = list(step_lines)
    views = loop_views(renderer)
    inner = renderer.nested(inner_plan, names)
    step_lines.extend(inner.body())
    body_length = len(step_lines)
    for value, name in stacks.items():
        step_lines.extend(renderer.loop_stack_put(name, index, inner.operand(value)))
    if carries:
        new = [inner.operand(body.carry_out[j]) for j in carries]
        if new != carry_names:
            step_lines.append(f"{', '.join(carry_names)} = {', '.join(new)}")
    if not step_lines:
        step_lines.append("pass")
    loop_lines.extend(f"    {line}" for line in step_lines)
    for value, name in stacks.items():
        value_data = body.graph._node[value]
        shape = [steps, *(str(d) if isinstance(d, int) else renderer.dim(d)
                          for d in value_data["shape"])]
        loop_lines.extend(renderer.loop_stack_end(name, backwards, shape, value_data["dtype"]))
    for position, j in enumerate(carries):
        for member in finals.get(j, ()):
            renderer.names[member] = carry_names[position]
    for value, name in stacks.items():
        for member in stacked[value]:
            renderer.names[member] = name
    step.statements[node] = loop_lines
    lines.extend(loop_lines)
    header_length = loop_lines.index(next(line for line in loop_lines if line.startswith("for ")))
    roles = ["carry"] * count_carries + ["x"] * count_xs + ["closed"] * len(body.closed)
    results = {member: body.carry_out[j] for j in carries for member in finals.get(j, ())}
    results.update((member, value) for value in stacked for member in stacked[value])
    views[(id(plan.graph), node)] = LoopView(
        length, backwards, loop_lines[:header_length + 1], inner_plan, inner.names,
        {n: s for inner_step in inner_plan.steps if inner_step.statements
         for n, s in inner_step.statements.items()},
        list(zip(body.xs, slice_lines)), step_lines[body_length:],
        {placeholder: (role, operand) for placeholder, role, operand
         in zip(body.placeholders, roles, inputs)}, results)


def numpy_slice(array, index):
    """Source of the slice a step reads of a scanned array."""
    return f"{array}[{index}]"


def array_api_slice(array, index):
    return f"{array}[{index}, ...]"    # the standard leaves the other axes' slices implicit


def numpy_stack_start(name, shape, dtype):
    """The statements allocating a stacked result before its loop (NumPy: one array)."""
    return [f"{name} = np.empty({_tuple_source(shape)}, {scalar_type(dtype)})"]


def numpy_stack_put(name, index, value):
    return [f"{name}[{index}] = {value}"]


def numpy_stack_end(name, backwards, shape, dtype):
    return []


def _tuple_source(shape):
    return "(" + ", ".join(shape) + ("," if len(shape) == 1 else "") + ")"


def list_stack_start(name, shape, dtype):
    """The same for arrays that may be immutable (the array API's): a list of the slices,
    stacked after the loop."""
    return [f"{name} = []"]


def list_stack_put(name, index, value):
    return [f"{name}.append({value})"]


def list_stack_end(name, backwards, shape, dtype):
    stacked = f"np.get_at(np.stack({name}), np.s_[::-1, ...])" if backwards \
        else f"np.stack({name})"
    empty = f"np.empty({_tuple_source(shape)}, dtype=np.{dtype})"
    return [f"{name} = {stacked} if {name} else {empty}"]


__all__ = ["BODY_PASSES", "OPS", "is_loop", "render_loop"]
