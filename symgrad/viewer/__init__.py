"""The graph as one self-contained HTML page to explore: pan, zoom, search, fold the derivative
nodes appended for each node, and each node's op, shape, value and origin on hover.

The layered layout is computed here; Cytoscape.js (vendor/, with its licence) draws it in the
page. Node descriptions and colours are render's. Imports render and errors.
"""

import html
import json
import re
from collections import Counter
from pathlib import Path

from .. import render
from ..errors import SymgradError

# vertical distance between layers and least horizontal gap between boxes, in page pixels
LAYER_HEIGHT = 90
BOX_GAP = 24
# barycentre sweeps ordering each layer, then sweeps placing it: each is linear in the graph,
# and more than a few move little
ORDER_SWEEPS = 4
PLACE_SWEEPS = 4
# a page of more nodes than this opens with its clusters folded, as pictures fold past it
FOLD_ABOVE = render.FOLD_ABOVE


def _shape_text(shape):
    return "(" + ", ".join(map(str, shape)) + ")"


def _layers(order, operands, readers):
    """Keys by depth: 1 + the deepest operand, then each key that is not a result (sinks keep
    their depth) moved down to just above its first reader, so that a value computed early but
    read late (an input, a slice of one) does not draw a long edge."""
    depth = {}
    for key in order:
        depth[key] = 1 + max((depth[k] for k in operands[key]), default=-1)
    for key in reversed(order):
        if readers[key]:
            depth[key] = min(depth[r] for r in readers[key]) - 1
    layers = [[] for _ in range(1 + max(depth.values(), default=0))]
    for key in order:
        layers[depth[key]].append(key)
    return [layer for layer in layers if layer]


def _ordered(layers, operands, readers):
    """Each layer ordered by the mean relative position of its neighbours, sweeping down (by
    operands) and up (by readers) in turn: Sugiyama's barycentre heuristic, which keeps most
    edges from crossing. A box without neighbours on that side keeps its place."""
    position = {}
    for layer in layers:
        for k, key in enumerate(layer):
            position[key] = (k + 0.5) / len(layer)
    for sweep in range(ORDER_SWEEPS):
        neighbours = operands if sweep % 2 == 0 else readers
        for layer in (layers if sweep % 2 == 0 else reversed(layers)):
            def barycentre(key):
                around = neighbours[key]
                return sum(position[k] for k in around) / len(around) if around \
                    else position[key]
            layer.sort(key=barycentre)
            for k, key in enumerate(layer):
                position[key] = (k + 0.5) / len(layer)
    return layers


def _closest_in_order(desired, widths):
    """x positions in the given order, at least BOX_GAP apart, as close as possible (least
    squares) to ``desired``: the minimum separations turn it into an isotonic regression,
    solved by pooling adjacent violators in linear time."""
    offsets = [0.0]
    for left, right in zip(widths, widths[1:]):
        offsets.append(offsets[-1] + (left + right) / 2 + BOX_GAP)
    pools = []                          # [sum, count] of runs sharing one position
    for target, offset in zip(desired, offsets):
        pools.append([target - offset, 1])
        while len(pools) > 1 and pools[-2][0] * pools[-1][1] > pools[-1][0] * pools[-2][1]:
            total, count = pools.pop()
            pools[-1][0] += total
            pools[-1][1] += count
    placed = []
    for total, count in pools:
        placed += [total / count] * count
    return [x + offset for x, offset in zip(placed, offsets)]


def _arrange(order, operands, widths):
    """Layers of the keys ``order`` (topological), ordered by barycentres, each key then pulled
    towards the mean x of its operands and of its readers in turn: (layers, {key: centre x})."""
    readers = {key: [] for key in order}
    for key in order:
        for k in operands[key]:
            readers[k].append(key)
    layers = _ordered(_layers(order, operands, readers), operands, readers)
    x = {}
    for layer in layers:
        x.update(zip(layer, _closest_in_order([0.0] * len(layer), [widths[k] for k in layer])))
    for sweep in range(PLACE_SWEEPS):
        neighbours = operands if sweep % 2 == 0 else readers
        for layer in (layers if sweep % 2 == 0 else reversed(layers)):
            desired = [sum(x[k] for k in neighbours[key]) / len(neighbours[key])
                       if neighbours[key] else x[key] for key in layer]
            x.update(zip(layer, _closest_in_order(desired, [widths[k] for k in layer])))
    return layers, x


def _placed(drawn):
    """Centres of ``drawn`` (render's boxes) in page pixels, {key: (x, y)}, and each loop's
    frame, {frame id: (x, y, width, height, label)} with x and y at its top left: see layout."""
    placed, frames, _, _ = render.nested_layout(drawn, _arrange, centred=True,
                                                origin=(0.0, -render._ROW_HEIGHT / 2))
    return {key: (x + width / 2, y + height / 2) for key, (x, y, width, height, _) in
            placed.items()}, frames


def layout(drawn):
    """Centres of ``drawn`` (render's boxes) in page pixels, {key: (x, y)}: layers from top to
    bottom in evaluation order, ordered by barycentres, each box then pulled towards the mean
    x of its operands and of its readers in turn; each loop's boxes laid out alone, in a frame
    that stands in its layer as one block."""
    return _placed(drawn)[0]


def _box_size(box):
    """Width and height of a box's label in page pixels, as render's own pictures size it."""
    return (max(len(line) for line in box.lines) * render._CHAR + 24,
            len(box.lines) * render._LINE + 14)


def page_data(graph, rows):
    """What the page shows, as plain data: nodes with their label, details and position,
    edges as pairs of node indices, clusters (the derivative nodes appended for one node,
    when there are two or more) with their members, and loops (a frame holding one step of a
    loop's body, its label the pictures', its members every node in it, nested loops' too)."""
    drawn = render.boxes(graph, rows, fold_above=max(1, len(rows)), bodies=True)  # unfolded
    place, frames = _placed(drawn)
    index = {box.key: k for k, box in enumerate(drawn)}
    row_of = {row["node"]: row for row in rows}
    members = {}
    for box in drawn:
        if box.cluster:
            continue        # a loop's body: its nodes are not the graph's
        data = graph.nodes[box.key]
        if data["derivative"] and data.get("grad_of") is not None:
            members.setdefault(data["grad_of"], []).append(box)
    clusters = [(of, group) for of, group in members.items() if len(group) > 1]
    cluster_of = {box.key: c for c, (_, group) in enumerate(clusters) for box in group}
    loop_of = {identifier: k for k, identifier in enumerate(frames)}     # outer loops first
    loops = [{"label": label, "parent": -1, "members": [], "x": round(x + width / 2, 1),
              "y": round(y + height / 2, 1), "w": round(width, 1), "h": round(height, 1)}
             for x, y, width, height, label in frames.values()]
    nodes = []
    for box in drawn:
        for depth, (identifier, _) in enumerate(box.cluster):
            loops[loop_of[identifier]]["members"].append(len(nodes))
            if depth:
                loops[loop_of[identifier]]["parent"] = loop_of[box.cluster[depth - 1][0]]
        row = box.row if box.row is not None else row_of[box.key]
        width, height = _box_size(box)
        nodes.append({"name": box.lines[0], "label": "\n".join(box.lines), "kind": box.kind,
                      "op": row["op"], "shape": _shape_text(row["shape"]),
                      "value": render.format_value(row["value"], width=200),
                      "from": row["grad_of"], "code": row["code"],
                      "outputs": [label for _, label in row.get("labels", ())],
                      "output": box.output, "x": round(place[box.key][0], 1),
                      "y": place[box.key][1], "w": round(width, 1), "h": height,
                      "cluster": cluster_of.get(box.key, -1),
                      "loop": loop_of[box.cluster[-1][0]] if box.cluster else -1})
    for loop in loops:
        loop["count"] = len(loop["members"])
    folds = []
    for of, group in clusters:
        merged = render._merged(group)
        of_row = row_of.get(of)
        of_name = of_row["name"] if of_row is not None and of_row["name"] else f"node {of}"
        lines = [f"\u2202 {of_name}", merged.lines[1]]
        width = max(len(line) for line in lines) * render._CHAR + 24
        xs = [place[box.key][0] for box in group]
        ys = [place[box.key][1] for box in group]
        folds.append({"of": of_name, "of_op": of_row["op"] if of_row is not None else "",
                      "label": "\n".join(lines), "members": [index[box.key] for box in group],
                      "output": merged.output, "count": len(group),
                      "x": round(sum(xs) / len(xs), 1), "y": round(sum(ys) / len(ys), 1),
                      "w": round(width, 1), "h": len(lines) * render._LINE + 14})
    edges = [[index[k], index[box.key]] for box in drawn for k in box.operands]
    kinds = Counter(box.kind for box in drawn)
    title = f"symgrad graph: {len(nodes)} nodes ({kinds['forward']} forward, " \
        f"{kinds['grad']} derivative, {kinds['input']} inputs)"
    if loops:
        title += f", {len(loops)} loop{'s' if len(loops) > 1 else ''} (one step each)"
    return {"nodes": nodes, "edges": edges, "clusters": folds, "loops": loops,
            "fill": render._FILL, "layerHeight": LAYER_HEIGHT,
            "folded": len(nodes) > FOLD_ABOVE, "title": title}


def _script_json(data):
    """JSON that cannot end the <script> element holding it nor open a comment in it."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _asset(name):
    """A file of this package's data (see pyproject's package-data)."""
    return (Path(__file__).parent / name).read_text(encoding="utf-8")


def html_page(graph, rows):
    """One self-contained HTML page (the library, the script, the style and the graph's data
    inline) that draws the graph of ``rows`` (describe's)."""
    data = page_data(graph, rows)
    library = _asset("vendor/cytoscape.min.js")
    if "</script" in library.lower():
        raise SymgradError("the vendored cytoscape.min.js contains '</script' and cannot be "
                           "inlined: see symgrad/viewer/vendor/README.md")
    parts = {"STYLE": _asset("viewer.css"), "TITLE": html.escape(data["title"]),
             "LIBRARY": library, "DATA": _script_json(data), "VIEWER": _asset("viewer.js")}
    # one pass over the template: a part is never searched for the markers of another
    return re.sub(r"@@([A-Z]+)@@", lambda match: parts[match.group(1)], _asset("page.html"))


def write_page(graph, rows, path):
    """Write the page of ``html_page`` to ``path``."""
    page = html_page(graph, rows)
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(page)
    except OSError as error:
        raise SymgradError(f"cannot write {path}: {error.strerror}") from None
