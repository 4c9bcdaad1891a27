// The console's only script: draws the Overview's charts with the vendored Chart.js,
// and sorts and filters the Fleet table. Pages work without it except for the charts.
"use strict";

(function charts() {
  const source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") return;
  const d = JSON.parse(source.textContent);
  const palette = ["#2e7d32", "#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#827717", "#4e342e"];
  const common = { animation: false, responsive: true, maintainAspectRatio: false };
  const draw = (id, config) => {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, config);
    canvas.dataset.drawn = "1";  // for the browser tests: Chart.js has painted it
  };
  draw("chart-kg", {
    type: "bar",
    data: {
      labels: d.days,
      datasets: d.kg.map((s, i) => ({ label: s.label, data: s.data, backgroundColor: palette[i % palette.length] })),
    },
    options: { ...common, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  });
  draw("chart-points", {
    type: "line",
    data: {
      labels: d.days,
      datasets: [
        { label: d.labels.issued, data: d.issued, borderColor: palette[0], backgroundColor: palette[0] },
        { label: d.labels.redeemed, data: d.redeemed, borderColor: palette[2], backgroundColor: palette[2] },
      ],
    },
    options: { ...common, scales: { y: { beginAtZero: true } } },
  });
  draw("chart-co2e", {
    type: "bar",
    data: { labels: d.months, datasets: [{ label: d.labels.co2e, data: d.co2e, backgroundColor: palette[1] }] },
    options: { ...common, scales: { y: { beginAtZero: true } } },
  });
})();

(function fleetTable() {
  const table = document.getElementById("fleet");
  if (!table) return;
  const body = table.tBodies[0];
  const value = (row, i, type) => {
    const cell = row.cells[i];
    const raw = cell.dataset.sort ?? cell.textContent.trim();
    return type === "num" ? Number(raw) : raw.toLowerCase();
  };
  table.querySelectorAll("th").forEach((th, i) => {
    th.tabIndex = 0;
    const sort = () => {
      const asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach((o) => o.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      const type = th.dataset.type;
      const rows = [...body.rows].sort((a, b) => {
        const x = value(a, i, type), y = value(b, i, type);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach((r) => body.appendChild(r));
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (e) => { if (e.key === "Enter") sort(); });
  });
  const text = document.getElementById("fleet-filter");
  const only = document.getElementById("fleet-alerts-only");
  const filter = () => {
    const q = text.value.trim().toLowerCase();
    for (const row of body.rows) {
      const show = (!q || row.textContent.toLowerCase().includes(q)) &&
        (!only.checked || row.dataset.alerts !== "0");
      row.hidden = !show;
    }
  };
  text.addEventListener("input", filter);
  only.addEventListener("change", filter);
})();

// Rules upload: the chosen file is read into the text box, so the form posts plain
// text (the console's forms are urlencoded) and the operator sees what is sent.
(function rulesFile() {
  const file = document.getElementById("rules-file");
  const text = document.getElementById("rules-text");
  if (!file || !text) return;
  file.addEventListener("change", () => {
    if (!file.files || !file.files.length) return;
    file.files[0].text().then((content) => { text.value = content; });
  });
})();
