"""How a loop is shown (symgrad/render.py): its body's rows once in the table, one DOT cluster
per loop wired to the outer nodes, and pictures that render."""

import re

import pytest

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


# -- symgrad's own layout: each loop in a frame of its own --------------------------------------


def one_scan():
    x, h0 = sg.var("x", shape=(5, 3)), sg.var("h0", shape=(3,))
    h, ys = sg.scan(lambda h, xt: (sg.tanh(h * xt), h * 2.0), h0, x)
    return [sg.sum(ys) + sg.sum(h)]


def two_scans():
    x, h0 = sg.var("x", shape=(5, 3)), sg.var("h0", shape=(3,))
    h, ys = sg.scan(lambda h, xt: (sg.tanh(h * xt), h * 2.0), h0, x)
    g, zs = sg.scan(lambda c, y: (c + sg.sin(y), c * y), h, ys)
    return [sg.sum(zs) + sg.sum(g)]


def nested_scans():
    x, h0 = sg.var("x", shape=(4, 6, 3)), sg.var("h0", shape=(3,))

    def outer(h, rows):
        inner, _ = sg.scan(lambda c, r: (sg.tanh(c + r), c), h, rows)
        return inner * 0.5, sg.sum(inner)
    h, ys = sg.scan(outer, h0, x)
    return [sg.sum(ys) + sg.sum(h)]


def nested_scans_and_gradient():
    (f,) = nested_scans()
    return [f, *sg.grad(f, [f.variables["x"], f.variables["h0"]])]


def rnn_and_gradient():
    return rnn_gradient(4)[0]


def svg_rectangles(svg):
    """(frames, boxes) of an SVG of svg_source: (x, y, width, height) of each rectangle."""
    frames, boxes = [], []
    for attributes in re.findall(r"<rect ([^>]*)/>", svg):
        values = dict(re.findall(r'(\w[\w-]*)="([^"]*)"', attributes))
        rectangle = tuple(float(values[k]) for k in ("x", "y", "width", "height"))
        (frames if values["fill"] == "none" else boxes).append(rectangle)
    return frames, boxes


def overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] \
        and b[1] < a[1] + a[3]


def inside(a, b):
    return b[0] <= a[0] and a[0] + a[2] <= b[0] + b[2] and b[1] <= a[1] \
        and a[1] + a[3] <= b[1] + b[3]


@pytest.mark.parametrize("build, loops", [(one_scan, 1), (two_scans, 2), (nested_scans, 2),
                                          (nested_scans_and_gradient, 4),
                                          (rnn_and_gradient, 2)])
def test_no_frame_overlaps_another_frame_or_a_box_outside_it(build, loops):
    from symgrad.api import _rows
    from symgrad.render import boxes, svg_source
    with sg.use_graph():
        graph, rows = _rows(build(), None, None)
    shown = boxes(graph, rows, bodies=True)
    frames, drawn = svg_rectangles(svg_source(shown))
    paths = {identifier: box.cluster[:depth + 1] for box in shown
             for depth, (identifier, _) in enumerate(box.cluster)}
    assert len(frames) == len(paths) >= loops and len(drawn) > 2 * len(frames)
    # frames nest only as loops do: one inside another for each loop around a loop
    assert sum(inside(a, b) for a in frames for b in frames if a != b) == \
        sum(len(path) - 1 for path in paths.values())
    for k, box in enumerate(drawn):
        assert not any(overlap(box, other) for other in drawn[k + 1:])
        # a frame holds a box whole or keeps clear of it
        assert all(inside(box, frame) or not overlap(box, frame) for frame in frames)
    for k, frame in enumerate(frames):
        assert all(inside(frame, other) or inside(other, frame) or not overlap(frame, other)
                   for other in frames[k + 1:])


@pytest.mark.parametrize("build", [two_scans, nested_scans_and_gradient, rnn_and_gradient])
def test_each_box_sits_in_the_frames_of_its_loops_and_no_other(build):
    from symgrad.api import _rows
    from symgrad.render import boxes, nested_layout
    with sg.use_graph():
        graph, rows = _rows(build(), None, None)
    drawn = boxes(graph, rows, bodies=True)
    placed, frames, width, height = nested_layout(drawn)
    assert {identifier for box in drawn for identifier, _ in box.cluster} == set(frames)
    for x, y, w, h, box in placed.values():
        within = {identifier for identifier, frame in frames.items()
                  if inside((x, y, w, h), frame[:4])}
        assert within == {identifier for identifier, _ in box.cluster}, box.lines
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
    for identifier, frame in frames.items():
        # a nested loop's frame sits in its loop's, and in no other
        holding = {other for other, outer in frames.items()
                   if other != identifier and inside(frame[:4], outer[:4])}
        path = next(box.cluster for box in drawn
                    if identifier in dict(box.cluster))
        assert holding == {i for i, _ in path[:[i for i, _ in path].index(identifier)]}
    # a loop's operands feed its placeholders inside its frame, and its scan nodes outside it
    # read its body's results
    crossing = [(placed[k][4].cluster, box.cluster) for _, _, _, _, box in placed.values()
                for k in box.operands if placed[k][4].cluster != box.cluster]
    assert any(len(inner) > len(outer) for outer, inner in crossing)
    assert any(len(inner) < len(outer) for outer, inner in crossing)


def test_the_readmes_loop_picture_is_what_symgrad_draws_now():
    """examples/scan_rnn.svg (the README's 'A loop in pictures') is symgrad's own SVG of the RNN
    there; redraw it when the renderer changes."""
    from pathlib import Path

    from symgrad import render
    with sg.use_graph():
        X, h0 = sg.var("X", shape=(10, 3)), sg.var("h0", shape=(4,))
        Wx, Wh = sg.var("Wx", shape=(3, 4)), sg.var("Wh", shape=(4, 4))

        def step(h, x):
            h = sg.tanh(x @ Wx + h @ Wh)
            return h, sg.sum(h)
        h, ys = sg.scan(step, h0, X)
        loss = sg.sum(ys)
        graph, rows = sg.api._rows([loss, *sg.grad(loss, [Wx, Wh])], None, None)
    committed = Path(__file__).resolve().parent.parent / "examples" / "scan_rnn.svg"
    drawn = render.svg_source(render.boxes(graph, rows, bodies=True))
    assert committed.read_text(encoding="utf-8") == drawn
    assert drawn.count('fill="none" stroke="#6a1b9a"') == 2 and "last to first" in drawn
