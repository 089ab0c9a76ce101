"""Views of a graph for people: an aligned table in evaluation order, Graphviz DOT, and pictures.

Names and statements come from codegen, so the table, the drawing and the emitted code agree.
Imports graph, ops and codegen.
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


def to_dot(rows, title="symgrad"):
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
    lines, names = to_dot(rows)
    shown = set(names)
    for row in rows:
        inputs = graph.nodes[row["node"]]["inputs"]
        for position, operand in enumerate(inputs):
            if operand in shown:
                style = ' [style=dashed, color="#e65100"]' if row["kind"] == "grad" else ""
                lines.append(f"  n{operand} -> n{row['node']}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_picture(dot, path):
    """Render DOT to ``path`` (.svg or .png) with Graphviz's dot."""
    suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
    if suffix not in ("svg", "png", "pdf"):
        raise SymgradError(f"cannot tell the picture format of {path!r}: use .svg, .png or .pdf")
    executable = shutil.which("dot")
    if executable is None:
        raise SymgradError("drawing pictures needs Graphviz's 'dot' on PATH (for example "
                           "'apt-get install graphviz'); '--format dot' prints the DOT source")
    result = subprocess.run([executable, f"-T{suffix}", "-o", path], input=dot.encode(),
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise SymgradError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
