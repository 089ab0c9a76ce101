"""Views of a graph for people: an aligned table in evaluation order, Graphviz DOT, and pictures.

Names and statements come from codegen, so the table, the drawing and the emitted code agree.
Imports codegen and errors.
"""

import json
import shutil
import subprocess

import numpy as np

from .codegen import SourceGenerator, build_function
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
    generator = SourceGenerator(graph, outputs, inputs)
    generator.augment = False       # every node keeps a name of its own in the table
    source = generator.source(trace=values is not None)
    computed = {}
    if values is not None:
        function = build_function(source, generator.namespace)
        (computed,) = function(*[values[graph.nodes[n]["attrs"]["name"]] for n in inputs])
    rows = []
    for node in generator.order:
        data = graph.nodes[node]
        if data["op"] == "const" and node not in generator.names:
            continue
        name = generator.names.get(node)
        code = "; ".join(s.split(" = ", 1)[1] if i == 0 else s
                         for i, s in enumerate(generator.statements.get(node, [])))
        if data["op"] == "const":
            code = f"constant of shape {data['shape']}"
        rows.append({"node": node, "name": name, "kind": _kind(data), "op": data["op"],
                     "shape": data["shape"], "code": code, "output": node in outputs,
                     "value": computed.get(name) if values is not None else None,
                     "grad_of": generator.names.get(data["grad_of"]) if data["derivative"]
                     else None})
    return rows, generator


def format_value(value, width=60):
    """A compact rendering of a scalar or an array."""
    if value is None:
        return ""
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
    for row in rows:
        code = row["code"]
        if row["grad_of"]:
            code += f"    (from {row['grad_of']})"
        shape = "()" if row["shape"] == () else "(" + ", ".join(map(str, row["shape"])) + ")"
        cells = [row["name"] + (" *" if row["output"] else ""), row["kind"], row["op"], shape]
        if show_values:
            cells.append(format_value(row["value"]))
        lines.append(cells + [code])
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) for i in range(len(header) - 1)]

    def join(cells):
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + cells[-1]
    out = [join(header), join(["-" * w for w in widths] + ["-" * 4])]
    out += [join(line).rstrip() for line in lines]
    out.append("(* marks the outputs; kind 'grad' marks the derivative nodes appended to the graph)")
    return "\n".join(out)


def _quote(text):
    return json.dumps(str(text))


def _dot_nodes(rows, title="symgrad"):
    """Graphviz DOT: forward nodes as blue boxes, derivative nodes as dashed orange boxes, inputs as
    ellipses; the outputs have a double border. Operands feed their consumers in evaluation order."""
    lines = [f"digraph {_quote(title)} {{", "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=11];']
    styles = {"input": 'shape=ellipse, style=filled, fillcolor="#e8f5e9"',
              "const": 'shape=plaintext',
              "forward": 'shape=box, style="rounded,filled", fillcolor="#e3f2fd"',
              "grad": 'shape=box, style="rounded,filled,dashed", fillcolor="#ffe0b2", '
                      'color="#e65100"'}
    names = {row["node"]: row["name"] or f"c{row['node']}" for row in rows}
    for row in rows:
        label = row["name"] if row["kind"] == "input" else f"{names[row['node']]}\n{row['op']}"
        if row["kind"] == "const":
            label = row["code"]
        if row["value"] is not None:
            label += f"\n= {format_value(row['value'], width=30)}"
        extra = ", peripheries=2" if row["output"] else ""
        lines.append(f"  n{row['node']} [label={_quote(label)}, {styles[row['kind']]}{extra}];")
    return lines, names


def dot_source(graph, rows):
    lines, names = _dot_nodes(rows)
    shown = set(names)
    for row in rows:
        inputs = graph.nodes[row["node"]]["inputs"]
        for position, operand in enumerate(inputs):
            if operand in shown:
                style = ' [style=dashed, color="#e65100"]' if row["kind"] == "grad" else ""
                lines.append(f"  n{operand} -> n{row['node']}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_picture(graph, rows, path):
    """Render the graph to ``path``: with Graphviz's dot when it is installed (.svg, .png, .pdf),
    else drawn here (SVG) or by matplotlib (PNG, PDF), so that pictures need nothing beyond
    pip-installed packages."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix not in ("svg", "png", "pdf"):
        raise SymgradError(f"cannot tell the picture format of {path!r}: use .svg, .png or .pdf")
    executable = shutil.which("dot")
    if executable is None:
        try:
            if suffix == "svg":
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(svg_source(graph, rows))
            else:
                matplotlib_picture(graph, rows, path, suffix)
        except OSError as error:
            raise SymgradError(f"cannot write {path}: {error.strerror}") from None
        return
    result = subprocess.run([executable, f"-T{suffix}", "-o", path],
                            input=dot_source(graph, rows).encode(), capture_output=True,
                            check=False)
    if result.returncode != 0:
        raise SymgradError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")


_FILL = {"input": "#e8f5e9", "const": "#ffffff", "forward": "#e3f2fd", "grad": "#ffe0b2"}
_ROW_HEIGHT, _GAP, _CHAR, _LINE = 90, 24, 7.2, 15


def _layers(graph, rows):
    """Rows by depth (1 + the deepest operand), each layer ordered by its operands' mean position
    (one barycentre sweep, enough to keep most edges from crossing)."""
    depth, layers = {}, []
    for row in rows:
        inputs = [i for i in graph.nodes[row["node"]]["inputs"] if i in depth]
        depth[row["node"]] = 1 + max((depth[i] for i in inputs), default=-1)
        while len(layers) <= depth[row["node"]]:
            layers.append([])
        layers[depth[row["node"]]].append(row)
    rank = {}
    for layer in layers:
        def barycentre(row):
            inputs = [rank[i] for i in graph.nodes[row["node"]]["inputs"] if i in rank]
            return sum(inputs) / len(inputs) if inputs else 0.0
        layer.sort(key=barycentre)
        for position, row in enumerate(layer):
            rank[row["node"]] = position - len(layer) / 2
    return layers


def _label_lines(row, names):
    lines = [row["name"] or ""] if row["kind"] == "input" else [names[row["node"]], row["op"]]
    if row["kind"] == "const":
        lines = [row["code"]]
    if row["value"] is not None:
        lines.append("= " + format_value(row["value"], width=24))
    return lines


def _layout(graph, rows):
    """Boxes in evaluation order from top to bottom, in pixels: {node: (x, y, width, height,
    row, label lines)}, and the picture's width and height."""
    _, names = _dot_nodes(rows)
    boxes = {}
    width = 0
    layers = _layers(graph, rows)
    for depth, layer in enumerate(layers):
        x = _GAP
        for row in layer:
            lines = _label_lines(row, names)
            size = max(len(t) for t in lines) * _CHAR + 24
            boxes[row["node"]] = (x, depth * _ROW_HEIGHT + _GAP, size, len(lines) * _LINE + 14,
                                  row, lines)
            x += size + _GAP
        width = max(width, x)
    return boxes, width, len(layers) * _ROW_HEIGHT + _GAP


def _edges(graph, boxes):
    """(operand box, reader box) for every edge between two drawn nodes."""
    return [(boxes[operand], box) for node, box in boxes.items()
            for operand in graph.nodes[node]["inputs"] if operand in boxes]


def svg_source(graph, rows):
    """The graph as standalone SVG in evaluation order from top to bottom: forward nodes blue,
    derivative nodes dashed orange, inputs green, outputs with a double border."""
    from xml.sax.saxutils import escape
    boxes, width, height = _layout(graph, rows)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
           f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>'
           '</defs>']
    for (ox, oy, ow, oh, *_), (x, y, w, h, row, _) in _edges(graph, boxes):
        dash = ' stroke-dasharray="5,3" stroke="#e65100"' if row["kind"] == "grad" \
            else ' stroke="#555"'
        out.append(f'<line x1="{ox + ow / 2:.1f}" y1="{oy + oh}" x2="{x + w / 2:.1f}" '
                   f'y2="{y}"{dash} marker-end="url(#arrow)"/>')
    for x, y, w, h, row, lines in boxes.values():
        stroke = "#e65100" if row["kind"] == "grad" else "#333"
        dash = ' stroke-dasharray="5,3"' if row["kind"] == "grad" else ""
        radius = h / 2 if row["kind"] == "input" else 8
        border = 3 if row["output"] else 1
        out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{h}" rx="{radius}" '
                   f'fill="{_FILL[row["kind"]]}" stroke="{stroke}" stroke-width="{border}"{dash}/>')
        for i, text in enumerate(lines):
            out.append(f'<text x="{x + w / 2:.1f}" y="{y + 7 + _LINE * (i + 0.8):.1f}" '
                       f'text-anchor="middle">{escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# matplotlib refuses figures of more than 2**16 pixels a side
_MAX_PIXELS = 60_000


def matplotlib_picture(graph, rows, target, image_format):
    """Draw the layout of svg_source with matplotlib (its Agg canvas, no display needed) into
    ``target``, a path or a binary file, as .png or .pdf: pictures with pip-installed
    dependencies alone."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    except ImportError:
        raise SymgradError(f"drawing .{image_format} without Graphviz's 'dot' needs matplotlib: "
                           f"pip install 'symgrad[pictures]'") from None
    boxes, width, height = _layout(graph, rows)
    dpi = min(100.0, _MAX_PIXELS / max(width, height))
    figure = Figure(figsize=(width / 100.0, height / 100.0), dpi=dpi)
    axes = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)            # evaluation order runs downwards, as in the SVG
    axes.set_axis_off()
    points = 72.0 / 100.0               # one layout pixel in points, at the figure's own scale
    for (ox, oy, ow, oh, *_), (x, y, w, h, row, _) in _edges(graph, boxes):
        grad = row["kind"] == "grad"
        axes.add_patch(FancyArrowPatch((ox + ow / 2, oy + oh), (x + w / 2, y),
                                       arrowstyle="-|>", mutation_scale=10 * points,
                                       linewidth=points, linestyle="--" if grad else "-",
                                       color="#e65100" if grad else "#555555",
                                       shrinkA=0, shrinkB=0))
    for x, y, w, h, row, lines in boxes.values():
        grad = row["kind"] == "grad"
        radius = h / 2 if row["kind"] == "input" else 8
        axes.add_patch(FancyBboxPatch((x + radius, y + radius), w - 2 * radius, h - 2 * radius,
                                      boxstyle=f"round,pad={radius}", facecolor=_FILL[row["kind"]],
                                      edgecolor="#e65100" if grad else "#333333",
                                      linewidth=(3 if row["output"] else 1) * points,
                                      linestyle="--" if grad else "-"))
        for i, text in enumerate(lines):
            axes.text(x + w / 2, y + 7 + _LINE * (i + 0.5), text, ha="center", va="center",
                      fontsize=12 * points, family="sans-serif")
    figure.savefig(target, format=image_format, dpi=dpi)
