"""Views of a graph for people: an aligned table in evaluation order, Graphviz DOT, and pictures.

Names and statements come from codegen, so the table, the drawing and the emitted code agree.
Imports codegen and errors.
"""

import io
import json
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from . import naming
from .codegen import build_function, tabulated
from .errors import SymgradError


def _kind(data):
    if data["op"] == "var":
        return "input"
    if data["op"] == "const":
        return "const"
    return "grad" if data["derivative"] else "forward"


def describe(graph, outputs, inputs, values=None):
    """One row per node in evaluation order: name, kind, op, shape, code, value (or None).

    ``values`` maps input names to arrays; when given, every node's value is computed.
    """
    rendered = tabulated(graph, outputs, inputs, trace=values is not None)
    computed = {}
    if values is not None:
        function = build_function(rendered.source, rendered.namespace)
        (computed,) = function(*[values[graph.nodes[n]["attrs"]["name"]] for n in inputs])
    rows = []
    for node in rendered.order:
        data = graph.nodes[node]
        if (data["op"] == "const" or node in rendered.folded) and node not in rendered.names:
            continue        # a value known when compiling that the code never reads
        name = rendered.names.get(node)
        code = "; ".join(rendered.statements.get(node, []))
        if name is not None and code.startswith(f"{name} = "):
            code = code[len(name) + 3:]     # the name column says what is assigned
        if data["op"] == "const":
            code = f"constant of shape {data['shape']}"
        rows.append({"node": node, "name": name, "kind": _kind(data), "op": data["op"],
                     "shape": data["shape"], "code": code, "output": node in outputs,
                     "value": computed.get(name) if values is not None else None,
                     "grad_of": rendered.names.get(data["grad_of"]) if data["derivative"]
                     else None})
    _attach_loops(rows, graph, rendered.loops)
    return rows, rendered


def _attach_loops(rows, graph, loops):
    """Give the row of each loop's first scan node a "loop": its view, the statements before its
    steps, and its body's rows (kind "body", each with its own "loop" when it is a loop), once
    however many steps it takes: the body is rendered once."""
    pending = [(rows, graph)]
    while pending:
        scope_rows, scope_graph = pending.pop()
        for row in scope_rows:
            view = loops.get((id(scope_graph), row["node"]))
            if view is None:
                continue
            body_rows = _body_rows(view)
            row["loop"] = {"view": view, "header": view.header, "rows": body_rows}
            pending.append((body_rows, view.plan.graph))


def _body_rows(view):
    """The rows of one step of ``view``'s loop: the slices it reads, the body's nodes in
    evaluation order, and the statements ending the step (the stacked slices, the new carries)."""
    nodes = view.plan.nodes

    def row(node, name, op, shape, code, derivative=False):
        return {"node": node, "name": name, "kind": "body", "op": op, "shape": shape,
                "code": code, "output": False, "value": None, "grad_of": None,
                "derivative": derivative}
    rows = [row(node, view.names[node], "slice", nodes[node]["shape"],
                statement.split(" = ", 1)[-1]) for node, statement in view.slices]
    for node in view.plan.order:
        data = nodes[node]
        statements = view.statements.get(node)
        if data["op"] == "var" or not statements and node not in view.names:
            continue        # a placeholder (named in the loop's line) or a value never read
        name = view.names.get(node)
        code = "; ".join(statements or [])
        if name is not None and code.startswith(f"{name} = "):
            code = code[len(name) + 3:]
        rows.append(row(node, name, data["op"], data["shape"], code, data["derivative"]))
    if view.tail:
        rows.append(row(None, "", "", None, "; ".join(view.tail)))
    return rows


def _expanded(rows):
    """(depth, row) of ``rows`` with each loop's header and body rows after its row (iterative)."""
    out = []
    stack = [(0, iter(rows))]
    while stack:
        depth, pending = stack[-1]
        row = next(pending, None)
        if row is None:
            stack.pop()
            continue
        out.append((depth, row))
        if row.get("loop") is not None:
            stack.append((depth + 1, iter(row["loop"]["rows"])))
    return out


def format_value(value, width=60):
    """A compact rendering of a scalar or an array."""
    if value is None:
        return ""
    if hasattr(value, "nnz"):       # a SciPy sparse matrix (sg.jacobian(..., sparse=True))
        return f"{value.format} {' x '.join(map(str, value.shape))}, {value.nnz} nonzeros"
    array = np.asarray(value)
    if array.shape == ():
        return f"{float(array):.10g}" if array.dtype != bool else str(bool(array))
    text = np.array2string(array, precision=6, separator=", ", threshold=20, max_line_width=10**6)
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def table(rows, show_values):
    """The rows as aligned text; derivative nodes are marked 'grad' and say where they come from."""
    header = ["name", "kind", "op", "shape"] + (["value"] if show_values else []) + ["code"]
    lines = []
    for depth, row in _expanded(rows):
        code = row["code"]
        if row.get("loop") is not None:     # its body's rows follow, one step of the loop
            code = "; ".join(row["loop"]["header"])
        if row["grad_of"]:
            code += f"    (from {row['grad_of']})"
        shape = "" if row["shape"] is None else "()" if row["shape"] == () \
            else "(" + ", ".join(map(str, row["shape"])) + ")"
        cells = ["  │ " * depth + (row["name"] or "") + (" *" if row["output"] else ""),
                 row["kind"], row["op"], shape]
        if show_values:
            cells.append(format_value(row["value"]))
        lines.append(cells + [code])
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) for i in range(len(header) - 1)]

    def join(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1]
    out = [join(header), join(["-" * w for w in widths] + ["-" * 4])]
    out += [join(line).rstrip() for line in lines]
    out.append("(* marks the outputs; kind 'grad' marks the derivative nodes appended to the graph)")
    if any(row.get("loop") is not None for row in rows):
        out.append("(kind 'body' marks one step of a loop, written once however many steps it "
                   "takes)")
    named = sorted((k, f"{row['name']} ({label})") for row in rows
                   for k, label in row.get("labels", ()))
    if named:
        out.append("outputs: " + ", ".join(text for _, text in named))
    return "\n".join(out)


def _quote(text):
    return json.dumps(str(text))


# a graph of more boxes than this is drawn with its chains folded (and then its evaluation order
# cut into blocks, if that is not enough): a picture of thousands of boxes shows nothing
FOLD_ABOVE = 300


@dataclass
class Box:
    """What a picture draws for one node, or for a run of nodes folded together."""
    key: int                # the (last) node it stands for: boxes keep evaluation order by it
    kind: str               # input, const, forward or grad
    output: bool
    lines: list             # the label, one line each
    operands: list = field(default_factory=list)    # keys of the boxes feeding it
    ops: Counter = field(default_factory=Counter)   # the ops of the nodes it stands for
    names: tuple = ()       # the names of its first and last node
    cluster: tuple = ()     # the loops it is drawn in, outermost first: (DOT id, label) each
    row: dict = None        # what the HTML page tells of a box in a loop's body (describe's keys)


def boxes(graph, rows, fold_above=FOLD_ABOVE, bodies=False):
    """The boxes of a picture of ``rows`` (describe's), in evaluation order; folded when there
    are more than ``fold_above``. With ``bodies``, a graph drawn unfolded shows each loop as a
    cluster holding its body's boxes, its placeholders fed by the loop's operands and its scan
    nodes by the body's results; a folded one shows each scan node as one box."""
    if bodies and len(rows) <= fold_above and any(row.get("loop") for row in rows):
        return _boxes_with_bodies(graph, rows)
    shown = {row["node"] for row in rows}
    found = []
    for row in rows:
        lines = _label_lines(row)
        operands = dict.fromkeys(i for i in graph.nodes[row["node"]]["inputs"] if i in shown)
        found.append(Box(row["node"], row["kind"], row["output"], lines, list(operands),
                         Counter([row["op"]]), (lines[0], lines[0])))
    if len(found) > fold_above:
        try:
            found = _in_dependency_order(_fold_trees(found))
        except nx.NetworkXUnfeasible:
            # two folds reading each other (nodes the user built on derivatives can do that):
            # the blocks below alone, which follow evaluation order and cannot
            pass
    size = -(-len(found) // fold_above)
    folded = found
    while len(folded) > fold_above:     # blocks stop where the kind changes: some come short
        folded = _in_dependency_order(_fold_blocks(found, size))
        size += 1
    return folded


_PLACEHOLDER_ROLES = {"carry": "carry in", "x": "slice of a step", "closed": "closed over"}


def _loop_label(view):
    carries = [view.names[p] for p, (role, _) in view.operands.items()
               if role == "carry" and p in view.names]
    label = f"scan over {view.length} steps" + (", last to first" if view.reverse else "") \
        + (f", {view.checkpointing}" if view.checkpointing else "")
    return label + (f"\ncarries: {', '.join(carries)}" if carries else "")


def _body_entries(view, body_rows, prefix, outer_prefix):
    """(key, kind, output, lines, operand keys, loop, row) of a loop body's boxes, in
    evaluation order: its placeholders (fed by the loop's operands) and the nodes it computes."""
    nodes = view.plan.nodes
    row_of = {row["node"]: row for row in body_rows if row["node"] is not None}
    entries = []
    for node in view.plan.order:
        data = nodes[node]
        name = view.names.get(node)
        if data["op"] == "var":
            role, outer = view.operands[node]
            # a slice of a step has its row in the table; a carry or a closed-over value not
            row = row_of.get(node) or {"node": node, "name": name, "kind": "input", "op": "var",
                                       "shape": data["shape"], "code": _PLACEHOLDER_ROLES[role],
                                       "output": False, "value": None, "grad_of": None}
            entries.append((f"{prefix}{node}", "input", False, [name, _PLACEHOLDER_ROLES[role]],
                            [_scoped(outer_prefix, outer)], None, row))
        elif name is not None or node in view.statements:
            row = row_of.get(node) or {"node": node, "name": name, "kind": "body",
                                       "op": data["op"], "shape": data["shape"], "code": "",
                                       "output": False, "value": None, "grad_of": None}
            entries.append((f"{prefix}{node}", _kind(data), False,
                            [name or naming.constant(node), data["op"]],
                            [f"{prefix}{i}" for i in dict.fromkeys(data["inputs"])],
                            row.get("loop"), row))
    return entries


def _scoped(prefix, node):
    return f"{prefix}{node}" if prefix else node


def _boxes_with_bodies(graph, rows):
    """Boxes of ``rows`` with every loop's body in a cluster (iterative over nested loops): the
    body's boxes come before the loop's first scan node, whose box (and its other scan nodes')
    reads the body's results."""
    shown = {row["node"] for row in rows}
    top = [(row["node"], row["kind"], row["output"], _label_lines(row),
            [i for i in dict.fromkeys(graph.nodes[row["node"]]["inputs"]) if i in shown],
            row.get("loop"), None) for row in rows]
    found, emitted, redirected, waiting = [], set(), {}, []
    stack = [(iter(top), "", ())]
    while stack:
        entries, prefix, path = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            if waiting:         # a body ends: its loop's scan node follows, reading its results
                box = waiting.pop()
                box.operands = [k for k in redirected.get(box.key, box.operands) if k in emitted]
                found.append(box)
                emitted.add(box.key)
            continue
        key, kind, output, lines, operands, loop, row = entry
        if loop is not None:
            view = loop["view"]
            body_prefix = f"{prefix}L{key}_"
            for member, result in view.results.items():
                redirected[_scoped(prefix, member)] = [f"{body_prefix}{result}"]
        box = Box(key, kind, output, lines,
                  operands if loop is not None else
                  [k for k in redirected.get(key, operands) if k in emitted],
                  Counter([lines[-1]]), (lines[0], lines[0]), path, row)
        if loop is None:
            found.append(box)
            emitted.add(key)
            continue
        waiting.append(box)
        cluster = path + ((f"cluster_{body_prefix}", _loop_label(view)),)
        stack.append((iter(_body_entries(view, loop["rows"], body_prefix, prefix)),
                      body_prefix, cluster))
    return found


def _in_dependency_order(found):
    """Folded boxes with every operand before its readers, else in their order: a fold stands
    where its last node stood, but a node outside it may read one of its earlier nodes."""
    position = {box.key: k for k, box in enumerate(found)}
    dependencies = nx.DiGraph()
    dependencies.add_nodes_from(position)
    dependencies.add_edges_from((k, box.key) for box in found for k in box.operands)
    by_key = {box.key: box for box in found}
    return [by_key[key] for key in
            nx.lexicographical_topological_sort(dependencies, key=position.get)]


def _label_lines(row):
    name = row["name"] or naming.constant(row["node"])
    lines = [name] if row["kind"] == "input" else [name, row["op"]]
    if row["kind"] == "const":
        lines = [row["code"]]
    if row["value"] is not None:
        lines.append("= " + format_value(row["value"], width=24))
    return lines + [f"out: {label}" for _, label in row.get("labels", ())]


def _merged(members):
    """One box for ``members`` (boxes of one kind, in evaluation order), fed by what feeds any
    of them, labelled by its first and last names and its most frequent ops."""
    inside = {m.key for m in members}
    operands = [k for m in members for k in m.operands if k not in inside]
    ops = sum((m.ops for m in members), Counter())
    summary = ", ".join(f"{op} x{n}" if n > 1 else op for op, n in ops.most_common(3))
    names = (members[0].names[0], members[-1].names[1])
    lines = [f"{names[0]} ... {names[1]}", f"{sum(ops.values())} nodes: {summary}"]
    return Box(members[-1].key, members[0].kind, any(m.output for m in members), lines,
               list(dict.fromkeys(operands)), ops, names)


def _remap(groups):
    """Boxes for groups of boxes, with operands pointing at the groups' keys."""
    merged, key_of = [], {}
    for members, box in groups:
        merged.append(box)
        for member in members:
            key_of[member.key] = box.key
    for box in merged:
        box.operands = list(dict.fromkeys(key_of[k] for k in box.operands if key_of[k] != box.key))
    return merged


def _fold_trees(found):
    """Fold each node that has one reader of its own kind into that reader's box, unless it is
    an output: the forward pass's and the backward pass's runs of single-use values become one
    box each, with the edges between them kept. A fold is a tree whose root comes last; an
    edge leaves it for a box of its kind only from the root, but a box of the other kind may
    read any of its nodes, so the folds are put in dependency order afterwards (and dropped
    when two of them read each other)."""
    kind_of = {box.key: box.kind for box in found}
    same_kind_readers = Counter(k for box in found for k in box.operands
                                if kind_of[k] == box.kind)
    reader_of = {k: box.key for box in found for k in box.operands if kind_of[k] == box.kind}
    root = {}
    for box in reversed(found):         # a reader's root is known before its operands'
        if same_kind_readers[box.key] == 1 and box.kind in ("forward", "grad") \
                and not box.output:
            root[box.key] = root[reader_of[box.key]]
        else:
            root[box.key] = box.key
    members = {}
    for box in found:
        members.setdefault(root[box.key], []).append(box)
    folds = [members[box.key] for box in found if box.key in members]     # roots in order
    return _remap([(fold, fold[0] if len(fold) == 1 else _merged(fold)) for fold in folds])


def _fold_blocks(found, size):
    """Cut evaluation order into blocks of ``size`` boxes of one kind: a summary picture."""
    blocks = []
    for box in found:
        if blocks and len(blocks[-1]) < size and blocks[-1][-1].kind == box.kind:
            blocks[-1].append(box)
        else:
            blocks.append([box])
    return _remap([(block, block[0] if len(block) == 1 else _merged(block)) for block in blocks])


_DOT_STYLES = {"input": 'shape=ellipse, style=filled, fillcolor="#e8f5e9"',
               "const": 'shape=plaintext',
               "forward": 'shape=box, style="rounded,filled", fillcolor="#e3f2fd"',
               "grad": 'shape=box, style="rounded,filled,dashed", fillcolor="#ffe0b2", '
                       'color="#e65100"'}


def dot_source(drawn, title="symgrad"):
    """Graphviz DOT of ``drawn`` (boxes): forward nodes as blue boxes, derivative nodes as dashed
    orange boxes, inputs as ellipses; the outputs have a double border; a loop's body is a
    cluster. Operands feed their consumers in evaluation order."""
    lines = [f"digraph {_quote(title)} {{", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=11];']
    open_clusters = ()
    for box in drawn:
        shared = 0
        while shared < min(len(open_clusters), len(box.cluster)) \
                and open_clusters[shared] == box.cluster[shared]:
            shared += 1
        lines += ["  " * depth + "  }" for depth in range(len(open_clusters), shared, -1)]
        for depth, (identifier, label) in enumerate(box.cluster[shared:], start=shared + 1):
            lines.append("  " * depth + f"subgraph {identifier} {{ label={_quote(label)}; "
                         f'style="rounded"; color="#6a1b9a"; fontname="Helvetica";')
        open_clusters = box.cluster
        extra = ", peripheries=2" if box.output else ""
        lines.append("  " * len(box.cluster)
                     + f"  n{box.key} [label={_quote(chr(10).join(box.lines))}, "
                     f"{_DOT_STYLES[box.kind]}{extra}];")
    lines += ["  " * depth + "  }" for depth in range(len(open_clusters), 0, -1)]
    for box in drawn:
        style = ' [style=dashed, color="#e65100"]' if box.kind == "grad" else ""
        lines += [f"  n{operand} -> n{box.key}{style};" for operand in box.operands]
    lines.append("}")
    return "\n".join(lines) + "\n"


# dot lays out at most this many boxes: the time of its crossing minimisation grows much faster
# than the graph beyond (tests/benchmarks/README.md)
DOT_LIMIT = 150


def write_picture(graph, rows, path):
    """Render the graph to ``path`` (.svg, .png or .pdf): see ``picture``."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix not in ("svg", "png", "pdf"):
        raise SymgradError(f"cannot tell the picture format of {path!r}: use .svg, .png or .pdf "
                           f"(or .html for a page to explore)")
    drawn = picture(graph, rows, suffix)
    try:
        if isinstance(drawn, str):
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(drawn)
        else:
            with open(path, "wb") as handle:
                handle.write(drawn)
    except OSError as error:
        raise SymgradError(f"cannot write {path}: {error.strerror}") from None


def picture(graph, rows, image_format):
    """The graph as "svg" (text), "png" or "pdf" (bytes): by Graphviz's dot when it is installed
    and the picture small enough for it, else drawn here (SVG) or by matplotlib (PNG, PDF), so
    that pictures need nothing beyond pip-installed packages."""
    drawn = boxes(graph, rows, bodies=True)
    executable = shutil.which("dot")
    if executable is None or len(drawn) > DOT_LIMIT:
        if image_format == "svg":
            return svg_source(drawn)
        buffer = io.BytesIO()
        matplotlib_picture(drawn, buffer, image_format)
        return buffer.getvalue()
    result = subprocess.run([executable, f"-T{image_format}"], input=dot_source(drawn).encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise SymgradError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout.decode() if image_format == "svg" else result.stdout


_FILL = {"input": "#e8f5e9", "const": "#ffffff", "forward": "#e3f2fd", "grad": "#ffe0b2"}
_ROW_HEIGHT, _GAP, _CHAR, _LINE = 90, 24, 7.2, 15


def box_size(box):
    """Width and height of a box in pixels, from its label."""
    return max(len(t) for t in box.lines) * _CHAR + 24, len(box.lines) * _LINE + 14


# a frame's margin around its boxes, and the height of its label's lines above them
_FRAME_PAD, _FRAME_LABEL = 10, 12


def _frame_size(content_width, content_height, label):
    lines = label.split("\n")
    width = max(content_width, max(len(t) for t in lines) * _CHAR + 8)
    return width + 2 * _FRAME_PAD, content_height + len(lines) * _LINE + _FRAME_LABEL + _FRAME_PAD


def _arrange(order, operands, widths):
    """Layers of the keys ``order`` (topological) by depth (1 + the deepest operand), each
    ordered by its operands' mean position (one barycentre sweep, enough to keep most edges
    from crossing) and packed from the left: (layers, {key: centre x})."""
    depth, layers = {}, []
    for key in order:
        depth[key] = 1 + max((depth[k] for k in operands[key]), default=-1)
        while len(layers) <= depth[key]:
            layers.append([])
        layers[depth[key]].append(key)
    rank, centre = {}, {}
    for layer in layers:
        def barycentre(key):
            around = operands[key]
            return sum(rank[k] for k in around) / len(around) if around else 0.0
        layer.sort(key=barycentre)
        x = 0.0
        for position, key in enumerate(layer):
            rank[key] = position - len(layer) / 2
            centre[key] = x + widths[key] / 2
            x += widths[key] + _GAP
    return layers, centre


def nested_layout(drawn, arrange=_arrange, centred=False, origin=(_GAP, _GAP)):
    """Places of ``drawn`` with every loop's boxes in a frame of their own, nested loops' frames
    in their loop's: ({key: (x, y, width, height, box)}, {frame id: (x, y, width, height,
    label)} outer frames first, width, height), x and y at the top left, in pixels.

    Each loop is laid out alone, innermost first, and stands in its enclosing loop (or the
    graph) as one block as large as its frame, read by what reads its boxes and reading what
    they read; ``arrange(order, operands, widths)`` lays out the boxes and blocks of one level
    ((layers, centre x of each)). A layer holding a block is as tall as it needs; boxes sit at
    the top of their layer, or centred on its first _ROW_HEIGHT when ``centred``. So frames
    neither overlap each other nor any box outside them."""
    size = {box.key: box_size(box) for box in drawn}
    parent, label, level = {None: None}, {}, {None: 0}
    for box in drawn:
        for depth, (identifier, text) in enumerate(box.cluster):
            parent.setdefault(identifier, box.cluster[depth - 1][0] if depth else None)
            label[identifier] = text
            level[identifier] = depth + 1
    # each box and each frame is one item of the level it sits in; an edge belongs to the
    # deepest level holding both its ends, between the items holding them there
    items = {scope: [] for scope in parent}
    operands = {}
    for box in drawn:
        scope = box.cluster[-1][0] if box.cluster else None
        for identifier, _ in box.cluster:
            if identifier not in operands:
                items[parent[identifier]].append(identifier)
                operands[identifier] = []
        items[scope].append(box.key)
        operands[box.key] = []
    position = {box.key: box for box in drawn}
    for box in drawn:
        for key in box.operands:
            other = position[key].cluster
            shared = 0
            while shared < min(len(other), len(box.cluster)) \
                    and other[shared] == box.cluster[shared]:
                shared += 1
            reader = box.cluster[shared][0] if shared < len(box.cluster) else box.key
            source = other[shared][0] if shared < len(other) else key
            if source not in operands[reader]:
                operands[reader].append(source)
    inner = {}              # scope -> ({item: (x, y) in it}, width, height)
    for scope in sorted(items, key=lambda s: -level[s]):     # innermost first
        graph = nx.DiGraph()
        first = {key: k for k, key in enumerate(items[scope])}
        graph.add_nodes_from(first)
        graph.add_edges_from((k, key) for key in items[scope] for k in operands[key])
        order = list(nx.lexicographical_topological_sort(graph, key=first.get))
        layers, centre = arrange(order, operands, {key: size[key][0] for key in order})
        places, top = {}, 0
        for layer in layers:
            for key in layer:
                width, height = size[key]
                offset = (_ROW_HEIGHT - height) / 2 if centred and key not in label else 0
                places[key] = (centre[key] - width / 2, top + offset)
            # a layer holding a frame leaves room below it for the edges leaving it
            top += max([_ROW_HEIGHT] + [size[key][1] + 2 * _GAP for key in layer if key in label])
        left = min((x for x, _ in places.values()), default=0.0)
        places = {key: (x - left, y) for key, (x, y) in places.items()}
        width = max((x + size[key][0] for key, (x, _) in places.items()), default=0.0)
        if scope is not None:
            height = max(y + size[key][1] for key, (_, y) in places.items())
            size[scope] = _frame_size(width, height, label[scope])
        inner[scope] = places, width, top
    placed, frames = {}, {}
    pending = [(None, origin)]
    while pending:
        scope, (x0, y0) = pending.pop()
        for key, (x, y) in inner[scope][0].items():
            width, height = size[key]
            if key in label:
                frames[key] = (x0 + x, y0 + y, width, height, label[key])
                pending.append((key, (x0 + x + _FRAME_PAD,
                                      y0 + y + label[key].count("\n") * _LINE + _LINE
                                      + _FRAME_LABEL)))
            else:
                placed[key] = (x0 + x, y0 + y, width, height, position[key])
    frames = dict(sorted(frames.items(), key=lambda item: level[item[0]]))
    _, width, height = inner[None]
    return placed, frames, origin[0] + width + _GAP, origin[1] + height


def _edges(placed):
    """(operand's place, reader's place) for every edge of the picture."""
    return [(placed[operand], place) for place in placed.values()
            for operand in place[4].operands]


def svg_source(drawn):
    """The graph as standalone SVG in evaluation order from top to bottom: forward nodes blue,
    derivative nodes dashed orange, inputs green, outputs with a double border."""
    from xml.sax.saxutils import escape
    placed, frames, width, height = nested_layout(drawn)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>'
           '</defs>']
    for x, y, w, h, label in frames.values():
        out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="10" '
                   f'fill="none" stroke="#6a1b9a"/>')
        for i, text in enumerate(label.split("\n")):
            out.append(f'<text x="{x + 8:.1f}" y="{y + _LINE * (i + 1):.1f}" fill="#6a1b9a">'
                       f'{escape(text)}</text>')
    for (ox, oy, ow, oh, _), (x, y, w, h, box) in _edges(placed):
        dash = ' stroke-dasharray="5,3" stroke="#e65100"' if box.kind == "grad" \
            else ' stroke="#555"'
        out.append(f'<line x1="{ox + ow / 2:.1f}" y1="{oy + oh}" x2="{x + w / 2:.1f}" '
                   f'y2="{y}"{dash} marker-end="url(#arrow)"/>')
    for x, y, w, h, box in placed.values():
        stroke = "#e65100" if box.kind == "grad" else "#333"
        dash = ' stroke-dasharray="5,3"' if box.kind == "grad" else ""
        radius = h / 2 if box.kind == "input" else 8
        border = 3 if box.output else 1
        out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{h}" rx="{radius}" '
                   f'fill="{_FILL[box.kind]}" stroke="{stroke}" stroke-width="{border}"{dash}/>')
        for i, text in enumerate(box.lines):
            out.append(f'<text x="{x + w / 2:.1f}" y="{y + 7 + _LINE * (i + 0.8):.1f}" '
                       f'text-anchor="middle">{escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# matplotlib refuses figures of more than 2**16 pixels a side
_MAX_PIXELS = 60_000


def matplotlib_picture(drawn, target, image_format):
    """Draw the layout of svg_source with matplotlib (its Agg canvas, no display needed) into
    ``target``, a path or a binary file, as .png or .pdf: pictures with pip-installed
    dependencies alone."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    except ImportError:
        raise SymgradError(f"drawing .{image_format} without Graphviz's 'dot' needs matplotlib: "
                           f"pip install -e '.[pictures]' in a clone of symgrad") from None
    placed, frames, width, height = nested_layout(drawn)
    dpi = min(100.0, 100.0 * _MAX_PIXELS / max(width, height))    # the layout is at 100 dpi
    figure = Figure(figsize=(width / 100.0, height / 100.0), dpi=dpi)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)            # evaluation order runs downwards, as in the SVG
    axes.set_axis_off()
    points = 72.0 / 100.0               # one layout pixel in points, at the figure's own scale
    for x, y, w, h, label in frames.values():
        axes.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0", fill=False,
                                      edgecolor="#6a1b9a", linewidth=points))
        for i, text in enumerate(label.split("\n")):
            axes.text(x + 8, y + _LINE * (i + 0.5), text, ha="left", va="center",
                      fontsize=12 * points, family="sans-serif", color="#6a1b9a")
    for (ox, oy, ow, oh, _), (x, y, w, h, box) in _edges(placed):
        grad = box.kind == "grad"
        axes.add_patch(FancyArrowPatch((ox + ow / 2, oy + oh), (x + w / 2, y),
                                       arrowstyle="-|>", mutation_scale=10 * points,
                                       linewidth=points, linestyle="--" if grad else "-",
                                       color="#e65100" if grad else "#555555",
                                       shrinkA=0, shrinkB=0))
    for x, y, w, h, box in placed.values():
        grad = box.kind == "grad"
        radius = h / 2 if box.kind == "input" else 8
        axes.add_patch(FancyBboxPatch((x + radius, y + radius), w - 2 * radius, h - 2 * radius,
                                      boxstyle=f"round,pad={radius}", facecolor=_FILL[box.kind],
                                      edgecolor="#e65100" if grad else "#333333",
                                      linewidth=(3 if box.output else 1) * points,
                                      linestyle="--" if grad else "-"))
        for i, text in enumerate(box.lines):
            axes.text(x + w / 2, y + 7 + _LINE * (i + 0.5), text, ha="center", va="center",
                      fontsize=12 * points, family="sans-serif")
    figure.savefig(target, format=image_format, dpi=dpi)
