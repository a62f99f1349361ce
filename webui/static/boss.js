/* BOSS web UI: small, dependency-free glue; Cytoscape.js (+ dagre) draws
   graphs and Chart.js charts, both vendored under static/vendor. */
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;

  function getJSON(url) {
    return fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json().then(function (b) { if (!r.ok) throw new Error(b.error || r.status); return b; }); });
  }
  function postJSON(url, body) {
    return fetch(url, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json"},
      body: JSON.stringify(body || {})}).then(function (r) { return r.json(); });
  }
  function esc(s) { return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]; }); }
  function when(t) { if (!t) return "-"; return new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19); }
  function dur(s) { if (s == null) return "-"; if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 120) return s.toFixed(1) + " s"; if (s < 7200) return (s / 60).toFixed(1) + " min"; return (s / 3600).toFixed(1) + " h"; }

  /* -- the live run list: poll the JSON twin of this page -------------- */
  function liveRuns(interval) {
    var body = document.getElementById("runs-body"), live = document.getElementById("live");
    function tick() {
      if (!live || !live.checked || document.hidden) return;
      getJSON("/api/runs" + window.location.search).then(function (d) {
        var rows = d.runs.map(function (r) {
          return '<tr data-wfid="' + esc(r.wfid) + '"><td><a href="/runs/' + encodeURIComponent(r.wfid) + '">' + esc(r.wfid) + "</a></td><td>" +
            esc(r.name) + '</td><td><span class="badge st-' + esc(r.status) + '">' + esc(r.status) + "</span></td><td>" +
            when(r.launched_at) + "</td><td>" + esc(r.owner || "") + "</td></tr>";
        });
        body.innerHTML = rows.join("") || '<tr><td colspan="5" class="empty">no runs</td></tr>';
        var all = 0;
        Object.keys(d.counts).forEach(function (s) { all += d.counts[s];
          var b = document.querySelector('#counts b[data-status="' + s + '"]'); if (b) b.textContent = d.counts[s]; });
        var a = document.querySelector('#counts b[data-status=""]'); if (a) a.textContent = all;
        var range = document.getElementById("range");
        if (range) range.textContent = (d.total ? d.offset + 1 : 0) + "–" + (d.offset + d.runs.length) + " of " + d.total;
        var ms = document.getElementById("server-ms"); if (ms) ms.textContent = d.server_ms + " ms";
      }).catch(function () {});
    }
    setInterval(tick, interval);
  }

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

  var ENDED = ["finished", "cancelled", "killed"];
  /* The page reloads when the run changes or when more of its trace events
     reach the graph: the aggregator writes them a moment after the engine
     stores the run, so a run can end before its timeline is complete. Once
     the run has ended and the graph holds its end, nothing more will come. */
  function runPage(wfid, interval, status, nErrors, updated, nEvents, settled) {
    var el = document.getElementById("defgraph"), cy = null;
    function graph() {
      return getJSON(el.dataset.url).then(function (d) {
        if (!cy) { cy = drawDefinition(el, d); el.dataset.ready = "1"; return; }
        d.elements.nodes.forEach(function (n) { var node = cy.getElementById(n.data.id); if (node) node.data("state", n.data.state); });
      }).catch(function (e) { el.textContent = "cannot draw the definition: " + e.message; });
    }
    graph();
    var ended = ENDED.indexOf(status) >= 0;
    if (ended && settled) return;
    // an ended run whose graph never catches up (no aggregator) stops asking
    var giveUp = ended ? Date.now() + 300000 : Infinity;
    /* once the visitor is going elsewhere (a link, a form, the address bar),
       a reload would cancel that navigation: stop following the run */
    var leaving = false;
    window.addEventListener("beforeunload", function () { leaving = true; clearInterval(timer); });
    var timer = setInterval(function () {
      if (document.hidden || leaving) return;
      if (Date.now() > giveUp) { clearInterval(timer); return; }
      var base = "/api/runs/" + encodeURIComponent(wfid);
      Promise.all([getJSON(base), getJSON(base + "/timeline")]).then(function (r) {
        var d = r[0], t = r[1];
        var editing = document.activeElement && document.activeElement.tagName === "TEXTAREA";
        if ((d.status !== status || d.errors.length !== nErrors || d.updated_at !== updated ||
             t.events !== nEvents) && !editing && !leaving) {
          window.location.reload();
        }
      }).catch(function () {});
    }, interval);
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

  /* -- charts -------------------------------------------------------------- */
  var PALETTE = ["#2f6fde", "#d64545", "#1f9d55", "#d69e2e", "#6b4fd6", "#17a2b8", "#e83e8c", "#795548"];
  function healthCharts(report) {
    if (!window.Chart) return;
    ["participants", "processes"].forEach(function (key) {
      var names = Object.keys(report[key]);
      function series(field, scale) {
        return names.map(function (n, i) { return {label: n, borderColor: PALETTE[i % PALETTE.length], tension: .2, spanGaps: true,
          data: report[key][n].days.map(function (d) { var v = d[field]; return v == null ? null : v * (scale || 1); })}; });
      }
      var rate = document.getElementById("rate-" + key), du = document.getElementById("dur-" + key);
      if (rate) new Chart(rate, {type: "line", data: {labels: report.days, datasets: series("success_rate", 100)},
        options: {scales: {y: {min: 0, max: 100}}, animation: false}});
      if (du) new Chart(du, {type: "line", data: {labels: report.days, datasets: series("duration_p50")}, options: {animation: false}});
    });
  }

  function tracePage() {
    var ltForm = document.getElementById("leadtime-form"), chart = null;
    function leadtime() {
      var q = new URLSearchParams(new FormData(ltForm));
      if (!q.get("level")) return;
      getJSON("/api/leadtime-series?" + q.toString()).then(function (d) {
        var pts = d.points.filter(function (p) { return p.seconds != null; });
        var data = {datasets: [{label: "lead time to " + d.level + " (s)", backgroundColor: "#2f6fde", borderColor: "#2f6fde", showLine: true,
          data: pts.map(function (p) { return {x: p.time * 1000, y: p.seconds}; })}]};
        if (chart) chart.destroy();
        chart = new Chart(document.getElementById("leadtime-chart"), {type: "scatter", data: data, options: {animation: false,
          scales: {x: {type: "linear", ticks: {callback: function (v) { return new Date(v).toISOString().slice(5, 16).replace("T", " "); }}}}}});
        document.getElementById("leadtime-summary").textContent = d.count + " change(s) reached it, " + d.pending +
          " not yet · p50 " + dur(d.p50) + " · p90 " + dur(d.p90) + " · p99 " + dur(d.p99);
      }).catch(function (e) { document.getElementById("leadtime-summary").textContent = e.message; });
    }
    ltForm.addEventListener("submit", function (e) { e.preventDefault(); leadtime(); });
    leadtime();
    var doraForm = document.getElementById("dora-form");
    function dora() {
      var days = parseFloat(new FormData(doraForm).get("days")) || 30, now = Date.now();
      getJSON("/api/trace/dora?since=" + Math.round(now - days * 86400000) + "&until=" + now).then(function (d) {
        document.querySelector("#dora tbody").innerHTML = Object.keys(d).filter(function (k) { return typeof d[k] !== "object" || d[k] === null; })
          .map(function (k) { return "<tr><td>" + esc(k) + "</td><td>" + esc(typeof d[k] === "number" ? Math.round(d[k] * 1000) / 1000 : d[k]) + "</td></tr>"; }).join("");
      }).catch(function (e) { document.querySelector("#dora tbody").innerHTML = "<tr><td>" + esc(e.message) + "</td></tr>"; });
    }
    doraForm.addEventListener("submit", function (e) { e.preventDefault(); dora(); });
    dora();
  }

  function groupToggles() {
    document.querySelectorAll(".group-toggle").forEach(function (box) {
      box.addEventListener("change", function () {
        document.querySelectorAll("input." + box.dataset.group).forEach(function (c) { c.checked = box.checked; });
      });
    });
  }

  /* -- no inline script or handler anywhere (the Content-Security-Policy
     forbids them): a page names what to start in a JSON data block,
     <script type="application/json" id="boss-init">{"fn": ..., "args": [...]}</script>,
     and buttons and selects say what they want in data- attributes. */
  var INIT = {liveRuns: liveRuns, runPage: runPage, traceGraph: traceGraph, healthCharts: healthCharts,
    tracePage: tracePage, groupToggles: groupToggles};

  function wire() {
    /* <button data-confirm="Cancel run X?">: ask first */
    document.querySelectorAll("[data-confirm]").forEach(function (el) {
      el.addEventListener("click", function (e) { if (!window.confirm(el.dataset.confirm)) e.preventDefault(); });
    });
    /* <select data-autosubmit>: choosing submits its form */
    document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
      el.addEventListener("change", function () { el.form.submit(); });
    });
    var init = document.getElementById("boss-init");
    if (init) {
      var spec = JSON.parse(init.textContent);
      if (INIT[spec.fn]) INIT[spec.fn].apply(null, spec.args || []);
    }
  }

  window.BOSS = {liveRuns: liveRuns, runPage: runPage, traceGraph: traceGraph, healthCharts: healthCharts,
    tracePage: tracePage, groupToggles: groupToggles, postJSON: postJSON, getJSON: getJSON};
  /* after every script of the page (the vendored libraries come after this file) */
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
