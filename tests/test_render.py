"""The views people read: the table, DOT and the pictures, checked on the textbook example."""

import sys
import xml.dom.minidom

import pytest

import symgrad as sg
import symgrad.render as render


@pytest.fixture
def textbook():
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    f = (x + y) * sg.maximum(y, z)
    return [f, *sg.grad(f, [x, y, z])], {"x": -2.0, "y": 5.0, "z": -4.0}


def test_table_lists_forward_and_derivative_nodes_with_values(textbook):
    outputs, at = textbook
    lines = sg.show_graph(outputs, at=at).splitlines()
    header = lines[0].split()
    assert header == ["name", "kind", "op", "shape", "value", "code"]
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert "grad" in rows["d_out_d_y"] and " 8 " in rows["d_out_d_y"]
    assert "forward" in rows["t2"] and " 15 " in rows["t2"]
    kinds = [line.split()[2] if line.split()[1] == "*" else line.split()[1] for line in lines[2:-1]]
    assert kinds.count("input") == 3 and "grad" in kinds and "forward" in kinds


def test_dot_marks_derivative_nodes_dashed(textbook):
    outputs, _ = textbook
    dot = sg.to_dot(outputs)
    assert dot.startswith("digraph")
    dashed = [line for line in dot.splitlines() if "dashed" in line and "label=" in line]
    assert any("d_out_d_y" in line for line in dashed)
    assert not any('"t2' in line for line in dashed)


def test_svg_without_graphviz_is_valid_and_styles_each_kind(textbook, tmp_path, monkeypatch):
    outputs, at = textbook
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    path = tmp_path / "graph.svg"
    sg.draw(outputs, str(path), at=at)
    document = xml.dom.minidom.parse(str(path))
    rects = document.getElementsByTagName("rect")
    graph, rows = sg.api._rows(outputs, None, at)
    assert len(rects) == len(rows)
    dashed = [r for r in rects if r.getAttribute("stroke-dasharray")]
    assert len(dashed) == sum(row["kind"] == "grad" for row in rows)
    texts = [t.firstChild.data for t in document.getElementsByTagName("text")]
    assert "= 15" in texts and "= 8" in texts


@pytest.mark.parametrize("dot", [None, "dot"], ids=["matplotlib", "graphviz"])
def test_png_shows_forward_and_derivative_nodes_in_their_colours(textbook, tmp_path, monkeypatch,
                                                                  dot):
    import numpy as np
    from matplotlib.image import imread
    if dot == "dot" and render.shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    if dot is None:
        monkeypatch.setattr(render.shutil, "which", lambda name: None)
    outputs, at = textbook
    path = tmp_path / "graph.png"
    sg.draw(outputs, str(path), at=at)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(str(path))[..., :3]
    height, width = pixels.shape[:2]
    assert height > 200 and width > 150

    def share(hex_colour):
        colour = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        return np.mean(np.all(np.abs(pixels - colour) < 0.02, axis=-1))
    # the fills of forward boxes (blue), derivative boxes (orange) and inputs (green)
    assert share("#e3f2fd") > 0.005 and share("#ffe0b2") > 0.005 and share("#e8f5e9") > 0.005


def test_pdf_without_graphviz_is_drawn_by_matplotlib(textbook, tmp_path, monkeypatch):
    outputs, _ = textbook
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    path = tmp_path / "graph.pdf"
    sg.draw(outputs, path)
    assert path.read_bytes()[:5] == b"%PDF-"


def test_png_without_graphviz_or_matplotlib_is_a_clear_error(textbook, tmp_path, monkeypatch):
    outputs, _ = textbook
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)     # import fails
    with pytest.raises(sg.SymgradError, match=r"matplotlib: pip install -e '\.\[pictures\]' in a clone"):
        sg.draw(outputs, str(tmp_path / "graph.png"))
    assert not (tmp_path / "graph.png").exists()


def test_unknown_picture_suffix_is_refused(textbook, tmp_path):
    outputs, _ = textbook
    with pytest.raises(sg.SymgradError, match="picture format"):
        sg.draw(outputs, str(tmp_path / "graph.txt"))


def test_an_expression_shows_itself_in_jupyter_as_a_picture_and_as_latex():
    import sympy
    x, y = sg.var("x"), sg.var("y")
    d = sg.grad(sg.sin(x) * y, x)
    svg = d._repr_svg_()
    assert xml.dom.minidom.parseString(svg).getElementsByTagName("svg")
    assert "#e65100" in svg             # the derivative nodes' colour, with dot or without
    assert d._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"
    X, Y = sympy.symbols("x y")
    assert d._repr_latex_() == f"${sympy.latex(sympy.diff(sympy.sin(X) * Y, X))}$"
    v = sg.var("v", shape=(3,))
    assert sg.sum(v * v)._repr_latex_() is None          # LaTeX is for scalar expressions
    assert sg.sum(v * v)._repr_svg_().lstrip().startswith(("<svg", "<?xml"))


def _iterated_map_gradient(steps, chain=False):
    y = sg.var("y", shape=(5,))
    z = y
    for _ in range(steps):
        z = sg.sin(z) if chain else sg.sin(z) * 0.5 + z
    f = sg.sum(z)
    return [f, sg.grad(f, y)]


@pytest.mark.parametrize("chain", [True, False], ids=["chains", "blocks"])
def test_a_large_graph_is_folded_into_a_readable_picture(chain, tmp_path, monkeypatch):
    outputs = _iterated_map_gradient(400, chain)
    graph, rows = sg.api._rows(outputs, None, None)
    drawn = render.boxes(graph, rows)
    assert len(rows) > 1000 and len(drawn) <= render.FOLD_ABOVE
    # every node is in exactly one box, and edges go from earlier boxes to later ones
    assert sum(sum(box.ops.values()) for box in drawn) == len(rows)
    position = {box.key: k for k, box in enumerate(drawn)}
    assert all(position[o] < position[box.key] for box in drawn for o in box.operands)
    assert sum(box.output for box in drawn) >= 1
    if chain:       # the forward and backward chains fold into a handful of boxes
        assert len(drawn) < 20
    if len(drawn) > render.DOT_LIMIT:
        # too large for Graphviz: drawn here, in a moment, whether dot is installed or not
        monkeypatch.setattr(render.subprocess, "run", lambda *a, **k: pytest.fail("dot was run"))
    else:
        monkeypatch.setattr(render.shutil, "which", lambda name: None)      # symgrad's SVG
    path = tmp_path / "big.svg"
    sg.draw(outputs, path)
    document = xml.dom.minidom.parse(str(path))
    assert len(document.getElementsByTagName("rect")) == len(drawn)


def test_a_small_graph_is_not_folded(textbook):
    outputs, _ = textbook
    graph, rows = sg.api._rows(outputs, None, None)
    assert [box.key for box in render.boxes(graph, rows)] == [row["node"] for row in rows]


def test_labels_say_what_each_output_is_in_the_table_and_the_picture(tmp_path, monkeypatch):
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    f = (x + y) * z
    outputs = [f, *sg.grad(f, [x, y, z])]       # d/dx and d/dy are z itself, d/dz is x + y
    labels = ["value", "d/dx", "d/dy", "d/dz"]
    text = sg.show_graph(outputs, labels=labels)
    assert text.splitlines()[-1] == "outputs: t1 (value), z (d/dx), z (d/dy), t0 (d/dz)"
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    path = tmp_path / "graph.svg"
    sg.draw(outputs, path, labels=labels)
    texts = [t.firstChild.data for t in xml.dom.minidom.parse(str(path)).getElementsByTagName("text")]
    assert {"out: value", "out: d/dx", "out: d/dy", "out: d/dz"} <= set(texts)
    assert 'out: d/dx' in sg.to_dot(outputs, labels=labels)
    for wrong in (["value"], "value", [1, 2, 3, 4]):
        with pytest.raises(sg.SymgradError, match="one string per output"):
            sg.show_graph(outputs, labels=wrong)


def test_the_readmes_picture_is_the_textbook_graph_as_symgrad_draws_it_now():
    """examples/textbook_graph.svg (shown in the README) is what symgrad's own SVG renderer makes
    of the textbook gradient at its point; redraw it when the renderer changes."""
    from pathlib import Path
    x, y, z = sg.var("x"), sg.var("y"), sg.var("z")
    f = (x + y) * sg.maximum(y, z)
    graph, rows = sg.api._rows([f, *sg.grad(f, [x, y, z])], None,
                               {"x": -2.0, "y": 5.0, "z": -4.0},
                               labels=["value", "d/dx", "d/dy", "d/dz"])
    committed = Path(__file__).resolve().parent.parent / "examples" / "textbook_graph.svg"
    assert committed.read_text(encoding="utf-8") == render.svg_source(render.boxes(graph, rows))


def test_a_folded_picture_keeps_operands_before_readers_when_a_derivative_reads_early_nodes():
    # found by review: the gradient reads the middle of the forward fold, and a node built on
    # the result comes after it
    x = sg.var("x", shape=(3,))
    c = x
    for _ in range(200):
        c = sg.sin(c) * 1.01 + x
    f = sg.sum(sg.exp(c))
    outputs = [sg.grad(f, x), f * 2.0]
    graph, rows = sg.api._rows(outputs, None, None)
    drawn = render.boxes(graph, rows)
    position = {box.key: k for k, box in enumerate(drawn)}
    assert all(position[o] < position[box.key] for box in drawn for o in box.operands)
    assert render.svg_source(drawn).startswith("<svg")


def test_values_of_array_graphs_are_traced_without_releasing_anything():
    import numpy as np
    v = sg.var("v", shape=(3,))
    f = sg.sum(sg.sin(v) * 2.0)
    text = sg.show_graph([f, sg.grad(f, v)], at={"v": np.array([0.1, 0.2, 0.3])})
    row = next(line for line in text.splitlines() if line.startswith("t1 "))
    assert "[0.199667, 0.397339, 0.59104 ]" in row         # 2 sin(v), not an overwritten buffer
