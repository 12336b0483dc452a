// carebot insights: draws the charts of /insights with Chart.js (chart.umd.min.js, vendored).
// The page works without it: every chart is also a table the server rendered. Once a chart is
// drawn, its table stays for screen readers and shows on "Show table" (or when focused).
"use strict";

(() => {
  const canvases = Array.from(document.querySelectorAll("canvas[data-chart]"));
  if (!window.Chart || canvases.length === 0) return;

  const style = getComputedStyle(document.documentElement);
  const css = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  const PALETTE = ["#2f5bd3", "#e0a030", "#23a36b", "#d6336c", "#8a5cd1", "#2a9fd6", "#b93838", "#7d8797"];
  const count = new Intl.NumberFormat("en-US");

  // The same wording as the server's durations ("40 s", "4 min", "1 h 20 min", "2 d 3 h").
  function duration(seconds) {
    if (Math.round(seconds) < 60) return `${Math.max(0, Math.round(seconds))} s`;
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `${minutes} min`;
    if (minutes < 24 * 60) {
      const rest = minutes % 60;
      return rest ? `${Math.floor(minutes / 60)} h ${rest} min` : `${Math.floor(minutes / 60)} h`;
    }
    const hours = Math.round(seconds / 3600);
    return hours % 24 ? `${Math.floor(hours / 24)} d ${hours % 24} h` : `${Math.floor(hours / 24)} d`;
  }

  function format(unit, value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "-";
    if (unit === "percent") return `${value.toFixed(1)}%`;
    if (unit === "minutes") return duration(value * 60);
    return count.format(value);
  }

  // An axis needs no decimals where its steps are whole.
  function tick(unit, value) {
    if (unit === "percent" && Number.isInteger(value)) return `${value}%`;
    return format(unit, value);
  }

  Chart.defaults.font.family = css("--font", "system-ui, sans-serif");
  Chart.defaults.color = css("--muted", "#5b6576");
  Chart.defaults.borderColor = css("--border", "#e1e4ea");

  // A point's link: the same cell of the table under the chart.
  function cellLink(table, index, datasetIndex) {
    const row = table.querySelectorAll("tbody tr")[index];
    const cell = row ? row.querySelectorAll("td")[datasetIndex] : null;
    return cell ? cell.querySelector("a") : null;
  }

  function addToggle(figure, tableBox) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn btn-ghost btn-sm table-toggle";
    button.textContent = "Show table";
    button.setAttribute("aria-controls", tableBox.id);
    button.setAttribute("aria-expanded", "false");
    button.addEventListener("click", () => {
      const open = tableBox.classList.toggle("is-collapsed") === false;
      button.textContent = open ? "Hide table" : "Show table";
      button.setAttribute("aria-expanded", String(open));
    });
    figure.appendChild(button);
  }

  function draw(canvas) {
    const spec = JSON.parse(canvas.dataset.chart);
    const figure = canvas.closest(".chart");
    const tableBox = figure.querySelector(".chart-table");
    canvas.parentElement.hidden = false;
    const line = spec.type === "line";
    const datasets = spec.datasets.map((set, i) => ({
      ...set,
      backgroundColor: line ? PALETTE[i % PALETTE.length] : `${PALETTE[i % PALETTE.length]}d9`,
      borderColor: PALETTE[i % PALETTE.length],
      borderWidth: line ? 2 : 0,
      borderDash: line && i > 0 ? [5, 4] : [],
      pointRadius: 3,
      tension: 0.25,
      spanGaps: true,
      borderRadius: line ? 0 : 3,
      maxBarThickness: 42,
    }));
    new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { display: datasets.length > 1, position: "bottom", labels: { boxWidth: 12, boxHeight: 12 } },
          tooltip: {
            callbacks: { label: (item) => `${item.dataset.label}: ${format(spec.unit, item.parsed.y)}` },
          },
        },
        scales: {
          x: { stacked: spec.stacked, grid: { display: false }, title: { display: true, text: spec.x_title } },
          y: {
            stacked: spec.stacked,
            beginAtZero: true,
            ticks: { precision: 0, callback: (value) => tick(spec.unit, value) },
          },
        },
        onClick: (_event, elements) => {
          if (!elements.length || !tableBox) return;
          const link = cellLink(tableBox, elements[0].index, elements[0].datasetIndex);
          if (link) window.location.assign(link.href);
        },
        onHover: (event, elements) => {
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        },
      },
    });
    if (tableBox) {
      tableBox.classList.add("is-collapsed");
      addToggle(figure, tableBox);
    }
  }

  for (const canvas of canvases) {
    try {
      draw(canvas);
    } catch (error) {
      canvas.parentElement.hidden = true; // the table stays
      console.error("carebot insights: a chart could not be drawn", error);
    }
  }
})();
