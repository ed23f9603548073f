// Charts as SVG, drawn from numbers only; each comes with a table of the same numbers.

import { s, count } from "./dom.js";

/** The class of a series' colour: eight, set in the style sheet for light and dark. */
export function seriesClass(index) {
  return `series-${index % 8}`;
}

/** A round step for an axis up to `max`, about `ticks` of them. */
function step(max, ticks) {
  const raw = max / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const nice = [1, 2, 5, 10].find((m) => m * magnitude >= raw) || 10;
  return nice * magnitude;
}

function compact(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}k`;
  return String(n);
}

/**
 * Bars per category (`labels`, left to right), each stacked from `series`
 * (`{name, values[]}`, bottom to top), drawn `width` units wide (the width it is shown at, so
 * that its text stays legible on a phone).
 */
export function stackedBars({ labels, series, title, unit, width = 960 }) {
  const height = width < 600 ? 260 : 320;
  const left = 56;
  const bottom = 46;
  const top = 12;
  const plotHeight = height - top - bottom;
  const totals = labels.map((_, i) => series.reduce((sum, serie) => sum + serie.values[i], 0));
  const max = Math.max(1, ...totals);
  const tick = step(max, 4);
  const ceiling = Math.ceil(max / tick) * tick;
  const y = (v) => top + plotHeight - (v / ceiling) * plotHeight;
  const slot = (width - left - 8) / Math.max(labels.length, 1);
  const barWidth = Math.max(2, Math.min(40, slot * 0.7));
  const grid = [];
  for (let v = 0; v <= ceiling; v += tick) {
    grid.push(
      s("line", { class: "grid", x1: left, x2: width - 8, y1: y(v), y2: y(v) }),
      s("text", { class: "axis", x: left - 6, y: y(v) + 4, "text-anchor": "end" }, compact(v)),
    );
  }
  // As many day labels as fit, about 70 px apart.
  const labelEvery = Math.ceil(labels.length / Math.max(2, Math.floor((width - left) / 70)));
  const bars = labels.map((label, i) => {
    let base = 0;
    const x = left + i * slot + (slot - barWidth) / 2;
    const pieces = series
      .map((serie, k) => {
        const value = serie.values[i];
        if (!value) return null;
        const rect = s(
          "rect",
          { x, width: barWidth, y: y(base + value), height: y(base) - y(base + value), class: seriesClass(k) },
          s("title", {}, `${label} · ${serie.name}: ${count(value)} ${unit}`),
        );
        base += value;
        return rect;
      })
      .filter(Boolean);
    const tickLabel =
      i % labelEvery === 0
        ? s("text", { class: "axis", x: x + barWidth / 2, y: height - bottom + 16, "text-anchor": "middle" }, label.slice(5))
        : null;
    return s("g", { class: "bar", "data-label": label }, pieces, tickLabel);
  });
  return s(
    "svg",
    { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title },
    grid,
    bars,
    s("line", { class: "baseline", x1: left, x2: width - 8, y1: y(0), y2: y(0) }),
  );
}

/** A square of a series' colour, for a legend. */
export function swatch(index) {
  return s("svg", { class: "swatch", viewBox: "0 0 10 10", width: 10, height: 10, "aria-hidden": "true" }, s("rect", { width: 10, height: 10, class: seriesClass(index) }));
}
