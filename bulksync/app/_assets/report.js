/* bulksync HTML run report: draws the charts with the inlined uPlot from the JSON block.
   Sets window.__reportReady once every chart has drawn (the browser test waits for it). */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var tl = data.timeline;
  var palette = ["#2f6fdb", "#e8710a", "#1f9d55", "#9334e6", "#d01884", "#12a4af",
                 "#b06000", "#5f6368", "#188038", "#c5221f", "#7b61ff", "#00897b", "#795548"];
  var charts = [];
  var expected = 0;
  var drawn = 0;
  var building = true;  // a chart drawing before the next one is made is not "all drawn"

  window.__reportViolations = [];
  document.addEventListener("securitypolicyviolation", function (e) {
    window.__reportViolations.push(e.blockedURI || e.violatedDirective);
  });

  function sized(el) {
    return { width: Math.max(320, Math.floor(el.clientWidth || 800)), height: 260 };
  }

  function make(name, opts, columns) {
    var el = document.getElementById("chart-" + name);
    if (!el) { return; }
    expected += 1;
    var size = sized(el);
    opts.width = size.width;
    opts.height = size.height;
    var first = true;
    opts.hooks = { draw: [function () {
      if (first) { first = false; drawn += 1; el.setAttribute("data-drawn", "1"); done(); }
    }] };
    charts.push([new uPlot(opts, columns, el), el]);
  }

  function done() {
    if (!building && drawn === expected) {
      window.__reportCharts = drawn;
      window.__reportReady = true;
    }
  }

  function line(label, color, extra) {
    var s = { label: label, stroke: color, width: 1.5, spanGaps: false,
              value: function (u, v) { return v == null ? "—" : fmt(v); } };
    for (var k in extra) { s[k] = extra[k]; }
    return s;
  }

  function fmt(v) {
    if (Math.abs(v) >= 100) { return Math.round(v).toLocaleString("en"); }
    return (Math.round(v * 100) / 100).toString();
  }

  function xScale() {
    return tl.time ? { time: true } : { time: false };
  }

  function pad(n) { return n < 10 ? "0" + n : "" + n; }

  function xAxis() {
    if (!tl.time) { return { label: "seconds since start" }; }
    // 24-hour UTC clock; the date once, in the axis label (run times are UTC everywhere).
    return {
      label: "UTC " + fmtDay(tl.x[0]),
      values: function (u, splits, axisIdx, space, incr) {
        return splits.map(function (v) {
          var d = utc(v);
          var text = pad(d.getHours()) + ":" + pad(d.getMinutes());
          return incr < 60 ? text + ":" + pad(d.getSeconds()) : text;
        });
      }
    };
  }

  function fmtDay(ts) {
    var d = utc(ts);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
  }

  var utc = function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); };

  function base(extraScales, axes) {
    var scales = { x: xScale() };
    for (var k in extraScales) { scales[k] = extraScales[k]; }
    var opts = { scales: scales, axes: [xAxis()].concat(axes), series: [{}],
                 cursor: { drag: { x: true, y: false } }, legend: { live: true } };
    if (tl.time) {
      opts.tzDate = utc;
      opts.series[0] = { label: "time", value: "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss} UTC" };
    }
    return opts;
  }

  if (tl.points > 0) {
    // Items per second, per stage.
    var stageNames = Object.keys(tl.stages);
    var o1 = base({ y: { range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } } },
                  [{ label: "items/s", size: 60 }]);
    var c1 = [tl.x];
    stageNames.forEach(function (name, i) {
      o1.series.push(line(name, palette[i % palette.length]));
      c1.push(tl.stages[name]);
    });
    if (stageNames.length === 0) {
      o1.series.push(line("items", palette[0]));
      c1.push(tl.x.map(function () { return 0; }));
    }
    make("stages", o1, c1);

    // Requests per second against the budget's pace and limit; in flight on the right.
    var o2 = base({ y: { range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } },
                    n: { range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.2)]; } } },
                  [{ label: "requests/s", size: 60 },
                   { scale: "n", side: 1, label: "in flight", grid: { show: false }, size: 50 }]);
    o2.series.push(line("requests/s", palette[0], { fill: "rgba(47,111,219,0.08)" }));
    o2.series.push(line("pace", palette[1], { dash: [6, 4] }));
    o2.series.push(line("limit", "#c5221f", { dash: [2, 3], width: 2 }));
    o2.series.push(line("in flight", "rgba(95,99,104,0.45)", { scale: "n", width: 1 }));
    make("requests", o2, [tl.x, tl.requests, tl.pace, tl.limit, tl.in_flight]);

    // Latency percentiles.
    var o3 = base({ y: { range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } } },
                  [{ label: "ms", size: 60 }]);
    o3.series.push(line("p50", palette[2]));
    o3.series.push(line("p95", palette[1]));
    o3.series.push(line("p99", "#c5221f", { dash: [4, 3], width: 1 }));
    make("latency", o3, [tl.x, tl.p50, tl.p95, tl.p99]);

    // Retries, 429s, failed items; the share of time paused as a stepped area on the right.
    var o4 = base({ y: { range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } },
                    pct: { range: [0, 100] } },
                  [{ label: "per second", size: 60 },
                   { scale: "pct", side: 1, label: "% paused", grid: { show: false }, size: 50 }]);
    o4.series.push(line("paused %", "rgba(147,52,230,0.7)",
      { scale: "pct", fill: "rgba(147,52,230,0.15)", width: 1,
        paths: uPlot.paths.stepped({ align: 1 }) }));
    o4.series.push(line("retries/s", palette[1]));
    o4.series.push(line("429s/s", "#c5221f"));
    o4.series.push(line("failed items/s", "#5f6368", { dash: [4, 3] }));
    make("trouble", o4, [tl.x, tl.paused_pct, tl.retries, tl.throttled, tl.failed]);
  }

  // Latency histogram as bars over the bucket index, labelled with each bucket's upper bound.
  var h = data.histogram;
  if (h.count.length > 0) {
    var labels = h.upper_ms.map(function (v) { return "≤" + fmt(v); });
    var idx = h.count.map(function (_, i) { return i; });
    var o5 = {
      scales: { x: { time: false, range: [-0.5, h.count.length - 0.5] },
                y: { range: function (u, lo, hi) { return [0, Math.max(1, hi * 1.1)]; } } },
      axes: [
        { label: "latency bucket (ms)", space: 40,
          values: function (u, splits) {
            return splits.map(function (v) {
              return Number.isInteger(v) && labels[v] !== undefined ? labels[v] : "";
            });
          } },
        { label: "requests", size: 60 }
      ],
      series: [
        { label: "bucket", value: function (u, v) { return v == null ? "—" : labels[v] + " ms"; } },
        { label: "requests", stroke: palette[0], fill: "rgba(47,111,219,0.35)",
          paths: uPlot.paths.bars({ size: [0.85, 60] }), points: { show: false } }
      ],
      legend: { live: true }
    };
    make("histogram", o5, [idx, h.count]);
  }

  building = false;
  done();  // every chart may have drawn already, or there is none

  var pending = null;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () {
      charts.forEach(function (pair) { pair[0].setSize(sized(pair[1])); });
    }, 100);
  });
})();
