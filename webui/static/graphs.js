/* BOSS web UI: the graphs (Cytoscape.js + dagre, vendored under
   static/vendor): a run's definition graph and the trace graph. Loaded after
   boss.js; registers its page starters with BOSS.register. */
(function () {
  "use strict";
  var getJSON = window.BOSS.getJSON;

  /* -- graphs ------------------------------------------------------------ */
  var STATE_COLOURS = {waiting: "#ffe08a", failed: "#f28b8b", done: "#9fdcb2"};
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
  function drawDefinition(el, data) {
    if (!window.cytoscape) return null;
    cytoscapeStyled();
    if (window.cytoscapeDagre && !drawDefinition.registered) { cytoscape.use(cytoscapeDagre); drawDefinition.registered = true; }
    return cytoscape({
      container: el, elements: data.elements, wheelSensitivity: 0.3,
      layout: {name: "dagre", rankDir: "TB", nodeSep: 25, rankSep: 35},
      style: [
        {selector: "node", style: {"label": "data(label)", "shape": "round-rectangle", "background-color": "#eef1f6",
          "border-width": 1, "border-color": "#9aa5b8", "font-size": 11, "text-valign": "center", "text-halign": "center",
          "width": "label", "height": 26, "padding": "8px", "text-wrap": "wrap", "text-max-width": 160}},
        {selector: 'node[kind="participant"]', style: {"background-color": "#dfe9ff", "border-color": "#2f6fde"}},
        {selector: 'node[kind="start"], node[kind="end"]', style: {"shape": "ellipse", "background-color": "#1d2433", "color": "#fff"}},
        {selector: 'node[kind="concurrence"], node[kind="concurrent_iterator"], node[kind="if"]', style: {"shape": "diamond", "height": 34}},
        {selector: 'node[state="waiting"]', style: {"background-color": STATE_COLOURS.waiting, "border-width": 3, "border-color": "#c28a00"}},
        {selector: 'node[state="failed"]', style: {"background-color": STATE_COLOURS.failed, "border-width": 3, "border-color": "#a82a2a"}},
        {selector: 'node[state="done"]', style: {"background-color": STATE_COLOURS.done}},
        {selector: "edge", style: {"width": 1.5, "line-color": "#9aa5b8", "target-arrow-color": "#9aa5b8",
          "target-arrow-shape": "triangle", "curve-style": "bezier", "label": "data(label)", "font-size": 9}}
      ]
    });
  }

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

  function traceGraph(eid) {
    var el = document.getElementById("tracegraph"), form = document.getElementById("trace-graph-form");
    cytoscapeStyled();
    if (window.cytoscapeDagre && !drawDefinition.registered) { cytoscape.use(cytoscapeDagre); drawDefinition.registered = true; }
    function draw() {
      var q = new URLSearchParams(new FormData(form)).toString();
      getJSON("/api/trace-graph/" + encodeURIComponent(eid) + "?" + q).then(function (d) {
        var cy = cytoscape({container: el, elements: d.elements, wheelSensitivity: 0.3,
          layout: {name: "dagre", rankDir: "RL", nodeSep: 20, rankSep: 60},
          style: [
            {selector: "node", style: {"label": "data(label)", "font-size": 10, "text-wrap": "wrap", "text-valign": "bottom",
              "width": 34, "height": 34, "border-width": 1, "border-color": "#556", "background-color": "#eee"}},
            {selector: "node[?center]", style: {"border-width": 4, "border-color": "#1d2433"}},
            {selector: "edge", style: {"width": 2, "curve-style": "bezier", "target-arrow-shape": "triangle",
              "label": "data(linkType)", "font-size": 8, "text-rotation": "autorotate", "color": "#445"}}
          ].concat(Object.keys(TYPE_SHAPES).map(function (t) { return {selector: 'node[type="' + t + '"]',
            style: {"shape": TYPE_SHAPES[t], "background-color": TYPE_COLOURS[t] || "#eee"}}; }))
           .concat(Object.keys(LINK_COLOURS).map(function (t) { return {selector: 'edge[linkType="' + t + '"]',
            style: {"line-color": LINK_COLOURS[t], "target-arrow-color": LINK_COLOURS[t]}}; }))
        });
        cy.on("tap", "node", function (ev) { window.location = "/trace/events/" + ev.target.id(); });
        el.dataset.ready = "1"; el.dataset.nodes = d.elements.nodes.length;
        var used = {}; d.elements.edges.forEach(function (e) { used[e.data.linkType] = 1; });
        var legend = document.getElementById("trace-legend");
        legend.textContent = "";
        Object.keys(used).forEach(function (t, i) {
          if (i) legend.appendChild(document.createTextNode(" · "));
          var span = document.createElement("span");  /* styled through the DOM: no inline style attribute (CSP) */
          span.style.borderBottom = "3px solid " + (LINK_COLOURS[t] || "#999");
          span.textContent = t;
          legend.appendChild(span);
        });
      }).catch(function (e) { el.textContent = "cannot draw: " + e.message; });
    }
    form.addEventListener("submit", function (e) { e.preventDefault(); draw(); });
    draw();
  }


  /* the run page's definition graph: drawn once, then its states follow */
  function definitionGraph(el) {
    var cy = null;
    return getJSON(el.dataset.url).then(function (d) {
      if (!cy) { cy = drawDefinition(el, d); el.dataset.ready = "1"; return; }
      d.elements.nodes.forEach(function (n) { var node = cy.getElementById(n.data.id); if (node) node.data("state", n.data.state); });
    }).catch(function (e) { el.textContent = "cannot draw the definition: " + e.message; });
  }

  window.BOSS.register("traceGraph", traceGraph);
  window.BOSS.definitionGraph = definitionGraph;
})();
