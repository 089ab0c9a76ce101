"""The HTML view (symgrad/viewer): the page's data, layout and clusters from Python, and the page
itself opened in headless Chromium: it draws, logs no error, finds a node, folds and unfolds."""

import json
import re
import sys
import time
from collections import Counter
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad import render, viewer
from symgrad.cli import HTML_HINT_ABOVE, main

sys.path.insert(0, str(Path(__file__).resolve().parent))
import headless_chromium  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def rnn_gradient(steps, hidden=4):
    """The loss of an unrolled tanh RNN and its gradients in its four weights (the issue's
    example of a graph that pictures cannot show), with values for every input."""
    W = sg.var("W", shape=(hidden, hidden))
    U = sg.var("U", shape=(hidden, 2))
    b = sg.var("b", shape=(hidden,))
    V = sg.var("V", shape=(1, hidden))
    X = sg.var("X", shape=(steps, 2))
    h = sg.tanh(U @ X[0] + b)
    for t in range(1, steps):
        h = sg.tanh(W @ h + U @ X[t] + b)
    loss = sg.sum((V @ h) ** 2)
    rng = np.random.default_rng(0)
    at = {"W": rng.normal(size=(hidden, hidden)) * 0.5, "U": rng.normal(size=(hidden, 2)),
          "b": rng.normal(size=hidden), "V": rng.normal(size=(1, hidden)),
          "X": rng.normal(size=(steps, 2))}
    return [loss, *sg.grad(loss, [W, U, b, V])], at


def data_of(outputs, at=None, labels=None):
    graph, rows = sg.api._rows(outputs, None, at, labels=labels)
    return graph, rows, viewer.page_data(graph, rows)


# -- the page's data, without a browser ----------------------------------------------------------


def test_every_node_is_placed_below_its_operands_without_overlapping_its_layer():
    outputs, _ = rnn_gradient(6)
    graph, rows, data = data_of(outputs)
    nodes = data["nodes"]
    assert len(nodes) == len(rows)
    assert all(nodes[a]["y"] < nodes[b]["y"] for a, b in data["edges"])
    layers = {}
    for n in nodes:
        layers.setdefault(n["y"], []).append(n)
    assert len(layers) > 10
    for layer in layers.values():
        layer.sort(key=lambda n: n["x"])
        for left, right in zip(layer, layer[1:]):
            assert right["x"] - left["x"] >= (left["w"] + right["w"]) / 2 + viewer.BOX_GAP - 0.2


def test_the_edges_are_the_graphs():
    outputs, _ = rnn_gradient(3)
    graph, rows, data = data_of(outputs)
    keys = [row["node"] for row in rows]
    shown = set(keys)
    expected = {(keys.index(i), keys.index(row["node"])) for row in rows
                for i in graph.nodes[row["node"]]["inputs"] if i in shown}
    assert {tuple(e) for e in data["edges"]} == expected


def test_an_input_read_late_is_drawn_just_above_its_first_reader():
    x, y = sg.var("x"), sg.var("y")
    chain = x
    for _ in range(5):
        chain = sg.sin(chain)
    f = chain * y                   # y is read only by the last node
    _, _, data = data_of([f])
    by_name = {n["name"]: n for n in data["nodes"]}
    reader = max(data["nodes"], key=lambda n: n["y"])
    assert by_name["y"]["y"] == reader["y"] - viewer.LAYER_HEIGHT
    assert by_name["x"]["y"] == min(n["y"] for n in data["nodes"])


def test_the_pooled_placement_keeps_order_and_gaps_and_is_least_squares():
    desired = [5.0, 0.0, 0.0, 40.0, 41.0]
    widths = [10.0, 20.0, 10.0, 30.0, 10.0]
    placed = viewer._closest_in_order(desired, widths)
    for k in range(len(placed) - 1):
        assert placed[k + 1] - placed[k] >= (widths[k] + widths[k + 1]) / 2 + viewer.BOX_GAP - 1e-9
    # the least squares solution under the same constraints, by SciPy's SLSQP
    from scipy.optimize import minimize
    gaps = [(widths[k] + widths[k + 1]) / 2 + viewer.BOX_GAP for k in range(len(widths) - 1)]
    constraints = [{"type": "ineq", "fun": lambda x, k=k: x[k + 1] - x[k] - gaps[k]}
                   for k in range(len(gaps))]
    reference = minimize(lambda x: np.sum((x - desired) ** 2), np.cumsum([0.0] + gaps),
                         constraints=constraints, method="SLSQP", options={"ftol": 1e-12})
    assert np.allclose(placed, reference.x, atol=1e-5)
    assert viewer._closest_in_order([3.0, 500.0], [10.0, 10.0]) == [3.0, 500.0]


def test_clusters_are_the_derivative_nodes_appended_for_one_node():
    outputs, _ = rnn_gradient(4)
    graph, rows, data = data_of(outputs)
    keys = [row["node"] for row in rows]
    names = {row["node"]: row["name"] for row in rows}
    seen = set()
    assert len(data["clusters"]) > 5
    for c, cluster in enumerate(data["clusters"]):
        members = [keys[i] for i in cluster["members"]]
        assert len(members) >= 2 and cluster["count"] == len(members)
        assert {graph.nodes[m]["grad_of"] for m in members} == {
            next(k for k, name in names.items() if name == cluster["of"])}
        assert all(graph.nodes[m]["derivative"] for m in members)
        assert all(data["nodes"][i]["cluster"] == c for i in cluster["members"])
        assert not seen & set(members)
        seen |= set(members)
        assert f"{len(members)} nodes" in cluster["label"]
    # a derivative node left out of every cluster is the only one appended for its node
    alone = [row["node"] for row in rows if row["kind"] == "grad" and row["node"] not in seen]
    of = [graph.nodes[n]["grad_of"] for n in alone]
    assert all(sum(graph.nodes[m]["grad_of"] == o for m in keys
                   if graph.nodes[m]["derivative"]) == 1 for o in of)


def test_the_details_are_the_tables():
    outputs, at = rnn_gradient(2)
    labels = ["value", "d/dW", "d/dU", "d/db", "d/dV"]
    graph, rows, data = data_of(outputs, at=at, labels=labels)
    for row, node in zip(rows, data["nodes"]):
        assert node["op"] == row["op"] and node["kind"] == row["kind"]
        assert node["from"] == row["grad_of"]
        assert node["value"] == render.format_value(row["value"], width=200) != ""
        assert node["code"] == row["code"]
    outputs_shown = {label for node in data["nodes"] for label in node["outputs"]}
    assert outputs_shown == set(labels)
    loss = next(node for node in data["nodes"] if "value" in node["outputs"])
    assert float(loss["value"]) == pytest.approx(float(sg.compile(outputs[0])(
        **{k: at[k] for k in outputs[0].variables})), rel=1e-8)


def test_a_large_page_opens_folded_and_a_small_one_unfolded():
    small, _ = rnn_gradient(3)
    assert not data_of(small)[2]["folded"]
    with sg.use_graph():
        large, _ = rnn_gradient(30)
        graph, rows, data = data_of(large)
        assert len(rows) > viewer.FOLD_ABOVE and data["folded"]


def test_the_data_cannot_close_its_script_element():
    hostile = {"name": "</script><script>alert(1)</script>", "other": "a & b <!-- c -->"}
    text = viewer._script_json(hostile)
    assert not set("<>&") & set(text)
    assert json.loads(text) == hostile


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_the_page_is_self_contained(tmp_path):
    outputs, at = rnn_gradient(2)
    path = tmp_path / "graph.html"
    assert sg.draw(outputs, path, at=at) == len(sg.api._rows(outputs, None, at)[1])
    page = path.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(page)
    # nothing is fetched when the page opens: no script, style sheet, image or frame by address
    assert not [(tag, attrs) for tag, attrs in parser.tags if {"src", "href"} & set(attrs)]
    assert [attrs.get("type") for tag, attrs in parser.tags if tag == "script"] == \
        [None, "application/json", None]
    assert "@@" not in page.replace(viewer._asset("vendor/cytoscape.min.js"), "")
    match = re.search(r'<script type="application/json" id="symgrad-data">(.*?)</script>', page,
                      re.S)
    assert len(json.loads(match.group(1))["nodes"]) > 10


def test_the_vendored_library_is_package_data_with_its_licence():
    tomllib = pytest.importorskip("tomllib")        # Python 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["symgrad.viewer"]
    package = ROOT / "symgrad" / "viewer"
    data_files = [p.relative_to(package).as_posix() for p in package.rglob("*")
                  if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
    assert {"page.html", "viewer.js", "viewer.css", "vendor/cytoscape.min.js", "vendor/LICENSE",
            "vendor/README.md"} <= set(data_files)
    assert all(any(fnmatch(name, pattern) for pattern in patterns) for name in data_files)
    assert "MIT" in (package / "vendor" / "README.md").read_text(encoding="utf-8")
    assert "Permission is hereby granted" in (package / "vendor" / "LICENSE").read_text()


def test_draw_and_the_command_line_write_html(tmp_path, capsys):
    x, y = sg.var("x"), sg.var("y")
    sg.draw(sg.grad(sg.sin(x) * y, x), tmp_path / "g.html")
    assert (tmp_path / "g.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    path = tmp_path / "cli.html"
    assert main(["grad", "(x + y) * max(y, z)", "--at", "x=-2,y=5,z=-4", "-o", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"wrote {path}" and err == ""
    data = json.loads(re.search(r'id="symgrad-data">(.*?)</script>', path.read_text(), re.S)[1])
    by_name = {n["name"]: n for n in data["nodes"]}
    assert by_name["d_out_d_y"]["value"] == "8" and by_name["d_out_d_y"]["outputs"] == ["d/dy"]
    assert by_name["t3"]["from"] == "t1"




@pytest.mark.parametrize("suffix, hint", [(".svg", True), (".html", False)])
def test_the_command_line_suggests_html_for_a_large_picture(suffix, hint, tmp_path, capsys):
    # the ninth derivative: about 200 nodes (the fifth had 220 before the derivatives that are
    # polynomials in several leaves were compacted, and has 81 now)
    argv = ["grad", "tanh(tanh(x * y))", "--wrt", "x", "--order", "9", "-o",
            str(tmp_path / f"g{suffix}")]
    assert main(argv) == 0
    _, err = capsys.readouterr()
    assert ("-o FILE.html" in err) == hint
    if hint:
        nodes = int(re.search(r"the graph has (\d+) nodes", err)[1])
        assert nodes > HTML_HINT_ABOVE and err.count("\n") == 1


def test_no_hint_for_a_small_picture(tmp_path, capsys):
    assert main(["grad", "sin(x) * y", "-o", str(tmp_path / "g.svg")]) == 0
    assert capsys.readouterr().err == ""


# -- the page in headless Chromium --------------------------------------------------------------

needs_chromium = pytest.mark.skipif(headless_chromium.missing() is not None,
                                    reason=f"the HTML view's browser tests: "
                                           f"{headless_chromium.missing()}")


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium.open_chromium()
    yield driver
    driver.quit()


def opened(browser, path):
    browser.get(path.as_uri())
    headless_chromium.wait_until_drawn(browser)
    return browser


def errors_in(browser):
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


@needs_chromium
def test_the_page_draws_finds_and_shows_details(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    outputs, at = rnn_gradient(5)
    path = tmp_path / "rnn.html"
    drawn = sg.draw(outputs, path, at=at, labels=["value", "d/dW", "d/dU", "d/db", "d/dV"])
    page = opened(browser, path)
    assert page.execute_script("return window.symgradViewer.visible()") == drawn
    assert page.execute_script("return window.symgradViewer.cy.edges().length") > drawn
    assert page.find_elements(By.CSS_SELECTOR, "#graph canvas")
    assert errors_in(page) == []

    search = page.find_element(By.ID, "search")
    search.send_keys("d_out_d_W", Keys.ENTER)
    selected = page.execute_script(
        "var s = window.symgradViewer.cy.nodes(':selected'); return [s.length, s.data('label'),"
        " s.hasClass('found'), s.renderedPosition(), window.symgradViewer.cy.width(),"
        " window.symgradViewer.cy.height()]")
    count, label, found, position, width, height = selected
    assert count == 1 and label.splitlines()[0] == "d_out_d_W" and found
    assert abs(position["x"] - width / 2) < 2 and abs(position["y"] - height / 2) < 2
    assert page.find_element(By.ID, "status").text == "d_out_d_W: 1 of 1"
    search.clear()
    search.send_keys("no_such_node", Keys.ENTER)
    assert "no node" in page.find_element(By.ID, "status").text

    # hovering the found node (at the window's centre) shows its op, shape, value and origin
    canvas = page.find_element(By.ID, "graph")
    ActionChains(page).move_to_element_with_offset(canvas, 0, 0).perform()
    tooltip = page.find_element(By.ID, "tooltip")
    assert tooltip.is_displayed()
    assert "d_out_d_W" in tooltip.text and "op:    add" in tooltip.text
    assert "shape: (4, 4)" in tooltip.text and "from:  W" in tooltip.text
    assert "value: [[" in tooltip.text and "output: d/dW" in tooltip.text
    assert errors_in(page) == []


@needs_chromium
def test_folding_a_cluster_changes_what_is_shown_and_search_unfolds_it(browser, tmp_path):
    outputs, _ = rnn_gradient(4)
    path = tmp_path / "rnn.html"
    drawn = sg.draw(outputs, path)
    page = opened(browser, path)
    data = viewer.page_data(*sg.api._rows(outputs, None, None))
    cluster = max(range(len(data["clusters"])), key=lambda c: data["clusters"][c]["count"])
    members = data["clusters"][cluster]["count"]
    assert page.execute_script(f"return window.symgradViewer.fold({cluster})")
    assert page.execute_script("return window.symgradViewer.visible()") == drawn - members + 1
    # the folded box's edges are its members' edges to the rest, once each
    member_set = set(data["clusters"][cluster]["members"])
    expected = {("c" if a in member_set else a, "c" if b in member_set else b)
                for a, b in data["edges"]} - {("c", "c")}
    assert page.execute_script("return window.symgradViewer.cy.edges().length") == len(expected)
    name = data["nodes"][data["clusters"][cluster]["members"][0]]["name"]
    assert page.execute_script(f"return window.symgradViewer.find({json.dumps(name)})") == name
    assert page.execute_script("return window.symgradViewer.visible()") == drawn
    page.execute_script("window.symgradViewer.setAllFolded(true)")
    folded_count = drawn - sum(c["count"] - 1 for c in data["clusters"])
    assert page.execute_script("return window.symgradViewer.visible()") == folded_count
    page.execute_script("window.symgradViewer.setAllFolded(false)")
    assert page.execute_script("return window.symgradViewer.visible()") == drawn
    assert errors_in(page) == []


@needs_chromium
def test_a_large_page_opens_folded_in_the_browser(browser, tmp_path):
    outputs, _ = rnn_gradient(30)
    path = tmp_path / "large.html"
    drawn = sg.draw(outputs, path)
    page = opened(browser, path)
    shown = page.execute_script("return window.symgradViewer.visible()")
    assert drawn > viewer.FOLD_ABOVE and shown < drawn
    assert page.execute_script("return window.symgradViewer.find('d_out_d_W')") == "d_out_d_W"
    assert errors_in(page) == []


# -- a page larger than the window of boxes Cytoscape holds -------------------------------------


def held_and_expected(page, data):
    """The boxes and edges Cytoscape holds, and the edges it should hold between those boxes in
    the page's present folding (each member's edge drawn to its folded cluster, once)."""
    held, edges, folded = page.execute_script(
        "var v = window.symgradViewer; return [v.cy.nodes().map(function (n) { return n.id(); }),"
        " v.cy.edges().map(function (e) { return [e.source().id(), e.target().id()]; }),"
        " v.folded()]")
    folded = set(folded)

    def shown(i):
        c = data["nodes"][i]["cluster"]
        return f"c{c}" if c >= 0 and c in folded else f"n{i}"
    held_set = set(held)
    expected = {(shown(a), shown(b)) for a, b in data["edges"]} - {(s, s) for s in held_set}
    expected = {(a, b) for a, b in expected if a in held_set and b in held_set and a != b}
    return held, [tuple(e) for e in edges], expected, folded


def in_view(page, data, held, folded):
    """The boxes of the present folding that overlap the view, from the page's own data."""
    zoom, pan, width, height = page.execute_script(
        "var cy = window.symgradViewer.cy; return [cy.zoom(), cy.pan(), cy.width(), cy.height()]")
    x1, y1 = -pan["x"] / zoom, -pan["y"] / zoom
    x2, y2 = x1 + width / zoom, y1 + height / zoom
    boxes = [(f"n{i}", n) for i, n in enumerate(data["nodes"])
             if not (n["cluster"] >= 0 and n["cluster"] in folded)]
    boxes += [(f"c{c}", k) for c, k in enumerate(data["clusters"]) if c in folded]
    return {key for key, b in boxes if b["x"] + b["w"] / 2 >= x1 and b["x"] - b["w"] / 2 <= x2
            and b["y"] + b["h"] / 2 >= y1 and b["y"] - b["h"] / 2 <= y2}


@pytest.fixture(scope="module")
def long_page(tmp_path_factory):
    """A page of more boxes, unfolded, than Cytoscape holds at once: ~1,300 nodes."""
    with sg.use_graph():
        outputs, at = rnn_gradient(80)
        path = tmp_path_factory.mktemp("long") / "long.html"
        drawn = sg.draw(outputs, path, at=at)
        data = viewer.page_data(*sg.api._rows(outputs, None, at))
    return path, drawn, data


@needs_chromium
def test_cytoscape_holds_the_boxes_in_view_and_their_edges_as_the_view_moves(browser,
                                                                             long_page):
    path, drawn, data = long_page
    page = opened(browser, path)
    limit = page.execute_script("return window.symgradViewer.windowLimit")
    assert drawn > limit > page.execute_script("return window.symgradViewer.windowAll")
    page.execute_script("window.symgradViewer.setAllFolded(false)")
    assert page.execute_script("return window.symgradViewer.visible()") == drawn
    for step in range(4):
        held, edges, expected, folded = held_and_expected(page, data)
        assert not folded and 0 < len(held) <= limit
        assert in_view(page, data, held, folded) <= set(held)
        assert len(edges) == len(set(edges)) and set(edges) == expected
        # a view down the graph: the boxes above leave, those below join
        page.execute_script("var cy = window.symgradViewer.cy; cy.panBy({x: 0, y: -cy.height()});"
                            " window.symgradViewer.follow()")
        assert set(held) != set(held_and_expected(page, data)[0])
    # folding every cluster, in view of one, swaps the members held for their clusters, edges
    # included: a cluster of the backward pass whose members are close, so its box is in view
    def span(c):
        ys = [data["nodes"][i]["y"] for i in data["clusters"][c]["members"]]
        return max(ys) - min(ys)
    middle = min(range(len(data["clusters"]) // 2, len(data["clusters"])), key=span)
    name = data["nodes"][data["clusters"][middle]["members"][0]]["name"]
    assert page.execute_script(f"return window.symgradViewer.find({json.dumps(name)})") == name
    page.execute_script("window.symgradViewer.setAllFolded(true)")
    held, edges, expected, folded = held_and_expected(page, data)
    assert folded == set(range(len(data["clusters"])))
    assert f"c{middle}" in held and set(edges) == expected
    assert in_view(page, data, held, folded) <= set(held)
    assert errors_in(page) == []


@needs_chromium
def test_the_window_follows_the_view_once_it_rests(browser, long_page):
    path, drawn, data = long_page
    page = opened(browser, path)
    page.execute_script("window.symgradViewer.setAllFolded(false)")
    before = set(held_and_expected(page, data)[0])
    assert len(before) < drawn
    page.execute_script("var cy = window.symgradViewer.cy; cy.panBy({x: 0, y: -3 * cy.height()})")
    # no call to follow: the page's own timer moves the window after the view rests
    for _ in range(100):
        held, _, _, folded = held_and_expected(page, data)
        if set(held) != before:
            break
        time.sleep(0.05)
    assert set(held) != before and in_view(page, data, held, folded) <= set(held)


@needs_chromium
def test_zoomed_out_far_the_canvas_beneath_draws_what_cytoscape_does_not_hold(browser, long_page):
    from selenium.webdriver.common.by import By
    path, drawn, data = long_page
    page = opened(browser, path)
    page.execute_script("window.symgradViewer.setAllFolded(false)")
    zoom = page.execute_script("return window.symgradViewer.windowZoom") / 2
    page.execute_script(f"var cy = window.symgradViewer.cy; cy.zoom({{level: {zoom},"
                        f" renderedPosition: {{x: 0, y: 0}}}}); window.symgradViewer.follow()")
    assert page.execute_script("return window.symgradViewer.held()") == 0
    assert "zoom in" in page.find_element(By.ID, "status").text

    # the sketch is drawn on the next frame: count its painted pixels, by colour
    painted = page.execute_async_script("""
        var done = arguments[0];
        requestAnimationFrame(function () { requestAnimationFrame(function () {
          var canvas = document.getElementById('sketch');
          var pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width,
                                                            canvas.height).data;
          var count = 0;
          for (var k = 3; k < pixels.length; k += 4) if (pixels[k] > 0) count++;
          done(count);
        }); });""")
    assert painted > 1000
    assert errors_in(page) == []


@needs_chromium
def test_search_finds_a_folded_node_outside_the_window_and_hover_shows_it(browser, long_page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    path, drawn, data = long_page
    page = opened(browser, path)
    # a member of the last cluster: far down the graph, folded, not held at first
    last = len(data["clusters"]) - 1
    index = data["clusters"][last]["members"][0]
    name = data["nodes"][index]["name"]
    page.execute_script(f"window.symgradViewer.setAllFolded(false);"
                        f" window.symgradViewer.fold({last})")
    held, _, _, folded = held_and_expected(page, data)
    assert folded == {last} and f"n{index}" not in held and f"c{last}" not in held
    assert page.execute_script(f"return window.symgradViewer.find({json.dumps(name)})") == name
    count, found, position, width, height = page.execute_script(
        "var cy = window.symgradViewer.cy, s = cy.nodes(':selected');"
        " return [s.length, s.id(), s.renderedPosition(), cy.width(), cy.height()]")
    assert count == 1 and found == f"n{index}"
    assert abs(position["x"] - width / 2) < 2 and abs(position["y"] - height / 2) < 2
    ActionChains(page).move_to_element_with_offset(page.find_element(By.ID, "graph"), 0, 0) \
        .perform()
    tooltip = page.find_element(By.ID, "tooltip")
    assert tooltip.is_displayed() and tooltip.text.startswith(name + "  (grad)")
    # the found mark stays with the node when its box leaves the window and comes back
    page.execute_script("var cy = window.symgradViewer.cy; cy.panBy({x: 0, y: 20 * cy.height()});"
                        " window.symgradViewer.follow()")
    assert page.execute_script(f"return window.symgradViewer.cy.getElementById('n{index}')"
                               ".empty()")
    page.execute_script("var cy = window.symgradViewer.cy; cy.panBy({x: 0, y: -20 * cy.height()});"
                        " window.symgradViewer.follow()")
    assert page.execute_script(f"var n = window.symgradViewer.cy.getElementById('n{index}');"
                               " return [n.hasClass('found'), n.selected()]") == [True, True]
    # moving the window keeps the search's result in the status line
    assert page.find_element(By.ID, "status").text == f"{name}: 1 of 1"
    assert errors_in(page) == []


# -- loops: a compound node holding one step of the body -----------------------------------------


def scan_gradient_data(steps=4):
    """The char RNN of tests/test_loops.py as a scan and its gradient: a forward loop and its
    reverse loop, and the page's data of it."""
    from test_loops import char_rnn
    with sg.use_graph():
        loss, grads, inputs = char_rnn(steps, looped=True)
        graph, rows = sg.api._rows([loss, *grads], inputs, None)
        return [loss, *grads], inputs, graph, rows, viewer.page_data(graph, rows)


def nested_scan_data():
    from test_scan_display import nested_scans_and_gradient
    with sg.use_graph():
        outputs = nested_scans_and_gradient()
        graph, rows = sg.api._rows(outputs, None, None)
        return outputs, graph, rows, viewer.page_data(graph, rows)


def test_a_loop_holds_its_body_with_the_labels_of_the_table_and_the_pictures():
    outputs, inputs, graph, rows, data = scan_gradient_data()
    loops = data["loops"]
    drawn = render.boxes(graph, rows, bodies=True)
    labels = list(dict.fromkeys(label for box in drawn for _, label in box.cluster))
    assert [loop["label"] for loop in loops] == labels and len(loops) == 2
    assert "last to first" not in loops[0]["label"] and "last to first" in loops[1]["label"]
    assert all(loop["parent"] == -1 for loop in loops)
    for k, loop in enumerate(loops):
        assert loop["members"] == [i for i, n in enumerate(data["nodes"]) if n["loop"] == k]
        assert loop["count"] == len(loop["members"]) > 5
    # each body node's details are its row of the table (kind 'body', one step of the loop)
    body_rows = {(row["name"], row["op"], row["code"]) for _, row in render._expanded(rows)
                 if row["kind"] == "body" and row["node"] is not None}
    shown = {(n["name"], n["op"], n["code"]) for n in data["nodes"]
             if n["loop"] >= 0 and n["op"] != "var"}
    assert shown == body_rows
    assert {"X[step]", "Y[step]"} <= {n["code"] for n in data["nodes"] if n["op"] == "slice"}
    tanh = [n for n in data["nodes"] if n["op"] == "tanh"]
    assert len(tanh) == 1 and tanh[0]["loop"] == 0 and tanh[0]["shape"] == "(8, 32)"
    placeholders = [n for n in data["nodes"] if n["loop"] >= 0 and n["op"] == "var"]
    assert {n["code"] for n in placeholders} == {"carry in", "closed over"}
    # a frame holds its nodes' boxes and keeps clear of every other box
    for k, loop in enumerate(loops):
        x1, x2 = loop["x"] - loop["w"] / 2, loop["x"] + loop["w"] / 2
        y1, y2 = loop["y"] - loop["h"] / 2, loop["y"] + loop["h"] / 2
        for n in data["nodes"]:
            within = x1 <= n["x"] - n["w"] / 2 and n["x"] + n["w"] / 2 <= x2 \
                and y1 <= n["y"] - n["h"] / 2 and n["y"] + n["h"] / 2 <= y2
            apart = n["x"] + n["w"] / 2 < x1 or n["x"] - n["w"] / 2 > x2 \
                or n["y"] + n["h"] / 2 < y1 or n["y"] - n["h"] / 2 > y2
            assert within if n["loop"] == k else apart, (k, n["name"])


def test_a_nested_loop_is_a_frame_inside_its_loops_frame():
    _, graph, rows, data = nested_scan_data()
    loops = data["loops"]
    inner = [k for k, loop in enumerate(loops) if loop["parent"] >= 0]
    assert inner and len(inner) < len(loops)
    for k in inner:
        outer = loops[loops[k]["parent"]]
        assert set(loops[k]["members"]) < set(outer["members"])
        assert outer["x"] - outer["w"] / 2 < loops[k]["x"] - loops[k]["w"] / 2
        assert loops[k]["y"] + loops[k]["h"] / 2 < outer["y"] + outer["h"] / 2
        assert loops[k]["parent"] < k             # outer loops come first


def page_of_loops(browser, tmp_path, outputs, inputs=None):
    path = tmp_path / "loops.html"
    sg.draw(outputs, path, inputs)
    return opened(browser, path)


def compounds(page):
    """{frame id: (label, sorted child ids, parent id or None)} of the compound nodes held."""
    return {key: (label, sorted(children), parent) for key, label, children, parent in
            page.execute_script(
                "return window.symgradViewer.cy.nodes(':parent').map(function (p) {"
                " return [p.id(), p.data('label'), p.children().map(function (c) {"
                " return c.id(); }), p.isChild() ? p.parent().id() : null]; })")}


@needs_chromium
def test_the_page_shows_the_forward_and_the_reverse_loop_as_compound_nodes(browser, tmp_path):
    pil = pytest.importorskip("PIL.Image")
    import io
    outputs, inputs, graph, rows, data = scan_gradient_data()
    page = page_of_loops(browser, tmp_path, outputs, inputs)
    assert page.execute_script("return window.symgradViewer.visible()") == len(data["nodes"])
    frames = compounds(page)
    assert set(frames) == {"l0", "l1"}
    for k, loop in enumerate(data["loops"]):
        label, children, parent = frames[f"l{k}"]
        assert label == loop["label"] and parent is None
        assert children == sorted(f"n{i}" for i in loop["members"])
    assert "last to first" in frames["l1"][0] and "last to first" not in frames["l0"][0]
    # the body's tanh is a child of the forward loop
    tanh = next(i for i, n in enumerate(data["nodes"]) if n["op"] == "tanh")
    assert f"n{tanh}" in frames["l0"][1]
    # the picture is not blank: many pixels of the frames' purple and of the boxes' fills
    page.execute_script("var cy = window.symgradViewer.cy; cy.fit(cy.getElementById('l0'), 10);"
                        " window.symgradViewer.follow()")
    time.sleep(0.3)
    image = pil.open(io.BytesIO(page.get_screenshot_as_png())).convert("RGB")
    image.save(tmp_path / "loops.png")
    colours = {colour: n for n, colour in image.getcolors(image.width * image.height)}
    # the frame's purple border and label (#6a1b9a, anti-aliased), and the forward boxes' fill
    frame_purple = sum(n for (r, g, b), n in colours.items() if b - g > 40 and r - g > 20)
    forward_blue = colours.get((0xe3, 0xf2, 0xfd), 0)
    assert frame_purple > 1500 and forward_blue > 2000
    assert len(colours) > 50
    assert errors_in(page) == []


@needs_chromium
def test_a_loop_folds_into_one_box_and_unfolds(browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    outputs, inputs, graph, rows, data = scan_gradient_data()
    page = page_of_loops(browser, tmp_path, outputs, inputs)
    total = len(data["nodes"])
    members = set(data["loops"][1]["members"])
    assert page.execute_script("return window.symgradViewer.foldLoop(1)")
    assert page.execute_script("return window.symgradViewer.visible()") == \
        total - len(members) + 1
    folded, is_parent, label = page.execute_script(
        "var f = window.symgradViewer.cy.getElementById('f1'); return [f.length,"
        " f.isParent(), f.data('label')]")
    assert folded == 1 and not is_parent and label.startswith(data["loops"][1]["label"])
    assert set(compounds(page)) == {"l0"}
    # the folded loop's edges are its members' edges to the rest, once each
    expected = {("f1" if a in members else f"n{a}", "f1" if b in members else f"n{b}")
                for a, b in data["edges"]} - {("f1", "f1")}
    edges = page.execute_script("return window.symgradViewer.cy.edges().map(function (e) {"
                                " return [e.source().id(), e.target().id()]; })")
    assert {tuple(e) for e in edges} == expected and len(edges) == len(expected)
    assert "1 of 2 loops" in page.find_element(By.ID, "status").text
    # finding a node inside it unfolds it
    name = data["nodes"][min(members)]["name"]
    assert page.execute_script(f"return window.symgradViewer.find({json.dumps(name)})") == name
    assert page.execute_script("return window.symgradViewer.foldedLoops()") == []
    assert page.execute_script("return window.symgradViewer.visible()") == total
    # a double-click on a body node folds its loop, a click on the folded box unfolds it
    tanh = next(i for i, n in enumerate(data["nodes"]) if n["op"] == "tanh")

    def click_node(element_id, double):
        position = page.execute_script(
            f"return window.symgradViewer.cy.getElementById('{element_id}').renderedPosition()")
        graph_area = page.find_element(By.ID, "graph")
        size = graph_area.size
        chain = ActionChains(page).move_to_element_with_offset(
            graph_area, position["x"] - size["width"] / 2, position["y"] - size["height"] / 2)
        (chain.double_click() if double else chain.click()).perform()
    page.execute_script(f"var cy = window.symgradViewer.cy; cy.zoom(1);"
                        f" cy.center(cy.getElementById('n{tanh}')); window.symgradViewer.follow()")
    # hovering a body node shows its own details, not its loop's
    click_node(f"n{tanh}", double=False)
    tooltip = page.find_element(By.ID, "tooltip")
    assert tooltip.is_displayed() and "op:    tanh" in tooltip.text
    assert "shape: (8, 32)" in tooltip.text and "in a loop" in tooltip.text
    click_node(f"n{tanh}", double=True)
    assert page.execute_script("return window.symgradViewer.foldedLoops()") == [0]
    click_node("f0", double=False)
    assert page.execute_script("return window.symgradViewer.foldedLoops()") == []
    assert errors_in(page) == []


@needs_chromium
def test_a_nested_loop_is_a_compound_node_inside_its_loops(browser, tmp_path):
    outputs, graph, rows, data = nested_scan_data()
    page = page_of_loops(browser, tmp_path, outputs)
    frames = compounds(page)
    assert set(frames) == {f"l{k}" for k in range(len(data["loops"]))}
    for k, loop in enumerate(data["loops"]):
        label, children, parent = frames[f"l{k}"]
        assert parent == (f"l{loop['parent']}" if loop["parent"] >= 0 else None)
        assert children == sorted([f"n{i}" for i, n in enumerate(data["nodes"])
                                   if n["loop"] == k] +
                                  [f"l{j}" for j, inner in enumerate(data["loops"])
                                   if inner["parent"] == k])
    # folding an outer loop hides the loops inside it; unfolding shows them again
    outer = next(k for k, loop in enumerate(data["loops"])
                 if any(inner["parent"] == k for inner in data["loops"]))
    page.execute_script(f"window.symgradViewer.foldLoop({outer})")
    assert not {f"l{j}" for j, inner in enumerate(data["loops"]) if inner["parent"] == outer} \
        & set(compounds(page))
    assert page.execute_script("return window.symgradViewer.visible()") == \
        len(data["nodes"]) - data["loops"][outer]["count"] + 1
    page.execute_script(f"window.symgradViewer.unfoldLoop({outer})")
    assert set(compounds(page)) == set(frames)
    assert errors_in(page) == []
