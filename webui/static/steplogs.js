/* BOSS web UI: a run's step logs (the run page's step panel,
   templates/_run_steplogs.html). Loaded after boss.js and graphs.js; starts
   itself when the panel is on the page (the page's boss-init block belongs
   to run.html). Log lines are untrusted text: only ever textContent. */
(function () {
  "use strict";
  var MAX_LINES = 5000;

  function getJSON(url) {
    return fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (r) { return r.json().then(function (b) { if (!r.ok) throw new Error(b.error || r.status); return b; }); });
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function clock(t) {
    var d = new Date(t * 1000);
    return d.toISOString().slice(11, 23);
  }

  function stepLogs(root) {
    var wfid = root.getAttribute("data-wfid");
    var base = "/api/runs/" + encodeURIComponent(wfid) + "/logs";
    var select = document.getElementById("steplogs-step");
    var box = document.getElementById("steplogs-lines");
    var empty = document.getElementById("steplogs-empty");
    var state = document.getElementById("steplogs-state");
    var detail = document.getElementById("steplogs-detail");
    var source = null;
    var known = {};
    var count = 0;

    box.style.maxHeight = "28em";
    box.style.overflowY = "auto";
    box.style.fontFamily = "monospace";
    box.style.fontSize = "0.85em";
    box.style.whiteSpace = "pre-wrap";
    box.style.wordBreak = "break-word";
    Array.prototype.forEach.call(select.options, function (o) { known[o.value] = o; });

    function addStep(expid, label) {
      if (!expid || known[expid]) return;
      var o = el("option", null, label || expid);
      o.value = expid;
      select.appendChild(o);
      known[expid] = o;
    }

    function append(line) {
      var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
      var row = el("div", "logline lvl-" + String(line.level).toLowerCase());
      row.setAttribute("data-id", line.id);
      row.setAttribute("data-step", line.step);
      // seconds from the handler's call to this line on the page
      row.setAttribute("data-lag", (Date.now() / 1000 - line.t).toFixed(3));
      row.appendChild(el("span", "muted", clock(line.t) + " "));
      if (!select.value) row.appendChild(el("b", "log-step", line.step + " "));
      var lvl = el("span", "log-level", line.level + " ");
      if (line.level === "ERROR" || line.level === "CRITICAL" || line.level === "stderr") lvl.style.color = "#b00020";
      if (line.level === "boss") lvl.style.fontStyle = "italic";
      row.appendChild(lvl);
      row.appendChild(el("span", "log-text", line.text));
      box.appendChild(row);
      count += 1;
      if (count > MAX_LINES) { box.removeChild(box.firstChild); count -= 1; }
      empty.hidden = true;
      addStep(line.step, line.step + " (" + line.participant + ")");
      if (atBottom) box.scrollTop = box.scrollHeight;
    }

    function follow() {
      if (source) source.close();
      box.textContent = "";
      count = 0;
      empty.hidden = false;
      var step = select.value;
      var url = base + "/stream" + (step ? "?step=" + encodeURIComponent(step) : "");
      source = new EventSource(url);
      state.textContent = "following";
      source.addEventListener("line", function (ev) {
        try { append(JSON.parse(ev.data)); } catch (e) { /* a broken line is skipped */ }
      });
      source.addEventListener("end", function () {
        source.close();
        source = null;
        state.textContent = "the run is not running: every line kept is shown";
        root.setAttribute("data-ended", "1");
      });
      source.onerror = function () {
        if (source && source.readyState === EventSource.CONNECTING) state.textContent = "reconnecting…";
      };
      source.onopen = function () { state.textContent = "following"; };
      showDetail(step);
    }

    function showDetail(step) {
      var tb = document.getElementById("steplogs-traceback");
      var input = document.getElementById("steplogs-input");
      var output = document.getElementById("steplogs-output");
      if (!step) { detail.hidden = true; return; }
      getJSON(base + "/steps/" + encodeURIComponent(step)).then(function (d) {
        if (select.value !== step) return;
        detail.hidden = false;
        var errs = (d.errors || []).filter(function (e) { return e.traceback || e.message; });
        if (errs.length) {
          var e = errs[errs.length - 1];
          tb.querySelector("pre").textContent = (e["class"] || "") + ": " + (e.message || "") + "\n\n" + (e.traceback || "(no traceback)");
          tb.hidden = false;
        } else { tb.hidden = true; }
        var fields = d.positions && d.positions.length ? d.positions[d.positions.length - 1].fields
          : (errs.length && errs[errs.length - 1].fields) || null;
        if (fields) {
          input.querySelector("pre").textContent = JSON.stringify(fields, null, 2);
          input.hidden = false;
        } else { input.hidden = true; }
        output.textContent = (d.log ? d.log.lines + " lines kept" + (d.log.dropped ? ", " + d.log.dropped + " over the bound not kept" : "") + ". " : "") +
          (fields ? "" : "Input fields are kept only while the step waits or failed. ") + (d.output_note || "");
      }).catch(function () { detail.hidden = true; });
    }

    function refreshSteps() {
      getJSON(base + "/steps").then(function (d) {
        (d.steps || []).forEach(function (s) {
          addStep(s.expid, s.expid + " " + (s.name || "") + (s.participant ? " (" + s.participant + ")" : ""));
        });
        if (select.value) showDetail(select.value);
        if (d.live && !source) follow();
      }).catch(function () {});
    }

    select.addEventListener("change", function () {
      if (window.history && window.history.replaceState) {
        window.history.replaceState(null, "", select.value ? "#step=" + encodeURIComponent(select.value) : "#");
      }
      follow();
    });
    var m = /^#step=(.+)$/.exec(window.location.hash);
    if (m) {
      var want = decodeURIComponent(m[1]);
      addStep(want);
      select.value = want;
    }
    // another part of the page may announce run and step transitions
    document.addEventListener("boss:transition", refreshSteps);
    window.addEventListener("beforeunload", function () { if (source) source.close(); });
    follow();
  }

  function start() {
    var root = document.getElementById("steplogs");
    if (root && root.getAttribute("data-wfid")) stepLogs(root);
  }
  if (window.BOSS && window.BOSS.register) window.BOSS.register("stepLogs", stepLogs);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
