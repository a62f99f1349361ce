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

  var ENDED = ["finished", "cancelled", "killed"];
  /* The page reloads when the run changes or when more of its trace events
     reach the graph: the aggregator writes them a moment after the engine
     stores the run, so a run can end before its timeline is complete. Once
     the run has ended and the graph holds its end, nothing more will come. */
  function runPage(wfid, interval, status, nErrors, updated, nEvents, settled) {
    if (window.BOSS.definitionGraph) window.BOSS.definitionGraph(document.getElementById("defgraph"));
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
  var INIT = {liveRuns: liveRuns, runPage: runPage, healthCharts: healthCharts,
    tracePage: tracePage, groupToggles: groupToggles};
  /* other files (graphs.js, ...) add page starters with BOSS.register(name, fn)
     before DOMContentLoaded: they are loaded after this file */
  function register(name, fn) { INIT[name] = fn; window.BOSS[name] = fn; }

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

  window.BOSS = {liveRuns: liveRuns, runPage: runPage, healthCharts: healthCharts,
    tracePage: tracePage, groupToggles: groupToggles, postJSON: postJSON, getJSON: getJSON,
    esc: esc, when: when, dur: dur, register: register};
  /* after every script of the page (the vendored libraries come after this file) */
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
