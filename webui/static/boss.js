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

  /* -- relative times: <time datetime=... data-rel>3 min ago</time>, the
     absolute UTC time in its title; kept fresh here ----------------------- */
  function ago(t, now) {
    if (t == null || t === "") return "-";
    var s = Math.max(0, (now || Date.now() / 1000) - t);
    if (s < 45) return "just now";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function timeTag(t) {
    if (t == null || t === "") return '<span class="muted">-</span>';
    var iso = new Date(t * 1000).toISOString().slice(0, 19) + "Z";
    return '<time datetime="' + iso + '" title="' + when(t) + ' UTC" data-rel>' + ago(t) + "</time>";
  }
  function refreshTimes() {
    var now = Date.now() / 1000;
    document.querySelectorAll("time[data-rel]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("datetime")) / 1000;
      if (!isNaN(t)) el.textContent = ago(t, now);
    });
    document.querySelectorAll("#runs-body tr[data-wfid]").forEach(function (tr) {
      if (tr.dataset.ended) return;
      var cell = tr.querySelector("td.c-dur"), at = parseFloat(tr.dataset.launched);
      if (cell && !isNaN(at)) cell.textContent = dur(now - at);
    });
  }

  /* -- the one stream of transitions (GET /api/stream, server-sent events):
     each message is re-dispatched as a "boss:transition" CustomEvent on
     document (detail: the transition; graphs.js and steplogs.js listen) -- */
  var source = null;
  function openStream(wfid, since) {
    if (source || !window.EventSource) return source;
    /* since: the stream id when the page was rendered (what came after it
       is sent first); on a reconnect the browser sends Last-Event-ID */
    var q = [];
    if (wfid) q.push("wfid=" + encodeURIComponent(wfid));
    if (since) q.push("last_id=" + encodeURIComponent(since));
    source = new EventSource("/api/stream" + (q.length ? "?" + q.join("&") : ""));
    source.addEventListener("transition", function (e) {
      var data; try { data = JSON.parse(e.data); } catch (err) { return; }
      document.dispatchEvent(new CustomEvent("boss:transition", {detail: data}));
    });
    /* the client missed more than the stream still holds: refetch all */
    source.addEventListener("reset", function () { document.dispatchEvent(new CustomEvent("boss:reset")); });
    window.addEventListener("pagehide", function () { if (source) source.close(); });
    return source;
  }
  /* fn at most once per `every` ms, the last call always honoured; not
     sooner than `settle` ms after a call; with `jitter`, a random extra
     wait of up to that many ms, so that a hundred pages told of one
     transition do not all ask the server at once */
  function debounce(fn, every, jitter, settle) {
    var last = 0, timer = null;
    return function () {
      if (timer) return;
      var wait = Math.max(settle || 0, last + every - Date.now()) + Math.random() * (jitter || 0);
      timer = setTimeout(function () { timer = null; last = Date.now(); fn(); }, wait);
    };
  }
  /* answers shown in the order they were asked for: a slow older answer
     never overwrites a newer one (a run page left saying "running") */
  function newest() {
    var asked = 0, shown = 0;
    return {ask: function () { return ++asked; },
      take: function (n) { if (n < shown) return false; shown = n; return true; }};
  }
  function fetchPage(url) {
    /* X-Boss-Refresh: the server keeps its flash messages for the page the
       visitor is shown next (a refresh racing a form's redirect took them) */
    return fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html", "X-Boss-Refresh": "1"}})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) { return new DOMParser().parseFromString(html, "text/html"); });
  }
  /* a part the visitor is typing in is left alone */
  function editing(el) {
    var a = document.activeElement;
    return a && el.contains(a) && /^(TEXTAREA|INPUT|SELECT)$/.test(a.tagName);
  }
  /* ... and so is a live region where boxes are ticked (the errors page's
     selection) or a <details> was opened */
  function working(el) {
    return editing(el) || !!el.querySelector("input[type=checkbox]:checked, details[open]");
  }

  /* -- the live run list: rows change in place on each transition; a new
     run or a status change also refetches the JSON twin (debounced) ------- */
  function runRow(r, now) {
    var failed = r.status === "finished" && (r.outcome === "failure" || r.outcome === "error");
    var steps = (r.positions || []).map(function (p) {
      return '<span class="step st-' + esc(p.state) + '" title="' + esc(p.expid) + " (" + esc(p.state) + ')">' +
        esc(p.participant || p.expid) + "</span> ";
    }).join("") || '<span class="none">-</span>';
    var d = (r.ended_at || now) - r.launched_at;
    return '<tr data-wfid="' + esc(r.wfid) + '" data-status="' + esc(r.status) + '" data-launched="' + esc(r.launched_at) +
      '" data-ended="' + esc(r.ended_at || "") + '">' +
      '<td class="c-run"><a href="/runs/' + encodeURIComponent(r.wfid) + '">' + esc(r.wfid) + "</a></td>" +
      '<td class="c-name">' + esc(r.name) + "</td>" +
      '<td class="c-status"><span class="badge st-' + esc(r.status) + '">' + esc(r.status) + "</span>" +
      (failed ? ' <span class="badge st-failed outcome" title="it reached its end, and its fields say it failed">' +
        (r.outcome === "failure" ? "failed" : "error") + "</span>" : "") + "</td>" +
      '<td class="c-step">' + steps + "</td>" +
      '<td class="c-launched">' + timeTag(r.launched_at) + "</td>" +
      '<td class="c-dur' + (r.ended_at ? "" : " running") + '">' + dur(d) + "</td>" +
      '<td class="c-owner">' + esc(r.owner || "") + "</td></tr>";
  }
  function liveRuns(interval, since) {
    var body = document.getElementById("runs-body"), live = document.getElementById("live");
    if (!body) return;
    var query = new URLSearchParams(window.location.search);
    function on() { return !live || live.checked; }
    var order = newest();
    function refetch() {
      if (!on()) return;
      var n = order.ask();
      getJSON("/api/runs" + window.location.search).then(function (d) {
        if (!order.take(n)) return;
        var now = d.now || Date.now() / 1000;
        body.innerHTML = d.runs.map(function (r) { return runRow(r, now); }).join("") ||
          '<tr><td colspan="7" class="empty">no runs</td></tr>';
        var all = 0;
        Object.keys(d.counts).forEach(function (s) { all += d.counts[s];
          var b = document.querySelector('#counts b[data-status="' + s + '"]'); if (b) b.textContent = d.counts[s]; });
        var a = document.querySelector('#counts b[data-status=""]'); if (a) a.textContent = all;
        var range = document.getElementById("range");
        if (range) range.textContent = (d.total ? d.offset + 1 : 0) + "–" + (d.offset + d.runs.length) + " of " + d.total;
        var ms = document.getElementById("server-ms"); if (ms) ms.textContent = d.server_ms + " ms";
      }).catch(function () {});
    }
    /* the row itself changes at once, from the event; the counts and new
       rows follow from the JSON within a second or two */
    var later = debounce(refetch, Math.max(interval || 1000, 250), 1500, 500);
    document.addEventListener("boss:transition", function (ev) {
      if (!on()) return;
      var t = ev.detail || {};
      var tr = body.querySelector('tr[data-wfid="' + (window.CSS && CSS.escape ? CSS.escape(t.wfid) : t.wfid) + '"]');
      if (tr) {
        var owner = tr.querySelector("td.c-owner");
        var fresh = document.createElement("tbody");
        fresh.innerHTML = runRow({wfid: t.wfid, name: t.name, status: t.status, outcome: t.outcome,
          positions: t.positions, launched_at: t.launched_at, ended_at: t.ended_at,
          owner: owner ? owner.textContent : ""}, Date.now() / 1000);
        tr.replaceWith(fresh.firstChild);
        if (t.kind === "run") later();  // the counts change
      } else if (!query.get("offset") || query.get("offset") === "0") {
        later();  // a run this page does not show yet: maybe a new one
      }
    });
    document.addEventListener("boss:reset", later);
    if (live) live.addEventListener("change", function () { if (live.checked) refetch(); });
    openStream(null, since);
  }

  var ENDED = ["finished", "cancelled", "killed"];
  /* The run page follows its run without reloading: on each of its
     transitions it fetches the page again and puts the parts marked
     data-live-part (status, meta, actions, positions, errors, fields) in
     place; the graph and the timeline (graphs.js) refresh themselves on
     the same boss:transition events. */
  function runPage(wfid, status, since) {
    if (window.BOSS.definitionGraph) window.BOSS.definitionGraph(document.getElementById("defgraph"));
    var order = newest();
    function refresh() {
      var n = order.ask();
      fetchPage(window.location.pathname).then(function (doc) {
        if (!order.take(n)) return;
        doc.querySelectorAll("[data-live-part][id]").forEach(function (fresh) {
          var now = document.getElementById(fresh.id);
          if (!now || editing(now)) return;
          if (now.innerHTML !== fresh.innerHTML) now.innerHTML = fresh.innerHTML;
        });
        var st = document.getElementById("run-status");
        if (st) document.body.dataset.runStatus = st.textContent;
      }).catch(function () {});
    }
    var later = debounce(refresh, 300);
    document.addEventListener("boss:transition", function (ev) {
      var t = ev.detail || {};
      if (t.wfid && t.wfid !== wfid) return;
      later();
    });
    document.addEventListener("boss:reset", later);
    document.body.dataset.runStatus = status;
    /* a run that had ended when the page was rendered will not change
       again: no stream (one server thread less per such page) */
    if (ENDED.indexOf(status) < 0) openStream(wfid, since);
  }

  /* -- errors, health, participants, audit: each element with
     data-live-region="name" (and an optional data-live-every="ms", default
     1000) is refetched from this page's address and swapped in place on a
     transition, at most once per interval ---------------------------------- */
  function liveRegions() {
    var regions = document.querySelectorAll("[data-live-region]");
    if (!regions.length) return;
    var every = 1000;
    regions.forEach(function (el) { every = Math.max(every, parseInt(el.dataset.liveEvery, 10) || 0); });
    var order = newest();
    var refresh = debounce(function () {
      if (document.hidden) { pending = true; return; }
      var n = order.ask();
      fetchPage(window.location.pathname + window.location.search).then(function (doc) {
        if (!order.take(n)) return;
        document.querySelectorAll("[data-live-region]").forEach(function (el) {
          var name = el.getAttribute("data-live-region");
          var fresh = doc.querySelector('[data-live-region="' + (window.CSS && CSS.escape ? CSS.escape(name) : name) + '"]');
          if (!fresh || working(el) || el.innerHTML === fresh.innerHTML) return;
          el.innerHTML = fresh.innerHTML;
          document.dispatchEvent(new CustomEvent("boss:region", {detail: {region: name}}));
        });
      }).catch(function () {});
    }, every);
    var pending = false;
    document.addEventListener("visibilitychange", function () { if (!document.hidden && pending) { pending = false; refresh(); } });
    document.addEventListener("boss:transition", refresh);
    document.addEventListener("boss:reset", refresh);
    openStream(null);
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

  /* delegated: a live region may replace the boxes after the page loaded */
  function groupToggles() {
    document.addEventListener("change", function (e) {
      var box = e.target;
      if (!box.classList || !box.classList.contains("group-toggle")) return;
      document.querySelectorAll("input." + box.dataset.group).forEach(function (c) { c.checked = box.checked; });
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
    /* delegated: parts swapped in later (the run page's actions) ask too */
    document.addEventListener("click", function (e) {
      var el = e.target.closest && e.target.closest("[data-confirm]");
      if (el && !window.confirm(el.dataset.confirm)) e.preventDefault();
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
    liveRegions();
    refreshTimes();
    setInterval(refreshTimes, 15000);
  }

  window.BOSS = {liveRuns: liveRuns, runPage: runPage, healthCharts: healthCharts,
    tracePage: tracePage, groupToggles: groupToggles, postJSON: postJSON, getJSON: getJSON,
    esc: esc, when: when, dur: dur, register: register, ago: ago, openStream: openStream,
    debounce: debounce};
  /* after every script of the page (the vendored libraries come after this file) */
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", wire);
  else wire();
})();
