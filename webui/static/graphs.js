/* BOSS web UI: the graphs (Cytoscape.js + dagre, vendored under
   static/vendor): a run's definition graph and the trace graph, and the
   refresh of the run page's graph and timeline when the run moves. Loaded
   after boss.js; registers its page starters with BOSS.register. */
(function () {
  "use strict";
  var getJSON = window.BOSS.getJSON;

  /* labels are never drawn smaller than MIN_PX on screen: the zoom never
     goes below MIN_PX / FONT (a big graph is panned, not shrunk) */
  var FONT = 13, MIN_PX = 12, MIN_ZOOM = MIN_PX / FONT;
  var MARKERS = {waiting: "\u25d0 ", failed: "\u2716 ", done: "\u2714 "};

  /* Cytoscape adds a <style> element for its container unless an element
     with this id exists; the CSP refuses inline styles, so its one rule is
     in boss.css and this tells Cytoscape it is there. */
  function cytoscapeStyled() {
    var id = "__________cytoscape_stylesheet";
    if (document.getElementById(id)) return;
    var marker = document.createElement("meta");
    marker.id = id;
    document.head.appendChild(marker);
  }
  function useDagre() {
    if (window.cytoscapeDagre && !useDagre.done) { cytoscape.use(cytoscapeDagre); useDagre.done = true; }
  }

  function defLabel(ele) {
    var d = ele.data(), text = (MARKERS[d.state] || "") + d.label;
    if (d.compound) text = (ele.isParent() ? "\u25be " : "\u25b8 ") + text;
    return text;
  }

  var DEF_STYLE = [
    {selector: "node", style: {"label": defLabel, "shape": "round-rectangle", "background-color": "#eef1f6",
      "border-width": 1, "border-color": "#9aa5b8", "border-style": "solid", "color": "#1d2433",
      "font-size": FONT, "text-valign": "center", "text-halign": "center", "text-wrap": "wrap",
      "text-max-width": 210, "width": "label", "height": "label", "padding": "7px"}},
    {selector: 'node[kind="participant"]', style: {"background-color": "#dfe9ff", "border-color": "#2f6fde"}},
    {selector: 'node[kind="start"], node[kind="end"]', style: {"shape": "ellipse", "background-color": "#1d2433", "color": "#fff", "padding": "10px"}},
    {selector: 'node[kind="concurrence"], node[kind="concurrent_iterator"], node[kind="if"]', style: {"shape": "hexagon", "padding": "10px", "background-color": "#fff"}},
    {selector: "node[?compound]", style: {"background-color": "#f4f0ff", "border-color": "#6b4fd6", "border-width": 2}},
    {selector: "node[?compound]:parent", style: {"background-opacity": 0.35, "text-valign": "top", "text-halign": "center",
      "text-margin-y": -4, "padding": "14px", "font-weight": "bold", "shape": "round-rectangle"}},
    /* a run's state: colour, border style, shape and a marker in the label */
    {selector: 'node.reached[state=""][kind!="start"]', style: {"border-style": "dotted", "color": "#556", "background-color": "#f7f8fa"}},
    {selector: 'node[state="waiting"]', style: {"background-color": "#ffe08a", "border-width": 3, "border-style": "dashed", "border-color": "#a86f00"}},
    {selector: 'node[state="failed"]', style: {"background-color": "#f28b8b", "border-width": 5, "border-style": "double", "border-color": "#a82a2a", "shape": "cut-rectangle"}},
    {selector: 'node[state="done"]', style: {"background-color": "#9fdcb2", "border-width": 2, "border-color": "#1f7a45"}},
    {selector: "edge", style: {"width": 1.5, "line-color": "#9aa5b8", "target-arrow-color": "#9aa5b8",
      "target-arrow-shape": "triangle", "curve-style": "bezier", "label": "data(label)", "font-size": 11,
      "color": "#445", "text-background-color": "#fff", "text-background-opacity": 1, "text-background-padding": "1px"}}
  ];

  /* every element of the definition; what is drawn is what no closed
     subprocess call holds */
  function DefinitionGraph(el, data) {
    var self = this;
    this.el = el;
    this.nodes = {}; this.order = []; this.edges = data.elements.edges;
    this.open = {};
    data.elements.nodes.forEach(function (n) { self.nodes[n.data.id] = n; self.order.push(n.data.id); });
    /* the calls holding where the run is open at first */
    this.order.forEach(function (id) { var d = self.nodes[id].data; if (d.compound && d.inner) self.open[id] = true; });
    var t0 = performance.now();
    this.cy = cytoscape({container: el, elements: this.visible(), style: DEF_STYLE, wheelSensitivity: 0.3,
      minZoom: MIN_ZOOM, maxZoom: 3});
    this.reached(data);
    this.layout(function () {
      self.home();
      el.dataset.drawMs = Math.round(performance.now() - t0);
      el.dataset.ready = "1";
    });
    this.cy.on("tap", "node[?compound]", function (ev) { self.toggle(ev.target.id()); });
  }
  DefinitionGraph.prototype.shown = function (id) {
    var d = this.nodes[id].data;
    while (d.parent) { if (!this.open[d.parent]) return false; d = this.nodes[d.parent].data; }
    return true;
  };
  DefinitionGraph.prototype.visible = function () {
    var self = this, ids = {}, out = [];
    this.order.forEach(function (id) { if (self.shown(id)) { ids[id] = 1; out.push(self.nodes[id]); } });
    this.edges.forEach(function (e) { if (ids[e.data.source] && ids[e.data.target]) out.push(e); });
    return out;
  };
  DefinitionGraph.prototype.layout = function (done) {
    var l = this.cy.layout({name: "dagre", rankDir: "TB", nodeSep: 28, rankSep: 36, edgeSep: 12,
      nodeDimensionsIncludeLabels: true, fit: false, animate: false});
    if (done) l.one("layoutstop", done);
    l.run();
  };
  /* redraw after a call opened or closed, keeping ``id`` where it was on screen */
  DefinitionGraph.prototype.toggle = function (id, keep) {
    var cy = this.cy, node = cy.getElementById(id), before = node.renderedPosition();
    if (this.open[id]) { delete this.open[id]; cy.remove(node.descendants()); }
    else { this.open[id] = true; var present = {}; cy.elements().forEach(function (e) { present[e.id()] = 1; });
      cy.add(this.visible().filter(function (e) { return !present[e.data.id]; })); this.reached(); }
    var self = this;
    this.layout(function () {
      if (keep === false) return;
      var after = cy.getElementById(id).renderedPosition();
      cy.panBy({x: before.x - after.x, y: before.y - after.y});
      self.el.dataset.open = Object.keys(self.open).length;
    });
  };
  DefinitionGraph.prototype.setAll = function (open) {
    var self = this;
    this.open = {};
    if (open) this.order.forEach(function (id) { if (self.nodes[id].data.compound) self.open[id] = true; });
    this.cy.elements().remove(); this.cy.add(this.visible()); this.reached();
    this.layout(function () { self.home(); self.el.dataset.open = Object.keys(self.open).length; });
  };
  /* a readable zoom around where the run is (else its first steps) */
  DefinitionGraph.prototype.home = function () {
    var cy = this.cy, here = cy.nodes('[state="waiting"], [state="failed"]').filter(function (n) { return !n.isParent(); });
    var fit = Math.min(1.1, Math.max(MIN_ZOOM, fitZoom(cy, cy.elements())));
    cy.zoom(fit);
    if (here.length) { cy.center(here); clampPan(cy); return; }
    var start = cy.getElementById("start"), bb = cy.elements().boundingBox();
    var cx = bb.w * fit <= cy.width() - 20 ? bb.x1 + bb.w / 2 : start.position().x;
    cy.pan({x: cy.width() / 2 - cx * fit, y: 16 - start.boundingBox().y1 * fit});
  };
  DefinitionGraph.prototype.fit = function () {
    var cy = this.cy, z = Math.min(1.5, Math.max(MIN_ZOOM, fitZoom(cy, cy.elements())));
    cy.zoom(z); cy.center();
  };
  DefinitionGraph.prototype.reached = function (data) {
    /* once a run has moved, a node with no state is one it has not reached (yet) */
    if (data) this.moved = data.elements.nodes.some(function (n) { return n.data.state; });
    this.cy.nodes().toggleClass("reached", !!this.moved);
  };
  DefinitionGraph.prototype.update = function (data) {
    var self = this;
    data.elements.nodes.forEach(function (n) {
      var mine = self.nodes[n.data.id];
      if (!mine) return;
      mine.data.state = n.data.state; mine.data.inner = n.data.inner;
      var node = self.cy.getElementById(n.data.id);
      if (node.length) node.data({state: n.data.state, inner: n.data.inner});
    });
    this.reached(data);
  };
  /* no empty screen beside a graph bigger than the screen: pan it back */
  function clampPan(cy) {
    var bb = cy.elements().renderedBoundingBox(), w = cy.width(), h = cy.height(), m = 16, dx = 0, dy = 0;
    if (bb.w + 2 * m > w) { if (bb.x1 > m) dx = m - bb.x1; else if (bb.x2 < w - m) dx = w - m - bb.x2; }
    if (bb.h + 2 * m > h) { if (bb.y1 > m) dy = m - bb.y1; else if (bb.y2 < h - m) dy = h - m - bb.y2; }
    if (dx || dy) cy.panBy({x: dx, y: dy});
  }
  function fitZoom(cy, eles) {
    var bb = eles.boundingBox();
    if (!bb.w || !bb.h) return 1;
    return Math.min((cy.width() - 40) / bb.w, (cy.height() - 40) / bb.h);
  }

  /* the run page's definition graph: drawn once, then its states follow
     the run (``boss:transition`` events), as does the timeline */
  function definitionGraph(el) {
    if (!el || !window.cytoscape) return null;
    cytoscapeStyled(); useDagre();
    var graph = null;
    function load() {
      return getJSON(el.dataset.url).then(function (d) {
        if (!graph) {
          graph = new DefinitionGraph(el, d);
          window.BOSS.defGraph = graph;
          button("defgraph-fit", function () { graph.fit(); });
          button("defgraph-here", function () { graph.home(); });
          button("defgraph-expand", function () { graph.setAll(true); });
          button("defgraph-collapse", function () { graph.setAll(false); });
        } else graph.update(d);
      }).catch(function (e) { el.textContent = "cannot draw the definition: " + e.message; });
    }
    var wfid = (document.getElementById("wfid") || {}).textContent, pending = null, round = 0;
    /* a transition is in the run's state at once, its trace events a moment
       later (the aggregator): look again, less and less often, until the
       timeline says the graph holds the run's end, or five times */
    var AGAIN = [1000, 2000, 4000, 8000, 15000];
    function follow(mine, n) {
      Promise.all([load(), refreshTimeline()]).then(function () {
        var section = document.getElementById("timeline-section");
        if (mine !== round || n >= AGAIN.length || (section && section.dataset.settled === "1")) return;
        pending = setTimeout(function () { follow(mine, n + 1); }, AGAIN[n]);
      });
    }
    function moved() {
      clearTimeout(pending);
      var mine = ++round;
      pending = setTimeout(function () { follow(mine, 0); }, 250);
    }
    document.addEventListener("boss:transition", function (ev) {
      var d = ev.detail || {};
      if (!(d.wfid && wfid && d.wfid !== wfid)) moved();
    });
    document.addEventListener("boss:reset", moved);
    /* rendered before the graph had all its events (an ended run opens no
       stream): look again a few times anyway */
    var section = document.getElementById("timeline-section");
    if (section && section.dataset.settled !== "1") {
      pending = setTimeout(function () { follow(round, 0); }, 1000);
    }
    return load();
  }
  function button(id, fn) { var b = document.getElementById(id); if (b) b.addEventListener("click", fn); }

  /* the timeline is rendered by the server (an SVG Gantt chart and a table):
     fetch the fragment again and put it in place */
  function refreshTimeline() {
    var section = document.getElementById("timeline-section");
    if (!section || !section.dataset.url) return null;
    return fetch(section.dataset.url, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var box = document.createElement("div");
        box.innerHTML = html;
        var fresh = box.querySelector("#timeline-section");
        var now = document.getElementById("timeline-section");
        if (fresh && now) { now.replaceWith(fresh); document.dispatchEvent(new CustomEvent("boss:timeline")); }
      }).catch(function () {});
  }

  /* -- the trace graph ------------------------------------------------------ */
  var LINK_COLOURS = {CAUSE: "#d64545", CONTEXT: "#2f6fde", ACTIVITY_EXECUTION: "#8a94a6", PRECURSOR: "#6b4fd6",
    COMPOSITION: "#1f9d55", ELEMENT: "#17a2b8", SUBJECT: "#d69e2e", CHANGE: "#e83e8c", BASE: "#795548",
    ARTIFACT: "#20c997", ORIGINAL_TRIGGER: "#999", PREVIOUS_VERSION: "#555"};
  var TYPE_SHAPES = {SourceChangeCreated: "diamond", SourceChangeSubmitted: "diamond", ArtifactCreated: "hexagon",
    CompositionDefined: "barrel", ConfidenceLevelModified: "star", ActivityTriggered: "round-rectangle",
    ActivityStarted: "round-rectangle", ActivityFinished: "round-rectangle", ActivityCanceled: "round-rectangle",
    ArtifactPublished: "hexagon", ArtifactDeployed: "vee"};
  var TYPE_COLOURS = {SourceChangeCreated: "#fde2ef", SourceChangeSubmitted: "#fbc7df", ArtifactCreated: "#d3f5e6",
    CompositionDefined: "#d6f0f5", ConfidenceLevelModified: "#fff0c2", ActivityTriggered: "#e3edff",
    ActivityStarted: "#e3edff", ActivityFinished: "#cfe0ff", ActivityCanceled: "#eee"};
  var TRACE_FONT = 12, REMOTE_BORDER = "#6b4fd6";

  function traceGraph(eid) {
    var el = document.getElementById("tracegraph"), form = document.getElementById("trace-graph-form");
    cytoscapeStyled(); useDagre();
    function draw() {
      var q = new URLSearchParams(new FormData(form)).toString();
      getJSON("/api/trace-graph/" + encodeURIComponent(eid) + "?" + q).then(function (d) {
        el.dataset.ready = "";
        if (window.BOSS.traceCy) window.BOSS.traceCy.destroy();
        /* the label is inside the node and the node as big as it: dagre
           then spaces the nodes by their labels, which cannot overlap */
        var cy = cytoscape({container: el, elements: d.elements, wheelSensitivity: 0.3, minZoom: MIN_PX / TRACE_FONT, maxZoom: 3,
          style: [
            {selector: "node", style: {"label": "data(label)", "font-size": TRACE_FONT, "text-wrap": "wrap", "text-max-width": 150,
              "text-valign": "center", "text-halign": "center", "width": "label", "height": "label", "padding": "8px",
              "border-width": 1, "border-color": "#556", "background-color": "#eee", "color": "#1d2433"}},
            {selector: "node[?center]", style: {"border-width": 4, "border-color": "#1d2433"}},
            {selector: "edge", style: {"width": 2, "curve-style": "bezier", "target-arrow-shape": "triangle",
              "label": "", "font-size": 11, "text-rotation": "autorotate", "color": "#223",
              "text-background-color": "#fff", "text-background-opacity": 0.9, "text-background-padding": "2px"}},
            {selector: "edge.show", style: {"label": "data(linkType)", "width": 3, "z-index": 10}},
            {selector: "node.show", style: {"border-width": 3}}
          ].concat(Object.keys(TYPE_SHAPES).map(function (t) { return {selector: 'node[type="' + t + '"]',
            style: {"shape": TYPE_SHAPES[t] === "star" || TYPE_SHAPES[t] === "vee" ? "round-octagon" : TYPE_SHAPES[t],
              "background-color": TYPE_COLOURS[t] || "#eee"}}; }))
           .concat(Object.keys(LINK_COLOURS).map(function (t) { return {selector: 'edge[linkType="' + t + '"]',
            style: {"line-color": LINK_COLOURS[t], "target-arrow-color": LINK_COLOURS[t]}}; }))
           /* across sites: another site's events with a double purple border
              (and "[site]" in the label); events linked to but never received
              dashed and pale, "not shared: <site>" */
           .concat([
            {selector: "node[?remote]", style: {"border-width": 4, "border-style": "double", "border-color": REMOTE_BORDER}},
            {selector: "node[?placeholder]", style: {"shape": "round-rectangle", "background-color": "#fafafa",
              "border-width": 2, "border-style": "dashed", "border-color": "#888", "color": "#556", "font-style": "italic"}},
            {selector: "node[?placeholder][?center]", style: {"border-width": 4}}
          ])
        });
        window.BOSS.traceCy = cy;
        var layout = cy.layout({name: "dagre", rankDir: "RL", nodeSep: 18, rankSep: 70, edgeSep: 10,
          nodeDimensionsIncludeLabels: true, fit: false, animate: false});
        layout.one("layoutstop", function () {
          var z = Math.min(1.2, Math.max(cy.minZoom(), fitZoom(cy, cy.elements())));
          cy.zoom(z);
          var c = cy.nodes("[?center]");
          if (c.length) cy.center(c); else cy.center();
          if (fitZoom(cy, cy.elements()) >= cy.minZoom()) cy.center(); else clampPan(cy);
          el.dataset.ready = "1"; el.dataset.nodes = d.elements.nodes.length;
        });
        layout.run();
        /* edge labels on hover (and a node's edges on hover of the node) */
        cy.on("mouseover", "edge", function (ev) { ev.target.addClass("show"); });
        cy.on("mouseout", "edge", function (ev) { ev.target.removeClass("show"); });
        cy.on("mouseover", "node", function (ev) { ev.target.connectedEdges().addClass("show"); });
        cy.on("mouseout", "node", function (ev) { ev.target.connectedEdges().removeClass("show"); });
        cy.on("tap", "node", function (ev) { window.location = "/trace/events/" + ev.target.id(); });
        legend(d);
      }).catch(function (e) { el.textContent = "cannot draw: " + e.message; });
    }
    function legend(d) {
      var usedLinks = {}, usedTypes = {};
      d.elements.edges.forEach(function (e) { usedLinks[e.data.linkType] = 1; });
      d.elements.nodes.forEach(function (n) { if (!n.data.placeholder) usedTypes[n.data.type] = 1; });
      var box = document.getElementById("trace-legend");
      box.textContent = "";
      box.appendChild(document.createTextNode("links (hover an edge or a node for its label): "));
      Object.keys(usedLinks).forEach(function (t, i) {
        if (i) box.appendChild(document.createTextNode(" · "));
        var span = document.createElement("span");  /* styled through the DOM: no inline style attribute (CSP) */
        span.style.borderBottom = "3px solid " + (LINK_COLOURS[t] || "#999");
        span.textContent = t;
        box.appendChild(span);
      });
      var types = document.getElementById("trace-types");
      if (!types) return;
      types.textContent = "events: ";
      Object.keys(usedTypes).forEach(function (t, i) {
        if (i) types.appendChild(document.createTextNode(" · "));
        var span = document.createElement("span");
        span.style.background = TYPE_COLOURS[t] || "#eee";
        span.style.border = "1px solid #556";
        span.style.padding = "0 .3rem";
        span.style.borderRadius = (TYPE_SHAPES[t] || "").indexOf("round") === 0 ? "6px" : "0";
        span.textContent = t + " (" + (TYPE_SHAPES[t] || "rectangle").replace("round-", "rounded ") + ")";
        types.appendChild(span);
      });
      sites(d);
    }
    /* which sites the events came from: this site's plain, another's with
       its border, the placeholders dashed */
    function sites(d) {
      var box = document.getElementById("trace-sites");
      if (!box) return;
      var seen = {}, order = [];
      d.elements.nodes.forEach(function (n) {
        var key = (n.data.placeholder ? "p:" : "e:") + n.data.siteLabel;
        if (!seen[key]) { seen[key] = n.data; order.push(key); }
      });
      box.textContent = "";
      if (!order.some(function (k) { return seen[k].remote || seen[k].placeholder; })) return;
      box.appendChild(document.createTextNode("sites: "));
      order.forEach(function (k, i) {
        var data = seen[k];
        if (i) box.appendChild(document.createTextNode(" · "));
        var span = document.createElement("span");
        span.className = "site-mark" + (data.placeholder ? " placeholder" : data.remote ? " remote" : "");
        span.dataset.site = data.site || "";
        span.textContent = data.placeholder ? "not shared: " + data.siteLabel : data.siteLabel;
        box.appendChild(span);
      });
    }
    form.addEventListener("submit", function (e) { e.preventDefault(); draw(); });
    draw();
  }

  window.BOSS.register("traceGraph", traceGraph);
  window.BOSS.definitionGraph = definitionGraph;
  window.BOSS.refreshTimeline = refreshTimeline;
})();
