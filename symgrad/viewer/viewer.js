// symgrad's graph viewer: draws the positions symgrad computed with Cytoscape.js, folds and
// unfolds clusters (the derivative nodes appended for one node), finds nodes, shows details.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("symgrad-data").textContent);
  var nodes = data.nodes, clusters = data.clusters;
  var large = nodes.length > 2000;
  var GRAD_STROKE = "#e65100";
  // an edge across more than two layers draws faintly: an activation read back by the backward
  // pass, a weight read at every step; hovering or finding a node draws its own in full
  var LONG_EDGE = 2.5 * data.layerHeight;

  var folded = new Set();
  // the edges touching each node, to redraw only those when a cluster folds or unfolds
  var incident = nodes.map(function () { return []; });
  data.edges.forEach(function (edge, k) {
    incident[edge[0]].push(k);
    incident[edge[1]].push(k);
  });

  function shown(i) {
    var c = nodes[i].cluster;
    return c >= 0 && folded.has(c) ? "c" + c : "n" + i;
  }

  function nodeElement(i) {
    var n = nodes[i];
    return {group: "nodes", data: {id: "n" + i, label: n.label, w: n.w, h: n.h},
            position: {x: n.x, y: n.y}, classes: n.kind + (n.output ? " output" : "")};
  }

  function clusterElement(c) {
    var k = clusters[c];
    return {group: "nodes", data: {id: "c" + c, label: k.label, w: k.w, h: k.h},
            position: {x: k.x, y: k.y}, classes: "grad cluster" + (k.output ? " output" : "")};
  }

  function place(id) {
    return (id.charAt(0) === "c" ? clusters : nodes)[Number(id.slice(1))];
  }

  // edge k between what shows its ends (a folded cluster stands for its members), or null
  function edgeElement(k) {
    var source = shown(data.edges[k][0]), target = shown(data.edges[k][1]);
    if (source === target) return null;
    var grad = target.charAt(0) === "c" || nodes[data.edges[k][1]].kind === "grad";
    var input = nodes[data.edges[k][0]].kind === "input";
    var long = Math.abs(place(target).y - place(source).y) > LONG_EDGE;
    return {group: "edges", data: {id: source + ">" + target, source: source, target: target},
            classes: (grad ? "grad" : "") + (input || long ? " faint" : "")};
  }

  function edgesOf(indices) {
    var found = new Map();
    indices.forEach(function (i) {
      incident[i].forEach(function (k) {
        var edge = edgeElement(k);
        if (edge && !found.has(edge.data.id) && cy.getElementById(edge.data.id).empty()) {
          found.set(edge.data.id, edge);
        }
      });
    });
    return Array.from(found.values());
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

  var cy = cytoscape({
    container: document.getElementById("graph"),
    elements: [],
    style: style,
    layout: {name: "preset"},
    minZoom: 0.005, maxZoom: 4,
    boxSelectionEnabled: false, autoungrabify: true,
    // on large graphs: draw a cached picture while panning and zooming, then redraw once
    textureOnViewport: large, hideEdgesOnViewport: large, hideLabelsOnViewport: large,
    pixelRatio: large ? 1 : "auto"
  });

  function fold(c) {
    if (c < 0 || c >= clusters.length || folded.has(c)) return false;
    var members = clusters[c].members;
    cy.batch(function () {
      folded.add(c);
      cy.collection(members.map(function (i) { return cy.getElementById("n" + i); })).remove();
      cy.add(clusterElement(c));
      cy.add(edgesOf(members));
    });
    return true;
  }

  function unfold(c) {
    if (!folded.has(c)) return false;
    var members = clusters[c].members;
    cy.batch(function () {
      folded.delete(c);
      cy.getElementById("c" + c).remove();
      cy.add(members.map(nodeElement));
      cy.add(edgesOf(members));
    });
    return true;
  }

  function setAllFolded(fold) {
    cy.batch(function () {
      cy.elements().remove();
      folded = new Set(fold ? clusters.map(function (_, c) { return c; }) : []);
      var elements = [];
      nodes.forEach(function (n, i) {
        if (!(n.cluster >= 0 && folded.has(n.cluster))) elements.push(nodeElement(i));
      });
      folded.forEach(function (c) { elements.push(clusterElement(c)); });
      var seen = new Set();
      data.edges.forEach(function (_, k) {
        var edge = edgeElement(k);
        if (edge && !seen.has(edge.data.id)) {
          seen.add(edge.data.id);
          elements.push(edge);
        }
      });
      cy.add(elements);
    });
    showCount();
  }

  function showCount() {
    status.textContent = cy.nodes().length + " boxes shown, " + folded.size + " of " +
      clusters.length + " clusters folded";
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
    if (c >= 0) unfold(c);
    cy.nodes(".found").removeClass("found");
    cy.nodes(":selected").unselect();
    var element = cy.getElementById("n" + i);
    element.addClass("found").select();
    cy.zoom(Math.max(cy.zoom(), 1));
    cy.center(element);
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
    var index = Number(id.slice(1));
    if (id.charAt(0) === "c") {
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
    return lines;
  }

  cy.on("mouseover", "node", function (event) {
    tooltip.textContent = details(event.target.id()).join("\n");
    var box = cy.container().getBoundingClientRect();
    tooltip.style.left = (box.left + event.renderedPosition.x + 14) + "px";
    tooltip.style.top = (box.top + event.renderedPosition.y + 14) + "px";
    tooltip.hidden = false;
  });
  cy.on("mouseover", "node", function (event) { event.target.connectedEdges().addClass("near"); });
  cy.on("mouseout", "node", function (event) {
    tooltip.hidden = true;
    event.target.connectedEdges().not(cy.nodes(":selected").connectedEdges()).removeClass("near");
  });
  cy.on("select", "node", function (event) { event.target.connectedEdges().addClass("near"); });
  cy.on("unselect", "node", function (event) {
    event.target.connectedEdges().removeClass("near");
  });
  cy.on("viewport", function () { tooltip.hidden = true; });

  cy.on("tap", "node.cluster", function (event) {
    unfold(Number(event.target.id().slice(1)));
    showCount();
  });
  cy.on("dbltap", "node", function (event) {
    var id = event.target.id();
    if (id.charAt(0) === "n" && fold(nodes[Number(id.slice(1))].cluster)) showCount();
  });

  document.getElementById("fold-all").addEventListener("click", function () {
    setAllFolded(true);
  });
  document.getElementById("unfold-all").addEventListener("click", function () {
    setAllFolded(false);
  });
  document.getElementById("fit").addEventListener("click", function () { view(); });
  Array.prototype.forEach.call(document.querySelectorAll(".swatch"), function (swatch) {
    swatch.style.backgroundColor = data.fill[swatch.classList[1]];
  });

  // the extent of the graph from the data: asking Cytoscape measures every label, seconds on
  // large graphs
  var extent = {x1: Infinity, y1: Infinity, x2: -Infinity, y2: -Infinity};
  nodes.forEach(function (n) {
    extent.x1 = Math.min(extent.x1, n.x - n.w / 2);
    extent.x2 = Math.max(extent.x2, n.x + n.w / 2);
    extent.y1 = Math.min(extent.y1, n.y - n.h / 2);
    extent.y2 = Math.max(extent.y2, n.y + n.h / 2);
  });

  // the whole graph when that leaves its boxes readable; else its top, as wide as fits
  function view() {
    var margin = 20, w = extent.x2 - extent.x1, h = extent.y2 - extent.y1;
    var zoom = Math.min((cy.width() - 2 * margin) / w, (cy.height() - 2 * margin) / h, 1.5);
    var top = margin;
    if (zoom < 0.3) {
      zoom = Math.min(1, Math.max(0.3, (cy.width() - 2 * margin) / w));
    } else {
      top = (cy.height() - h * zoom) / 2;
    }
    cy.viewport({zoom: zoom, pan: {x: (cy.width() - w * zoom) / 2 - extent.x1 * zoom,
                                   y: top - extent.y1 * zoom}});
  }

  setAllFolded(data.folded);
  view();
  window.symgradViewer = {
    cy: cy, find: find, fold: fold, unfold: unfold, setAllFolded: setAllFolded,
    clusters: clusters.length, nodes: nodes.length,
    visible: function () { return cy.nodes().length; }, rendered: false
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
