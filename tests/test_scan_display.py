"""How a loop is shown (symgrad/render.py): its body's rows once in the table, one DOT cluster
per loop wired to the outer nodes, and pictures that render."""

import re

import symgrad as sg
from test_loops import char_rnn


def rnn_gradient(steps):
    loss, grads, inputs = char_rnn(steps, looped=True)
    return [loss, *grads], inputs


def test_the_table_shows_each_body_once_whatever_the_number_of_steps():
    tables = []
    for steps in (3, 40):
        with sg.use_graph():
            outputs, inputs = rnn_gradient(steps)
            tables.append(sg.show_graph(outputs, inputs))
    short, long = (t.splitlines() for t in tables)
    assert len(short) == len(long)      # no row per step
    body = [line for line in tables[0].splitlines() if line.startswith("  │ ")]
    tanh_rows = [line for line in body if re.search(r"\bbody\s+tanh\s+\(8, 32\)", line)]
    assert len(tanh_rows) == 1, body      # the forward step's tanh, once
    loop_rows = [line for line in tables[0].splitlines() if re.search(r"\bscan\b", line)
                 and "for step" in line]
    assert len(loop_rows) == 2            # the forward loop and the reverse one, their headers
    assert all(line.rstrip().endswith(":  # one step of the loop")
               or "last to first" in line for line in loop_rows)


def test_dot_has_one_cluster_per_loop_wired_to_the_outer_nodes():
    with sg.use_graph():
        outputs, inputs = rnn_gradient(5)
        dot = sg.to_dot(outputs, inputs)
    clusters = re.findall(r"subgraph (cluster_\w+) \{ label=\"([^\"]*)\"", dot)
    assert len(clusters) == 2, clusters
    assert clusters[0][1].startswith("scan over 5 steps\\ncarries: ")
    assert "last to first" in clusters[1][1]
    prefix = clusters[0][0][len("cluster_"):]
    # the carry's placeholder is fed by h0 outside; a scan node reads a body result
    h0 = re.search(r"  (n\d+) \[label=\"h0\"", dot).group(1)
    assert re.search(rf"{h0} -> n{prefix}\d+;", dot)
    assert re.search(rf"n{prefix}\d+ -> n\d+( \[|;)", dot)
    assert dot.count("{") == dot.count("}")


def test_a_picture_of_a_loop_renders(tmp_path):
    with sg.use_graph():
        outputs, inputs = rnn_gradient(4)
        path = tmp_path / "rnn.svg"
        sg.draw(outputs, path, inputs)
    text = path.read_text()
    assert text.lstrip().startswith("<") and "scan over 4 steps" in text


def test_the_own_svg_layout_frames_each_loop():
    from symgrad.api import _rows
    from symgrad.render import boxes, svg_source
    with sg.use_graph():
        outputs, inputs = rnn_gradient(4)
        graph, rows = _rows(outputs, inputs, None)
    drawn = boxes(graph, rows, bodies=True)
    svg = svg_source(drawn)
    assert svg.count('stroke="#6a1b9a"') == 2 and "scan over 4 steps" in svg
    position = {box.key: k for k, box in enumerate(drawn)}
    assert all(position[k] < position[box.key] for box in drawn for k in box.operands)
