/* The CI-systems dashboard (issue 17; docs/ci-dashboard.md): the charts of
   /ci/<name>, from the day buckets the page carries in its boss-init block
   (the same as GET /api/ci/systems/<name>'s "days"). Chart.js is vendored
   under static/vendor/chart.js. No inline script: started by boss.js. */
(function () {
  "use strict";

  function pct(v) { return v == null ? null : Math.round(v * 1000) / 10; }
  function minutes(v) { return v == null ? null : Math.round(v / 6) / 10; }

  function chart(id, label, color, days, value, max) {
    var el = document.getElementById(id);
    if (!el || !window.Chart) return;
    var y = {beginAtZero: true};
    if (max) y.max = max;
    new window.Chart(el, {
      type: "line",
      data: {labels: days.map(function (d) { return d.day; }),
        datasets: [{label: label, data: days.map(value), borderColor: color, backgroundColor: color,
          tension: 0, spanGaps: true, pointRadius: 3}]},
      options: {animation: false, scales: {y: y}}
    });
    el.dataset.drawn = "1";
  }

  function ciSystemCharts(days) {
    days = days || [];
    chart("ci-coverage", "coverage (%)", "#2f6fde", days, function (d) { return pct(d.coverage); }, 100);
    chart("ci-success", "success rate (%)", "#1f9d55", days, function (d) { return pct(d.success_rate); }, 100);
    chart("ci-response", "response p50 (min)", "#b83232", days, function (d) { return minutes(d.response_p50_s); });
  }

  window.BOSS.register("ciSystemCharts", ciSystemCharts);
})();
