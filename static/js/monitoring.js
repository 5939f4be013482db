// Monitoring page: the filters submit on change; the charts are drawn with uPlot from the
// JSON the server prepared (#monitoring-data). Each chart has a table beside it for
// screen readers and pages without scripts.
(function () {
  "use strict";

  function autosubmit() {
    var form = document.querySelector("form[data-autosubmit]");
    if (!form) return;
    var range = form.querySelector("select[name=range]");
    function showDates() {
      var custom = range && range.value === "custom";
      form.querySelectorAll(".custom-dates").forEach(function (el) { el.hidden = !custom; });
    }
    showDates();
    form.addEventListener("change", function (event) {
      showDates();
      var name = event.target.name;
      if ((name === "since" || name === "until" || name === "range") && range.value === "custom") {
        var since = form.querySelector("[name=since]").value;
        var until = form.querySelector("[name=until]").value;
        if (!since || !until) return; // wait for both dates
      }
      form.requestSubmit();
    });
  }

  var OTHERS = "#6b7280";
  var COLORS = ["#4f46e5", "#0e9f6e", "#c2253b", "#a15c07", "#1d5fa8", "#7c3aed", "#0891b2", "#be185d"];

  function widthOf(el) {
    return Math.max(260, Math.floor(el.getBoundingClientRect().width));
  }

  var xmin = 0, xmax = 1;

  function draw(el, series, data, opts) {
    var options = Object.assign({
      width: widthOf(el),
      height: 220,
      series: [{}].concat(series),
      axes: [{}, { size: 56 }],
      legend: { live: true },
      scales: {},
      cursor: { drag: { x: false, y: false } },
    }, opts || {});
    options.scales.x = { time: true, range: [xmin, xmax] };
    var plot = new uPlot(options, data, el);
    window.addEventListener("resize", function () {
      plot.setSize({ width: widthOf(el), height: 220 });
    });
    return plot;
  }

  function line(label, i, extra) {
    return Object.assign({ label: label, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false }, extra || {});
  }

  function charts() {
    var node = document.getElementById("monitoring-data");
    if (!node || typeof uPlot === "undefined") return;
    var d = JSON.parse(node.textContent);
    if (!d.times || !d.any_runs) return;
    var xs = d.times.map(function (t) { return Date.parse(t) / 1000; });
    xmin = Date.parse(d.since) / 1000;
    xmax = Date.parse(d.until) / 1000;
    var el;

    if ((el = document.querySelector("[data-chart=volume]"))) {
      draw(el, [line("Records in", 0, { fill: "rgba(79,70,229,.08)" }), line("Records out", 1)],
        [xs, d.records_in, d.records_out]);
    }
    if ((el = document.querySelector("[data-chart=success]"))) {
      draw(el, [
        line("Success rate %", 1, { scale: "%" }),
        line("Failed runs", 2, { scale: "runs" }),
        line("Runs", 4, { scale: "runs", dash: [4, 4] }),
      ], [xs, d.success_rate, d.failed, d.runs], {
        scales: { "%": { range: [0, 100] } },
        axes: [{}, { scale: "%", size: 48 }, { scale: "runs", side: 1, size: 48, grid: { show: false } }],
      });
    }
    if ((el = document.querySelector("[data-chart=latency]"))) {
      var series = [], data = [xs];
      d.connections.forEach(function (c, i) {
        // The connections past the chart's few are one grey line (they are all in the table).
        var color = c.others ? { stroke: OTHERS } : {};
        series.push(line(c.name + " p50", i, Object.assign({ points: { show: true, size: 5 }, value: function (u, v) { return v == null ? "–" : v + " ms"; } }, color)));
        data.push(c.p50);
        series.push(line(c.name + " p95", i, Object.assign({ dash: [6, 4], points: { show: true, size: 5 }, value: function (u, v) { return v == null ? "–" : v + " ms"; } }, color)));
        data.push(c.p95);
      });
      if (series.length) {
        // Up to 18 lines: a legend of names only keeps the card short (the table has the figures).
        draw(el, series, data, { scales: { y: { distr: 3 } }, legend: { live: false } });
      } else {
        el.hidden = true;
      }
    }
    if ((el = document.querySelector("[data-chart=causes]"))) {
      var cs = [line("Retries", 4, { dash: [4, 4] })], cd = [xs, d.retries];
      d.causes.forEach(function (c, i) {
        if (d[c.field].some(function (n) { return n > 0; })) {
          cs.push(line(c.label, i + 2));
          cd.push(d[c.field]);
        }
      });
      if (d.other_errors.some(function (n) { return n > 0; })) {
        cs.push(line("Errors not kept", 7));
        cd.push(d.other_errors);
      }
      draw(el, cs, cd);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    autosubmit();
    charts();
  });
})();
