// symgrad's graph viewer: draws the positions symgrad computed with Cytoscape.js, folds and
// unfolds clusters (the derivative nodes appended for one node) and loops (a compound node
// holding one step of a loop's body), finds nodes, shows details.
// Cytoscape's cost is per element it holds, so it holds only the boxes in and around the view
// (all of them on a page of at most WINDOW_ALL boxes); a plain canvas beneath it draws the rest
// as coloured boxes and lines, and the window follows the view once it rests.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("symgrad-data").textContent);
  var nodes = data.nodes, clusters = data.clusters, loops = data.loops;
  var large = nodes.length > 2000;
  var GRAD_STROKE = "#e65100";
  // an edge across more than two layers draws faintly: an activation read back by the backward
  // pass, a weight read at every step; hovering or finding a node draws its own in full
  var LONG_EDGE = 2.5 * data.layerHeight;
  // a page of at most this many boxes is held whole, as one that opens unfolded
  var WINDOW_ALL = 300;
  // the most boxes Cytoscape holds at once: setting each up is its main cost on a software-drawn
  // canvas, and a thousand fill several views at a zoom where names can be read
  var WINDOW_LIMIT = 1000;
  // the window reaches this fraction of the view's size beyond each side, so a short pan shows
  // boxes already made
  var WINDOW_MARGIN = 0.5;
  // below this zoom a box is a few pixels across, too small to point at: Cytoscape holds none
  var WINDOW_ZOOM = 0.15;
  // milliseconds the view must rest before the window follows it: a drag or a wheel zoom moves
  // the view every frame and only the canvas beneath follows it live
  var WINDOW_DELAY = 150;

  var folded = new Set();
  // the loops folded into one box each (a loop inside a folded loop is hidden with it)
  var foldedLoops = new Set();
  var LOOP_COLOUR = "#6a1b9a";
  // the edges touching each node, to make a box's edges when it joins the window
  var incident = nodes.map(function () { return []; });
  data.edges.forEach(function (edge, k) {
    incident[edge[0]].push(k);
    incident[edge[1]].push(k);
  });

  // the outermost folded loop among loop k and the loops around it, or -1
  function foldedAround(k) {
    var outermost = -1;
    for (; k >= 0; k = loops[k].parent) if (foldedLoops.has(k)) outermost = k;
    return outermost;
  }

  // what shows node i: its own box ("n" + i), its folded cluster's ("c" + c) or the box of the
  // folded loop holding it ("f" + k)
  function shown(i) {
    var k = foldedAround(nodes[i].loop);
    if (k >= 0) return "f" + k;
    var c = nodes[i].cluster;
    return c >= 0 && folded.has(c) ? "c" + c : "n" + i;
  }

  function place(id) {
    var kind = id.charAt(0);
    return (kind === "c" ? clusters : kind === "f" || kind === "l" ? loops : nodes)[
      Number(id.slice(1))];
  }

  // the boxes shown in the present folding: nodes outside folded clusters and loops, folded
  // clusters, and folded loops not inside another
  function boxes() {
    var ids = [];
    nodes.forEach(function (n, i) {
      if (shown(i) === "n" + i) ids.push("n" + i);
    });
    folded.forEach(function (c) { ids.push("c" + c); });
    foldedLoops.forEach(function (k) { if (foldedAround(k) === k) ids.push("f" + k); });
    return ids;
  }

  // the frames ("l" + k, outer loops first) around the boxes ``ids``: Cytoscape draws a compound
  // node around its children, and holds a child only with its parent
  function framesAround(ids) {
    var around = new Set();
    ids.forEach(function (id) {
      var kind = id.charAt(0), k = -1;
      if (kind === "n") k = nodes[Number(id.slice(1))].loop;
      else if (kind === "f") k = loops[Number(id.slice(1))].parent;
      for (; k >= 0; k = loops[k].parent) around.add(k);
    });
    return Array.from(around).sort(function (a, b) { return a - b; })
      .map(function (k) { return "l" + k; });
  }

  function parentOf(k) {
    return k >= 0 ? "l" + k : undefined;
  }

  // the node found last: it keeps its mark when its box leaves the window and comes back
  var found = null, hovered = null;

  function nodeElement(id) {
    var index = Number(id.slice(1)), element, kind = id.charAt(0);
    if (kind === "l" || kind === "f") {
      var loop = loops[index];
      element = {group: "nodes", data: {id: id, w: loop.w, h: loop.h, parent: parentOf(loop.parent),
                                        label: kind === "l" ? loop.label :
                                          loop.label + "\n" + loop.count + " nodes, folded"},
                 position: {x: loop.x, y: loop.y},
                 classes: kind === "l" ? "loop" : "loop folded"};
    } else if (kind === "c") {
      var k = clusters[index];
      element = {group: "nodes", data: {id: id, label: k.label, w: k.w, h: k.h},
                 position: {x: k.x, y: k.y},
                 classes: "grad cluster" + (k.output ? " output" : "")};
    } else {
      var n = nodes[index];
      element = {group: "nodes", data: {id: id, label: n.label, w: n.w, h: n.h,
                                        parent: parentOf(n.loop)},
                 position: {x: n.x, y: n.y}, classes: n.kind + (n.output ? " output" : "")};
    }
    if (id === found) {
      element.classes += " found";
      element.selected = true;
    }
    return element;
  }

  // the kind of edge k between what shows its ends: "grad" into a derivative node, "faint" from
  // an input or across many layers
  function edgeClasses(k, source, target) {
    var grad = target.charAt(0) === "c" || nodes[data.edges[k][1]].kind === "grad";
    var input = nodes[data.edges[k][0]].kind === "input";
    var long = Math.abs(place(target).y - place(source).y) > LONG_EDGE;
    return (grad ? "grad" : "") + (input || long ? " faint" : "");
  }

  var style = [
    {selector: "node", style: {
      "shape": "round-rectangle", "width": "data(w)", "height": "data(h)",
      "label": "data(label)", "text-wrap": "wrap", "text-valign": "center", "text-halign": "center",
      "font-size": 12, "font-family": "Helvetica, Arial, sans-serif", "min-zoomed-font-size": 7,
      "border-width": 1, "border-color": "#333", "background-color": data.fill.forward}},
    {selector: "node.input", style: {"background-color": data.fill.input,
                                     "shape": "round-rectangle",
                                     "corner-radius": 14}},
    {selector: "node.const", style: {"background-color": data.fill["const"]}},
    // dashed strokes cost a software-drawn canvas ten times solid ones: large graphs tell
    // derivative nodes by their colour alone
    {selector: "node.grad", style: {"background-color": data.fill.grad, "border-color": GRAD_STROKE,
                                    "border-style": large ? "solid" : "dashed"}},
    {selector: "node.cluster", style: {"border-width": 2, "font-weight": "bold"}},
    {selector: "node.output", style: {"border-width": 3}},
    // a loop: a frame around one step of its body, its label above it, as in the pictures
    {selector: "node.loop", style: {
      "shape": "round-rectangle", "background-color": "#f3e5f5", "background-opacity": 0.4,
      "border-color": LOOP_COLOUR, "border-width": 1.5, "color": LOOP_COLOUR,
      "text-valign": "top", "text-halign": "center", "text-justification": "left",
      "padding": 10}},
    {selector: "node.loop.folded", style: {"text-valign": "center", "background-opacity": 1,
                                           "border-width": 2, "font-weight": "bold"}},
    {selector: "node.found", style: {"overlay-color": "#ffd600", "overlay-opacity": 0.45,
                                     "overlay-padding": 6}},
    {selector: "node:selected", style: {"border-color": "#1565c0", "border-width": 3}},
    {selector: "edge", style: {"width": 1, "line-color": "#777", "target-arrow-color": "#777",
                               "curve-style": large ? "haystack" : "straight",
                               "target-arrow-shape": large ? "none" : "triangle",
                               "arrow-scale": 0.8}},
    {selector: "edge.grad", style: {"line-color": GRAD_STROKE, "target-arrow-color": GRAD_STROKE,
                                    "line-style": large ? "solid" : "dashed"}},
    {selector: "edge.faint", style: {"opacity": 0.15}},
    {selector: "edge.near", style: {"opacity": 1, "width": 2, "z-index": 10}}
  ];

  var container = document.getElementById("graph");
  // the boxes and edges outside the window, beneath Cytoscape's own (transparent) canvases
  var sketch = document.createElement("canvas");
  sketch.id = "sketch";
  container.appendChild(sketch);

  var cy = cytoscape({
    container: container,
    elements: [],
    style: style,
    layout: {name: "preset"},
    minZoom: 0.005, maxZoom: 4,
    boxSelectionEnabled: false, autoungrabify: true,
    // on large graphs: draw a cached picture while panning and zooming, then redraw once
    textureOnViewport: large, hideEdgesOnViewport: large, hideLabelsOnViewport: large,
    pixelRatio: large ? 1 : "auto"
  });

  // -- the window: the boxes Cytoscape holds ------------------------------------------------------
  var held = new Set();             // ids of the boxes Cytoscape holds

  function overlaps(box, area) {
    return box.x + box.w / 2 >= area.x1 && box.x - box.w / 2 <= area.x2 &&
      box.y + box.h / 2 >= area.y1 && box.y - box.h / 2 <= area.y2;
  }

  // the part of the page in view, grown by ``margin`` of its size beyond each side
  function viewArea(margin) {
    var zoom = cy.zoom(), pan = cy.pan(), w = cy.width() / zoom, h = cy.height() / zoom;
    var x1 = -pan.x / zoom, y1 = -pan.y / zoom;
    return {x1: x1 - margin * w, y1: y1 - margin * h, x2: x1 + (1 + margin) * w,
            y2: y1 + (1 + margin) * h};
  }

  var unreadable = false;           // the view shows too many boxes, or too small, to name

  // the boxes Cytoscape should hold: all of them on a small page; else those in the view and its
  // margin, or in the view alone, or none when even those are too many or too small to read
  function wanted() {
    var all = boxes();
    unreadable = false;
    if (all.length <= WINDOW_ALL) return all;
    if (cy.zoom() >= WINDOW_ZOOM) {
      var margin = [WINDOW_MARGIN, 0];
      for (var m = 0; m < margin.length; m++) {
        var area = viewArea(margin[m]);
        var inside = all.filter(function (id) { return overlaps(place(id), area); });
        if (inside.length <= WINDOW_LIMIT) return inside;
      }
    }
    unreadable = true;
    return [];
  }

  // Cytoscape made to hold exactly ``ids`` and the edges between them: one removal and one
  // addition, whatever changed (the view, or the folding)
  function hold(ids) {
    ids = framesAround(ids).concat(ids);      // parents first: a child joins with its parent
    var next = new Set(ids);
    var leaving = [];
    held.forEach(function (id) { if (!next.has(id)) leaving.push(id); });
    var joining = ids.filter(function (id) { return !held.has(id); });
    var elements = joining.map(nodeElement), edges = new Set();
    joining.forEach(function (id) {
      var kind = id.charAt(0);
      if (kind === "l") return;         // a frame: its children's edges are their own
      var members = kind === "c" ? clusters[Number(id.slice(1))].members
        : kind === "f" ? loops[Number(id.slice(1))].members : [Number(id.slice(1))];
      members.forEach(function (i) {
        incident[i].forEach(function (k) {
          var source = shown(data.edges[k][0]), target = shown(data.edges[k][1]);
          var edgeId = source + ">" + target;
          if (source === target || edges.has(edgeId) || !next.has(source) ||
              !next.has(target)) return;
          // every edge of a joining box is new: Cytoscape removed it with the box, or never
          // held it
          edges.add(edgeId);
          var classes = edgeClasses(k, source, target);
          if (source === found || target === found) classes += " near";
          elements.push({group: "edges", data: {id: edgeId, source: source, target: target},
                         classes: classes});
        });
      });
    });
    if (!leaving.length && !elements.length) return;
    cy.batch(function () {
      if (leaving.length) {
        cy.collection(leaving.map(function (id) { return cy.getElementById(id); })).remove();
      }
      if (elements.length) cy.add(elements);
    });
    held = next;
    sketchSoon();
  }

  var windowTimer = null;

  function follow() {
    clearTimeout(windowTimer);
    windowTimer = null;
    var wasUnreadable = unreadable;
    hold(wanted());
    // the status tells when names are too small to show, and otherwise keeps a search's result
    if (unreadable !== wasUnreadable) showCount();
  }

  function followSoon() {
    clearTimeout(windowTimer);
    windowTimer = setTimeout(follow, WINDOW_DELAY);
    sketchSoon();
  }

  cy.on("viewport", followSoon);
  window.addEventListener("resize", followSoon);

  // -- the sketch: what Cytoscape does not hold, as plain boxes and lines ----------------------
  var sketchPending = false;

  function sketchSoon() {
    if (sketchPending) return;
    sketchPending = true;
    requestAnimationFrame(function () {
      sketchPending = false;
      drawSketch();
    });
  }

  function drawSketch() {
    var ratio = window.devicePixelRatio || 1, width = cy.width(), height = cy.height();
    var pixelsWide = Math.round(width * ratio), pixelsHigh = Math.round(height * ratio);
    if (sketch.width !== pixelsWide || sketch.height !== pixelsHigh) {
      sketch.width = pixelsWide;
      sketch.height = pixelsHigh;
      sketch.style.width = width + "px";
      sketch.style.height = height + "px";
    }
    var context = sketch.getContext("2d");
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.clearRect(0, 0, sketch.width, sketch.height);
    var all = boxes();
    if (held.size === all.length) return;
    var zoom = cy.zoom(), pan = cy.pan(), area = viewArea(0);
    context.setTransform(zoom * ratio, 0, 0, zoom * ratio, pan.x * ratio, pan.y * ratio);
    // edges first, beneath the boxes: one path for each look, as Cytoscape's style draws it
    // (an edge of the node found or hovered in full, dashed into a derivative node on a page
    // small enough to afford dashes)
    var looks = [
      {name: "", colour: "#777", alpha: 1, width: 1},
      {name: "grad", colour: GRAD_STROKE, alpha: 1, width: 1},
      {name: " faint", colour: "#777", alpha: 0.15, width: 1},
      {name: "grad faint", colour: GRAD_STROKE, alpha: 0.15, width: 1},
      {name: " near", colour: "#777", alpha: 1, width: 2},
      {name: "grad near", colour: GRAD_STROKE, alpha: 1, width: 2, dashed: !large}];
    var paths = {};
    looks.forEach(function (look) { paths[look.name] = new Path2D(); });
    data.edges.forEach(function (edge, k) {
      var source = shown(edge[0]), target = shown(edge[1]);
      if (source === target || (held.has(source) && held.has(target))) return;
      var a = place(source), b = place(target);
      if (Math.max(a.x, b.x) < area.x1 || Math.min(a.x, b.x) > area.x2 ||
          Math.max(a.y, b.y) < area.y1 || Math.min(a.y, b.y) > area.y2) return;
      var classes = edgeClasses(k, source, target);
      if (source === found || target === found || source === hovered || target === hovered) {
        classes = classes.replace(" faint", "") + " near";
      }
      var path = paths[classes];
      path.moveTo(a.x, a.y);
      path.lineTo(b.x, b.y);
    });
    looks.forEach(function (look) {
      context.globalAlpha = look.alpha;
      context.strokeStyle = look.colour;
      context.lineWidth = look.width / zoom;
      context.setLineDash(look.dashed ? [6 / zoom, 3 / zoom] : []);
      context.stroke(paths[look.name]);
    });
    context.setLineDash([]);
    context.lineWidth = 1 / zoom;
    context.globalAlpha = 1;
    // boxes: one path for each fill; borders only when they are more than a few pixels wide
    var fills = {};
    all.forEach(function (id) {
      if (held.has(id)) return;
      var box = place(id);
      if (!overlaps(box, area)) return;
      var kind = id.charAt(0) === "c" ? "grad" : id.charAt(0) === "f" ? "loop" : box.kind;
      (fills[kind] = fills[kind] || new Path2D()).rect(box.x - box.w / 2, box.y - box.h / 2,
                                                       box.w, box.h);
    });
    Object.keys(fills).forEach(function (kind) {
      context.fillStyle = kind === "loop" ? "#f3e5f5" : data.fill[kind] || data.fill.forward;
      context.fill(fills[kind]);
      if (zoom > 0.05) {
        context.strokeStyle = kind === "grad" ? GRAD_STROKE : kind === "loop" ? LOOP_COLOUR
          : "#333";
        context.stroke(fills[kind]);
      }
    });
    // the frames of the loops shown unfolded that Cytoscape does not hold
    var frames = new Path2D();
    loops.forEach(function (loop, k) {
      if (foldedAround(k) < 0 && !held.has("l" + k) && overlaps(loop, area)) {
        frames.rect(loop.x - loop.w / 2, loop.y - loop.h / 2, loop.w, loop.h);
      }
    });
    context.strokeStyle = LOOP_COLOUR;
    context.stroke(frames);
  }

  function fold(c) {
    if (c < 0 || c >= clusters.length || folded.has(c)) return false;
    folded.add(c);
    hold(wanted());
    return true;
  }

  function unfold(c) {
    if (!folded.has(c)) return false;
    folded.delete(c);
    hold(wanted());
    return true;
  }

  function foldLoop(k) {
    if (k < 0 || k >= loops.length || foldedLoops.has(k)) return false;
    foldedLoops.add(k);
    hold(wanted());
    showCount();
    return true;
  }

  function unfoldLoop(k) {
    if (!foldedLoops.has(k)) return false;
    foldedLoops.delete(k);
    hold(wanted());
    showCount();
    return true;
  }

  function setAllFolded(fold) {
    folded = new Set(fold ? clusters.map(function (_, c) { return c; }) : []);
    hold(wanted());
    showCount();
  }

  function showCount() {
    var count = boxes().length;
    status.textContent = count + " boxes shown, " + folded.size + " of " + clusters.length +
      " clusters folded" + (loops.length ? ", " + foldedLoops.size + " of " + loops.length +
      " loops" : "") + (unreadable ? "; zoom in for names" : "");
  }

  // -- search -------------------------------------------------------------------------------------
  var search = document.getElementById("search"), status = document.getElementById("status");
  var matches = [], current = -1, lastQuery = null;

  function matching(query) {
    var exact = [], partial = [];
    nodes.forEach(function (n, i) {
      if (n.name === query || n.op === query) exact.push(i);
      else if (n.name.indexOf(query) >= 0) partial.push(i);
    });
    return exact.concat(partial);
  }

  function focus(i) {
    var c = nodes[i].cluster;
    if (c >= 0) folded.delete(c);
    for (var k = nodes[i].loop; k >= 0; k = loops[k].parent) foldedLoops.delete(k);
    cy.nodes(".found").removeClass("found");
    cy.nodes(":selected").unselect();
    found = "n" + i;
    // centred on its place: its box may not exist until the window has moved there
    var zoom = Math.max(cy.zoom(), 1);
    cy.viewport({zoom: zoom, pan: {x: cy.width() / 2 - nodes[i].x * zoom,
                                   y: cy.height() / 2 - nodes[i].y * zoom}});
    follow();
    var element = cy.getElementById(found);
    element.addClass("found").select();
    return element;
  }

  function find(query) {
    query = query.trim();
    if (!query) return null;
    if (query !== lastQuery) {
      matches = matching(query);
      current = -1;
      lastQuery = query;
    }
    if (!matches.length) {
      status.textContent = "no node is named " + JSON.stringify(query) + " or of that op";
      return null;
    }
    current = (current + 1) % matches.length;
    var i = matches[current];
    focus(i);
    status.textContent = nodes[i].name + ": " + (current + 1) + " of " + matches.length;
    return nodes[i].name;
  }

  search.addEventListener("keydown", function (event) {
    if (event.key === "Enter") find(search.value);
  });
  search.addEventListener("input", function () { lastQuery = null; });

  // -- details on hover ---------------------------------------------------------------------------
  var tooltip = document.getElementById("tooltip");

  function details(id) {
    var index = Number(id.slice(1)), kind = id.charAt(0);
    if (kind === "l" || kind === "f") {
      var loop = loops[index];
      return [loop.label, loop.count + " nodes: one step of the loop, drawn once however many " +
              "steps it takes", kind === "l" ? "double-click to fold the loop into one box"
                : "click to unfold"];
    }
    if (kind === "c") {
      var k = clusters[index];
      return [k.count + " derivative nodes appended for " + k.of +
              (k.of_op ? " (" + k.of_op + ")" : ""),
              "click to unfold"];
    }
    var n = nodes[index];
    var lines = [n.name + "  (" + n.kind + ")", "op:    " + n.op, "shape: " + n.shape];
    if (n.value) lines.push("value: " + n.value);
    if (n.from) lines.push("from:  " + n.from + "  (the node it differentiates)");
    if (n.code) lines.push("code:  " + n.code);
    if (n.outputs.length) lines.push("output: " + n.outputs.join(", "));
    if (n.cluster >= 0) lines.push("double-click to fold the " + clusters[n.cluster].count +
                                   " nodes appended for " + clusters[n.cluster].of);
    else if (n.loop >= 0) lines.push("in a loop: double-click to fold it into one box");
    return lines;
  }

  cy.on("mouseover", "node", function (event) {
    tooltip.textContent = details(event.target.id()).join("\n");
    var box = cy.container().getBoundingClientRect();
    tooltip.style.left = (box.left + event.renderedPosition.x + 14) + "px";
    tooltip.style.top = (box.top + event.renderedPosition.y + 14) + "px";
    tooltip.hidden = false;
  });
  cy.on("mouseover", "node", function (event) {
    event.target.connectedEdges().addClass("near");
    hovered = event.target.id();
    sketchSoon();
  });
  cy.on("mouseout", "node", function (event) {
    tooltip.hidden = true;
    event.target.connectedEdges().not(cy.nodes(":selected").connectedEdges()).removeClass("near");
    hovered = null;
    sketchSoon();
  });
  cy.on("select", "node", function (event) {
    event.target.connectedEdges().addClass("near");
    // a box picked by hand replaces the node found
    if (found !== null && event.target.id() !== found) forget();
  });
  cy.on("unselect", "node", function (event) {
    event.target.connectedEdges().removeClass("near");
  });
  // the node found keeps its mark when its box leaves the window and comes back, until a click
  // on the background or on another box
  function forget() {
    found = null;
    cy.nodes(".found").removeClass("found");
    sketchSoon();
  }
  cy.on("tap", function (event) {
    if (event.target === cy && found !== null) forget();
  });
  // a box under the pointer may leave the window without a mouseout
  cy.on("viewport", function () {
    tooltip.hidden = true;
    hovered = null;
  });

  cy.on("tap", "node.cluster", function (event) {
    unfold(Number(event.target.id().slice(1)));
    showCount();
  });
  cy.on("tap", "node.loop.folded", function (event) {
    unfoldLoop(Number(event.target.id().slice(1)));
  });
  // on the core, which an event reaches once, after it has bubbled up through a box's frames:
  // a double-click folds the box's cluster, else the innermost loop around it
  cy.on("dbltap", function (event) {
    var target = event.target;
    if (target === cy) return;
    var id = target.id(), kind = id.charAt(0), index = Number(id.slice(1));
    if (kind === "l") foldLoop(index);
    else if (kind === "n" && fold(nodes[index].cluster)) showCount();
    else if (kind === "n") foldLoop(nodes[index].loop);
  });

  document.getElementById("fold-all").addEventListener("click", function () {
    setAllFolded(true);
  });
  document.getElementById("unfold-all").addEventListener("click", function () {
    setAllFolded(false);
  });
  document.getElementById("fit").addEventListener("click", function () {
    view();
    follow();
  });
  Array.prototype.forEach.call(document.querySelectorAll(".swatch"), function (swatch) {
    swatch.style.backgroundColor = data.fill[swatch.classList[1]];
  });

  // the extent of the graph from the data: asking Cytoscape measures every label, seconds on
  // large graphs
  var extent = {x1: Infinity, y1: Infinity, x2: -Infinity, y2: -Infinity};
  nodes.concat(loops).forEach(function (n) {
    extent.x1 = Math.min(extent.x1, n.x - n.w / 2);
    extent.x2 = Math.max(extent.x2, n.x + n.w / 2);
    extent.y1 = Math.min(extent.y1, n.y - n.h / 2);
    extent.y2 = Math.max(extent.y2, n.y + n.h / 2);
  });

  // the whole graph when that leaves its boxes readable; else its top, as wide as fits, centred
  // on the median box of the rows in view (a long graph's first rows may be far from its middle)
  function view() {
    var margin = 20, w = extent.x2 - extent.x1, h = extent.y2 - extent.y1;
    var zoom = Math.min((cy.width() - 2 * margin) / w, (cy.height() - 2 * margin) / h, 1.5);
    var top = margin, middle = (extent.x1 + extent.x2) / 2;
    if (zoom < 0.3) {
      zoom = Math.min(1, Math.max(0.3, (cy.width() - 2 * margin) / w));
      var bottom = extent.y1 + (cy.height() - margin) / zoom;
      var xs = nodes.filter(function (n) { return n.y - n.h / 2 <= bottom; })
        .map(function (n) { return n.x; }).sort(function (a, b) { return a - b; });
      if (xs.length) middle = xs[Math.floor(xs.length / 2)];
    } else {
      top = (cy.height() - h * zoom) / 2;
    }
    cy.viewport({zoom: zoom, pan: {x: cy.width() / 2 - middle * zoom,
                                   y: top - extent.y1 * zoom}});
  }

  folded = new Set(data.folded ? clusters.map(function (_, c) { return c; }) : []);
  view();
  follow();
  showCount();
  window.symgradViewer = {
    cy: cy, find: find, fold: fold, unfold: unfold, setAllFolded: setAllFolded,
    clusters: clusters.length, nodes: nodes.length,
    foldLoop: foldLoop, unfoldLoop: unfoldLoop, loops: loops.length,
    foldedLoops: function () { return Array.from(foldedLoops); },
    // the boxes shown in the present folding, and how many of them Cytoscape holds
    visible: function () { return boxes().length; },
    held: function () { return cy.nodes().length; },
    // the window moved to the view now, as it does once the view rests
    follow: follow, windowAll: WINDOW_ALL, windowLimit: WINDOW_LIMIT, windowZoom: WINDOW_ZOOM,
    folded: function () { return Array.from(folded); }, rendered: false
  };
  // two frames on: Cytoscape has drawn the graph once
  requestAnimationFrame(function () {
    requestAnimationFrame(function () {
      window.symgradViewer.rendered = true;
      // since the navigation began: reading the page, the library and the data, and drawing
      window.symgradViewer.firstRender = performance.now();
    });
  });
})();
