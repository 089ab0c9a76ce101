"""The views people read: the table, DOT and the pictures, checked on the textbook example."""

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


def test_png_without_graphviz_is_a_clear_error(textbook, tmp_path, monkeypatch):
    outputs, _ = textbook
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.raises(sg.SymgradError, match="Graphviz"):
        sg.draw(outputs, str(tmp_path / "graph.png"))
    assert not (tmp_path / "graph.png").exists()


def test_unknown_picture_suffix_is_refused(textbook, tmp_path):
    outputs, _ = textbook
    with pytest.raises(sg.SymgradError, match="picture format"):
        sg.draw(outputs, str(tmp_path / "graph.txt"))
