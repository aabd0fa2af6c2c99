// Charts for the runs and quality pages. Data comes from <script type="application/json">
// blocks in the page (no inline script: the Content-Security-Policy forbids it).
(function () {
  "use strict";
  var COLORS = ["#2f6690", "#d1495b", "#3a7d44", "#edae49", "#6c5b7b", "#00798c"];
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function ready() {
    if (typeof Chart === "undefined") { return; }
    Chart.defaults.animation = false;
    var runs = data("runs-data");
    var c = document.getElementById("runs-chart");
    if (runs && c) {
      new Chart(c, {type: "bar", data: {labels: runs.labels, datasets: [
        {label: "pulled", data: runs.pulled, backgroundColor: COLORS[0]},
        {label: "written", data: runs.written, backgroundColor: COLORS[2]},
        {label: "failed", data: runs.failed, backgroundColor: COLORS[1]}]},
        options: {scales: {y: {beginAtZero: true}}}});
    }
    var q = data("quality-data");
    if (!q) { return; }
    document.querySelectorAll("canvas.completeness").forEach(function (cv) {
      var d = q[cv.dataset.object];
      if (!d) { return; }
      var sets = Object.keys(d.series).map(function (name, i) {
        return {label: name, data: d.series[name].map(function (r) { return r === null ? null : 100 * r; }),
                backgroundColor: COLORS[i % COLORS.length]};
      });
      new Chart(cv, {type: "bar", data: {labels: d.labels, datasets: sets},
        options: {plugins: {title: {display: true, text: "required-field completeness (%)"}},
                  scales: {y: {beginAtZero: true, max: 100}}}});
    });
    var rc = document.getElementById("revenue-chart");
    if (rc && q.revenue) {
      new Chart(rc, {type: "bar", data: {labels: q.revenue.labels, datasets: [
        {label: "open pipeline", data: q.revenue.open, backgroundColor: COLORS[0]},
        {label: "closed won", data: q.revenue.won, backgroundColor: COLORS[2]},
        {label: "ARR", data: q.revenue.arr, backgroundColor: COLORS[3]}]},
        options: {plugins: {title: {display: true, text: "each system alone vs the canonical store"}}}});
    }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", ready); } else { ready(); }
})();
