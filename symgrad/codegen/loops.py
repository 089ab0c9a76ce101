"""Loops in generated code: the scan nodes of one loop (ops.loops: one node per final carry or
stacked value, all of one body and the same operands) are written together, at the first of
them, as a ``for`` loop over the body's own statements. The body is a plan of its own, rendered
by a renderer of the same backend nested in the function's (sharing its names and namespace):
the carries are variables updated at the end of each step, and the stacked values are arrays
allocated before the loop and filled one slice a step.

Only what the function reads is computed: a carry whose final value nobody reads, and that no
read value depends on, is dropped from the loop (a gradient's accumulator that is not asked for).

A checkpointed loop (scan's ``checkpoint=k``) does not store the values it stacks that only
loops running the other way over its steps read (a derivative's residuals): it stores the carry
entering every k-th step instead, and each of those loops runs segment by segment, recomputing
a segment's steps from its first carry into buffers before running its own steps over them.
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
    checkpointing: str = None       # what it keeps or recomputes of a checkpointed loop


def loop_views(renderer):
    """(id of a plan's graph, scan node) -> LoopView of every loop the renderer wrote, nested ones
    too: the renderers of bodies share the dict with their function's."""
    return renderer.__dict__.setdefault("loop_views", {})


def is_loop(data):
    return data["op"] == "scan"


def loop_key(data):
    """What the scan nodes of one loop share: all but which result each is."""
    attrs = data["attrs"]
    return (data["inputs"], attrs["body"], attrs["reverse"], attrs["length"],
            attrs.get("checkpoint"))


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
    plan = renderer.plan
    data = plan.nodes[node]
    segments = _segments(renderer)
    # a value recomputed by the loops reading it has no name: its loop is written all the same
    if node in renderer.names or loop_key(data) in segments.kept:
        step.statements[node] = [f"# not stored: recomputed from a carry kept every "
                                 f"{data['attrs']['checkpoint']} steps, by the loop reading it"] \
            if node in segments.recomputed else []
        return
    attrs = data["attrs"]
    body = attrs["body"]
    members = loops_of(renderer)[loop_key(data)]
    finals, stacked, recomputed = {}, {}, {}
    for member in members:
        kind, which = plan.nodes[member]["attrs"]["output"]
        (finals if kind == "final" else recomputed if member in segments.recomputed
         else stacked).setdefault(which, []).append(member)
    kept = body.needed_carries((), recomputed) if recomputed else []
    carries = body.needed_carries(set(finals) | set(kept), stacked)
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
    checkpoint = attrs.get("checkpoint")
    kept_names = {j: renderer.claim(naming.CHECKPOINTS) for j in kept}
    for j, name in kept_names.items():
        carry_data = body.data(body.carries[j])
        shape = [_segment_count(length, steps, checkpoint),
                 *(str(d) if isinstance(d, int) else renderer.dim(d) for d in carry_data["shape"])]
        loop_lines.extend(renderer.loop_stack_start(name, shape, carry_data["dtype"]))
    if recomputed:
        segments.kept[loop_key(data)] = kept_names
    replayed = [(k, inputs[count_carries + k]) for k in range(count_xs)
                if inputs[count_carries + k] in segments.recomputed]
    index = renderer.claim(naming.STEP)
    renderer.namespace["range"] = range
    backwards = attrs["reverse"]
    last = str(length - 1) if isinstance(length, int) else f"{steps} - 1"
    span = f"{last}, -1, -1" if backwards else steps
    if replayed:
        segment_lines, span, position, closing, buffers = _replay_segment(
            renderer, segments, replayed, steps, backwards)
        loop_lines.extend(segment_lines)
    loop_lines.append(("    " if replayed else "") + f"for {index} in range({span}):  # one step "
                      f"of the loop" + (", last to first" if backwards else ""))
    step_lines = []
    for k, placeholder in enumerate(body.xs):
        name = renderer.claim(naming.SLICE)
        names[placeholder] = name
        if replayed and k in buffers:
            step_lines.append(f"{name} = {buffers[k]}[{position(index)}]")
        else:
            scanned = renderer.operand(inputs[count_carries + k])
            step_lines.append(f"{name} = {renderer.loop_slice(scanned, index)}")
    slice_lines = list(step_lines)
    if kept:
        # the carry entering the first step of each segment, counted in the loop's own order
        counted = f"({last} - {index})" if backwards else index
        step_lines.append(f"if {counted} % {checkpoint} == 0:  # a segment starts: keep its "
                          f"carry")
        for j, name in kept_names.items():
            step_lines.extend(f"    {line}" for line in renderer.loop_stack_put(
                name, f"{counted} // {checkpoint}", carry_names[carries.index(j)]))
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
    loop_lines.extend(("        " if replayed else "    ") + line for line in step_lines)
    if replayed:
        loop_lines.append(closing)
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
         in zip(body.placeholders, roles, inputs)}, results,
        f"a carry kept every {checkpoint} steps" if kept else
        f"segments of {plan.nodes[replayed[0][1]]['attrs']['checkpoint']} steps recomputed"
        if replayed else None)


# -- checkpointed loops: segments recomputed by the loops running the other way ------------------


@dataclass
class Segments:
    """What a plan recomputes of its checkpointed loops: ``recomputed`` maps each stacked scan
    node not stored to its loop's key, ``kept`` each such loop's key to the names of the arrays
    keeping its carries (carry index -> name), once the loop is written."""
    recomputed: dict
    kept: dict


def _segments(renderer):
    """The Segments of the renderer's plan (found once per plan): the stacked values of
    checkpointed loops read by nothing but loops running the other way over the same steps, and
    only as their slices; not those of a loop reading recomputed values (its segments could not
    be run again), and a loop recomputes the values of one loop alone (the first it reads)."""
    plan = renderer.plan
    found = getattr(renderer, "_checkpointed", None)
    if found is not None and found[0] is plan:
        return found[1]
    loops = loops_of(renderer)
    recomputed = {}
    for key, members in loops.items():      # in evaluation order: a loop after those it reads
        forward = plan.nodes[members[0]]["attrs"]
        if forward.get("checkpoint") is None \
                or any(operand in recomputed for operand in _scanned(plan.nodes[members[0]])):
            continue
        for member in members:
            if plan.nodes[member]["attrs"]["output"][0] == "stacked" \
                    and member not in plan.output_set \
                    and all(_runs_back_over(plan, reader, member, forward)
                            for reader in plan.readers.get(member, ())):
                recomputed[member] = key
    for members in loops.values():
        read = [operand for operand in _scanned(plan.nodes[members[0]]) if operand in recomputed]
        for operand in read:
            if recomputed[operand] != recomputed[read[0]]:
                del recomputed[operand]
    segments = Segments(recomputed, {})
    renderer._checkpointed = (plan, segments)
    return segments


def _scanned(data):
    body = data["attrs"]["body"]
    return data["inputs"][len(body.carries):len(body.carries) + len(body.xs)]


def _runs_back_over(plan, reader, value, forward):
    """Whether step ``reader`` is a loop over the steps of the loop of attributes ``forward`` in
    the other order, reading ``value`` only as its slices."""
    if reader.kind != "compute" or reader.node is None or not is_loop(plan.nodes[reader.node]):
        return False
    data = plan.nodes[reader.node]
    attrs = data["attrs"]
    if attrs["reverse"] == forward["reverse"] or attrs["length"] != forward["length"]:
        return False
    first = len(attrs["body"].carries)
    return all(first <= k < first + len(attrs["body"].xs)
               for k, operand in enumerate(data["inputs"]) if operand == value)


def _segment_count(length, steps, checkpoint):
    """Source of the number of segments of ``checkpoint`` steps (the last one shorter)."""
    if isinstance(length, int):
        return str(-(-length // checkpoint))
    return f"({steps} + {checkpoint - 1}) // {checkpoint}"


def _replay_segment(renderer, segments, replayed, steps, backwards):
    """The statements opening one segment of a loop that reads recomputed values (``replayed``:
    (position among its xs, scan node read)): the loop over the segments, the carries of the
    segment's first step taken from the checkpoints, and the forward steps of the segment
    computed again, into buffers. ``backwards`` is the reading loop's direction.

    Returns (those statements, the ``range`` of the reading loop's steps in a segment, a function
    giving a step's position in the buffers, the statement closing a segment, xs position ->
    buffer)."""
    plan = renderer.plan
    forward = plan.nodes[replayed[0][1]]
    attrs = forward["attrs"]
    body, k, length, inputs = attrs["body"], attrs["checkpoint"], attrs["length"], \
        forward["inputs"]
    kept = segments.kept[segments.recomputed[replayed[0][1]]]
    values = list(dict.fromkeys(plan.nodes[node]["attrs"]["output"][1] for _, node in replayed))
    carries = body.needed_carries((), values)
    count_carries, count_xs = len(body.carries), len(body.xs)
    start = renderer.claim(naming.SEGMENT_START)
    stop = renderer.claim(naming.SEGMENT_STOP)
    if backwards:           # the forward loop ran first to last: its segments from the last one
        last_start = str((length - 1) // k * k) if isinstance(length, int) \
            else f"({steps} - 1) // {k} * {k}"
        lines = [f"{stop} = {steps}",
                 f"for {start} in range({last_start}, -1, -{k}):  # the segments of {k} steps, "
                 f"last to first"]
        segment, again, span = f"{start} // {k}", f"{start}, {stop}", \
            f"{stop} - 1, {start} - 1, -1"

        def position(index):
            return f"{index} - {start}"
        closing = f"    {stop} = {start}"
    else:                   # it ran last to first: its segments counted from the end
        first_stop = str((length - 1) % k + 1) if isinstance(length, int) \
            else f"({steps} - 1) % {k} + 1"
        end = str(length + 1) if isinstance(length, int) else f"{steps} + 1"
        lines = [f"{start} = 0",
                 f"for {stop} in range({first_stop}, {end}, {k}):  # the segments of {k} steps, "
                 f"first to last"]
        segment, again, span = f"({steps} - {stop}) // {k}", f"{stop} - 1, {start} - 1, -1", \
            f"{start}, {stop}"

        def position(index):
            return f"{stop} - 1 - {index}"
        closing = f"    {start} = {stop}"
    names, segment_lines = {}, []
    for j in carries:
        names[body.carries[j]] = renderer.claim(naming.CARRY)
        segment_lines.append(f"{names[body.carries[j]]} = {kept[j]}[{segment}]")
    for i, placeholder in enumerate(body.closed):
        names[placeholder] = renderer.operand(inputs[count_carries + count_xs + i])
    # arrays written at a position are made once, for the longest segment (views of their rows
    # outlive a segment); lists filled by appending start again with each segment
    appended = renderer.loop_stack_put is list_stack_put
    longest = str(min(k, length)) if isinstance(length, int) \
        else f"{k} if {steps} > {k} else {steps}"
    buffers, made = {}, []
    for value in values:
        value_data = body.graph._node[value]
        shape = [f"{stop} - {start}" if appended else longest,
                 *(str(d) if isinstance(d, int) else renderer.dim(d) for d in value_data["shape"])]
        buffers[value] = renderer.claim(naming.RECOMPUTED)
        (segment_lines if appended else made).extend(renderer.loop_stack_start(
            buffers[value], shape, value_data["dtype"]))
    index = renderer.claim(naming.STEP)
    segment_lines.append(f"for {index} in range({again}):  # the segment's steps again, from its "
                         f"first carry")
    step_lines = []
    for i, placeholder in enumerate(body.xs):
        names[placeholder] = renderer.claim(naming.SLICE)
        scanned = renderer.operand(inputs[count_carries + i])
        step_lines.append(f"{names[placeholder]} = {renderer.loop_slice(scanned, index)}")
    outputs = [body.carry_out[j] for j in carries] + values
    inner_plan = Plan(body.graph, list(dict.fromkeys(outputs)),
                      [body.carries[j] for j in carries] + list(body.xs) + list(body.closed))
    for memory_pass in renderer.body_passes:
        inner_plan = memory_pass(inner_plan)
    inner = renderer.nested(inner_plan, names)
    step_lines.extend(inner.body())
    for value, name in buffers.items():
        step_lines.extend(renderer.loop_stack_put(name, position(index), inner.operand(value)))
    carry_names = [names[body.carries[j]] for j in carries]
    new = [inner.operand(body.carry_out[j]) for j in carries]
    if new != carry_names:
        step_lines.append(f"{', '.join(carry_names)} = {', '.join(new)}")
    segment_lines.extend(f"    {line}" for line in step_lines or ["pass"])
    lines.extend(f"    {line}" for line in segment_lines)
    read = {k_x: buffers[plan.nodes[node]["attrs"]["output"][1]] for k_x, node in replayed}
    return made + lines, span, position, closing, read


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
