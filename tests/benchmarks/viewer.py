"""The HTML view of large graphs in headless Chromium: page load to first drawing, the time of
a redrawn zoom or pan frame, of frames during a mouse drag and wheel zoom, of unfolding and
folding every cluster, of moving the window of boxes Cytoscape holds, of zooming out to the
whole graph and of a search; and, with --screenshot, the README's picture of a ~1,000-node
graph.

    python tests/benchmarks/viewer.py                 # 1,000 and 10,000 nodes, ~2 min
    python tests/benchmarks/viewer.py --screenshot    # writes examples/graph_1000.png

The graphs are the gradient of an unrolled tanh RNN (16 nodes a step). Needs Debian's chromium
and chromium-driver, and selenium (tests/headless_chromium.py).

Measured on the shared 2-core machine (load average ~12, software rendering), before and after
Cytoscape held only the boxes in and around the view (a canvas beneath drawing the rest); the
page load varies about twofold from run to run at this load (two runs after: 568 and 1,417 ms
at 1,003 nodes, 516 and 1,135 ms at 10,011), the other figures less:

| | 1,003 nodes before | after | 10,011 nodes before | after |
| --- | --- | --- | --- | --- |
| boxes Cytoscape holds at first | 574 | 60 | 5,641 | 59 |
| page load to first drawing | 1,550 ms | 568 to 1,417 ms | 3,586 ms | 516 to 1,135 ms |
| redrawn zoom/pan frame, median | 69 ms | 33 ms | 170 ms | 32 ms |
| ... all unfolded | 125 ms | 33 ms | 193 ms | 44 ms |
| drag and wheel frames, median / longest | 17 / 183 ms | 17 / 50 ms | 17 / 500 ms | 17 / 33 ms |
| unfold all | 1,323 ms | 17 ms | 6,984 ms | 30 ms |
| fold all | | 26 ms | | 25 ms |
| the window moved a whole view | | 41 ms | | 84 ms |
| zoomed out to the whole graph, then a redrawn frame | | 31, 33 ms | | 28, 33 ms |
| search (unfold, centre, draw) | 60 ms | 40 ms | 178 ms | 31 ms |
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

import headless_chromium  # noqa: E402
import symgrad as sg  # noqa: E402

HIDDEN = 8


def rnn_gradient(steps):
    """Loss of an unrolled RNN h <- tanh(W h + U x_t + b), and its gradients in W, U, b, V."""
    W = sg.var("W", shape=(HIDDEN, HIDDEN))
    U = sg.var("U", shape=(HIDDEN, 3))
    b = sg.var("b", shape=(HIDDEN,))
    V = sg.var("V", shape=(2, HIDDEN))
    X = sg.var("X", shape=(steps, 3))
    Y = sg.var("Y", shape=(2,))
    h = sg.var("h0", shape=(HIDDEN,))
    for t in range(steps):
        h = sg.tanh(W @ h + U @ X[t] + b)
    loss = sg.sum((V @ h - Y) ** 2)
    rng = np.random.default_rng(0)
    at = {"W": rng.normal(size=(HIDDEN, HIDDEN)) * 0.4, "U": rng.normal(size=(HIDDEN, 3)),
          "b": rng.normal(size=HIDDEN) * 0.1, "V": rng.normal(size=(2, HIDDEN)),
          "X": rng.normal(size=(steps, 3)), "Y": rng.normal(size=2),
          "h0": np.zeros(HIDDEN)}
    return [loss, *sg.grad(loss, [W, U, b, V])], at, ["loss", "d/dW", "d/dU", "d/db", "d/dV"]


# programmatic zoom and pan steps, each timed to the second animation frame after it: the whole
# graph is redrawn (no cached picture), the worst case
REDRAWS = """
var done = arguments[arguments.length - 1], cy = window.symgradViewer.cy, times = [], k = 0;
function step() {
  var started = performance.now();
  if (k % 2 == 0) cy.zoom({level: cy.zoom() * (k % 4 == 0 ? 1.25 : 0.8),
                           renderedPosition: {x: cy.width() / 2, y: cy.height() / 2}});
  else cy.panBy({x: 37, y: -23});
  requestAnimationFrame(function () { requestAnimationFrame(function () {
    times.push(performance.now() - started);
    if (++k < 8) step(); else done(times);
  }); });
}
step();
"""
RECORD_FRAMES = """
window.frameTimes = []; window.recording = true; var last = performance.now();
requestAnimationFrame(function frame(now) {
  window.frameTimes.push(now - last); last = now;
  if (window.recording) requestAnimationFrame(frame);
});
"""


def gesture_frames(driver):
    """Frame intervals while the mouse drags the graph and the wheel zooms it, as a user would
    (Chrome DevTools input events): the page draws a cached picture until the gesture ends."""
    driver.execute_script(RECORD_FRAMES)
    mouse = {"x": 700, "y": 450, "button": "left", "clickCount": 1}
    driver.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": "mousePressed", **mouse})
    for k in range(15):
        driver.execute_cdp_cmd("Input.dispatchMouseEvent",
                               {"type": "mouseMoved", "x": 700 + 8 * k, "y": 450 + 5 * k,
                                "button": "left", "buttons": 1})
        time.sleep(0.03)
    driver.execute_cdp_cmd("Input.dispatchMouseEvent",
                           {"type": "mouseReleased", **mouse, "x": 812, "y": 520})
    for k in range(6):
        driver.execute_cdp_cmd("Input.dispatchMouseEvent",
                               {"type": "mouseWheel", "x": 700, "y": 450, "deltaX": 0,
                                "deltaY": 120 if k % 2 else -120})
        time.sleep(0.05)
    time.sleep(1.0)
    return driver.execute_script("window.recording = false; return window.frameTimes.slice(1)")


def timed(driver, script):
    """Milliseconds from running ``script`` in the page to the second frame after it."""
    return driver.execute_async_script(
        "var done = arguments[0], started = performance.now();" + script +
        "; requestAnimationFrame(function () { requestAnimationFrame(function () {"
        " done(performance.now() - started); }); });")


def measure(driver, steps, folder):
    with sg.use_graph():
        outputs, at, labels = rnn_gradient(steps)
        path = Path(folder) / f"rnn_{steps}.html"
        started = time.perf_counter()
        nodes = sg.draw(outputs, path, at=at, labels=labels)
        written = time.perf_counter() - started
    driver.get(path.as_uri())
    headless_chromium.wait_until_drawn(driver)
    first = driver.execute_script("return window.symgradViewer.firstRender")
    shown = driver.execute_script("return window.symgradViewer.visible()")
    held = driver.execute_script("return window.symgradViewer.held()")
    redraws = driver.execute_async_script(REDRAWS)
    gestures = gesture_frames(driver)
    unfold = timed(driver, "window.symgradViewer.setAllFolded(false)")
    redraws_unfolded = driver.execute_async_script(REDRAWS)
    # the window of boxes Cytoscape holds moved a whole view down, as after a long drag
    moved = timed(driver, "var cy = window.symgradViewer.cy; cy.panBy({x: 0, y: -cy.height()});"
                          " window.symgradViewer.follow()")
    fold = timed(driver, "window.symgradViewer.setAllFolded(true)")
    search = timed(driver, "window.symgradViewer.find('d_out_d_W')")
    # zoomed out until the view holds too many boxes to name: the canvas beneath draws them all
    overview = timed(driver, "var cy = window.symgradViewer.cy; cy.zoom(0.005);"
                             " window.symgradViewer.follow()")
    overview_frames = driver.execute_async_script(REDRAWS)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    print(f"{nodes} nodes ({shown} boxes at first, clusters folded past "
          f"{sg.viewer.FOLD_ABOVE} nodes; Cytoscape holds {held}), page "
          f"{path.stat().st_size / 1e6:.1f} MB written in {written:.2f} s")
    print(f"  page load to first drawing       {first:8.0f} ms")
    print(f"  redrawn zoom/pan frame (median)  {statistics.median(redraws):8.0f} ms"
          f"   all unfolded: {statistics.median(redraws_unfolded):.0f} ms,"
          f" whole graph in view: {statistics.median(overview_frames):.0f} ms")
    print(f"  drag and wheel: {len(gestures)} frames, median {statistics.median(gestures):.0f} ms,"
          f" 90th percentile {np.percentile(gestures, 90):.0f} ms, longest {max(gestures):.0f} ms")
    print(f"  unfold all {unfold:.0f} ms, fold all {fold:.0f} ms, window moved a view"
          f" {moved:.0f} ms, zoomed out to the whole graph {overview:.0f} ms")
    print(f"  search (unfold, centre, draw) {search:.0f} ms")
    if errors:
        print(f"FAILED: console errors {errors}")
        return False
    return True


def screenshot(driver, folder, target):
    """The view of a ~1,000-node graph after searching for the gradient of W, its details shown
    by hovering it: what a user sees."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    with sg.use_graph():
        outputs, at, labels = rnn_gradient(62)
        path = Path(folder) / "rnn_62.html"
        nodes = sg.draw(outputs, path, at=at, labels=labels)
        _, rows = sg.api._rows(outputs, None, at, labels=labels)
    # a derivative node of the backward pass through the middle step's tanh, in its folded cluster
    tanhs = [row["name"] for row in rows if row["op"] == "tanh" and row["kind"] == "forward"]
    name = next(row["name"] for row in rows
                  if row["grad_of"] == tanhs[len(tanhs) // 2] and row["op"] == "multiply")
    driver.get(path.as_uri())
    headless_chromium.wait_until_drawn(driver)
    driver.find_element(By.ID, "search").send_keys(name, Keys.ENTER)
    driver.execute_script("window.symgradViewer.cy.zoom({level: 0.9, renderedPosition: "
                          "{x: window.symgradViewer.cy.width() / 2, "
                          "y: window.symgradViewer.cy.height() / 2}})")
    ActionChains(driver).move_to_element_with_offset(
        driver.find_element(By.ID, "graph"), 0, 0).perform()
    time.sleep(0.5)
    driver.save_screenshot(str(target))
    print(f"wrote {target.relative_to(ROOT)}: {nodes} nodes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", action="store_true",
                        help="write examples/graph_1000.png instead of measuring")
    args = parser.parse_args()
    reason = headless_chromium.missing()
    if reason:
        print(f"FAILED: {reason}")
        return 1
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; headless Chromium "
          f"draws with the CPU")
    driver = headless_chromium.open_chromium(1400, 900)
    try:
        with tempfile.TemporaryDirectory() as folder:
            if args.screenshot:
                screenshot(driver, folder, ROOT / "examples" / "graph_1000.png")
                return 0
            ok = all([measure(driver, steps, folder) for steps in (62, 625)])
    finally:
        driver.quit()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
