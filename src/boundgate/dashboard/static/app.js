// boundgate dashboard charts: reads the page's embedded JSON and draws it with the bundled
// Chart.js. No network requests, no inline script (the page's CSP forbids both).
"use strict";

(function () {
  const SPENT = "#b3561e";
  const AVOIDED = "#1a7f37";
  const LINE = "#1f6f50";
  const JOBS = "#6639ba";

  function data() {
    const node = document.getElementById("chart-data");
    return node ? JSON.parse(node.textContent) : null;
  }

  function bars(labels, spent, avoided, unit) {
    return {
      type: "bar",
      data: {
        labels: labels,
        datasets: [
          { label: "spent (" + unit + ")", data: spent, backgroundColor: SPENT },
          { label: "avoided by reuse (" + unit + ")", data: avoided, backgroundColor: AVOIDED },
        ],
      },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: unit } } } },
    };
  }

  const builders = {
    energy: (d) => bars(d.labels, d.wh, d.avoided_wh, "Wh"),
    carbon: (d) => bars(d.labels, d.gco2, d.avoided_gco2, "gCO2e"),
    requests: (d) => ({
      type: "line",
      data: {
        labels: d.labels,
        datasets: [
          { label: "requests", data: d.requests, borderColor: LINE, backgroundColor: LINE },
          { label: "reused", data: d.reused, borderColor: AVOIDED, backgroundColor: AVOIDED },
          { label: "errors", data: d.errors, borderColor: "#b3261e", backgroundColor: "#b3261e" },
        ],
      },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "requests" } } } },
    }),
    forecast: (d) => ({
      type: "line",
      data: {
        labels: d.labels,
        datasets: [
          {
            label: "forecast gCO2e/kWh",
            data: d.forecast,
            borderColor: LINE,
            backgroundColor: LINE,
            pointRadius: 0,
          },
          {
            type: "scatter",
            label: "queued jobs (planned start)",
            data: d.jobs.map((j) => ({ x: j.x, y: j.y })),
            borderColor: JOBS,
            backgroundColor: JOBS,
            pointRadius: 6,
          },
        ],
      },
      options: {
        scales: { y: { title: { display: true, text: "gCO2e/kWh" } } },
        plugins: {
          tooltip: {
            callbacks: {
              afterLabel: (ctx) => (ctx.datasetIndex === 1 ? d.jobs[ctx.dataIndex].kind + " " + d.jobs[ctx.dataIndex].id : ""),
            },
          },
        },
      },
    }),
  };

  function draw() {
    const d = data();
    if (!d || typeof Chart === "undefined") return;
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const build = builders[canvas.dataset.chart];
      if (build) new Chart(canvas, build(d));
    });
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
