// A cognee session's entities and relationships as a picture: a force-directed layout, run to
// rest before drawing (the same graph always gives the same picture), drawn as SVG.

import { s } from "./dom.js";
import { seriesClass } from "./charts.js";

const MARGIN = 70;
const ITERATIONS = 400;

/** Positions for `nodes` (`{key}`) joined by `links` (`{source, target}` keys) on a canvas. */
function layout(nodes, links, width, height) {
  const n = nodes.length;
  const index = new Map(nodes.map((node, i) => [node.key, i]));
  // Start on a circle, in order: deterministic, and no two nodes share a point.
  const x = nodes.map((_, i) => width / 2 + (width / 3) * Math.cos((2 * Math.PI * i) / n));
  const y = nodes.map((_, i) => height / 2 + (height / 3) * Math.sin((2 * Math.PI * i) / n));
  const pairs = links
    .map((l) => [index.get(l.source), index.get(l.target)])
    .filter(([a, b]) => a !== undefined && b !== undefined && a !== b);
  const ideal = Math.sqrt((width * height) / Math.max(n, 1)) * 0.55;
  let temperature = width / 8;
  for (let step = 0; step < ITERATIONS; step++) {
    const dx = new Float64Array(n);
    const dy = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        let ex = x[i] - x[j];
        let ey = y[i] - y[j];
        const distance = Math.max(Math.hypot(ex, ey), 0.01);
        const push = (ideal * ideal) / distance;
        ex /= distance;
        ey /= distance;
        dx[i] += ex * push;
        dy[i] += ey * push;
        dx[j] -= ex * push;
        dy[j] -= ey * push;
      }
    }
    for (const [a, b] of pairs) {
      const ex = x[a] - x[b];
      const ey = y[a] - y[b];
      const distance = Math.max(Math.hypot(ex, ey), 0.01);
      const pull = (distance * distance) / ideal;
      dx[a] -= (ex / distance) * pull;
      dy[a] -= (ey / distance) * pull;
      dx[b] += (ex / distance) * pull;
      dy[b] += (ey / distance) * pull;
    }
    for (let i = 0; i < n; i++) {
      // A weak pull to the middle keeps parts that are not joined on the canvas.
      dx[i] += (width / 2 - x[i]) * 0.02;
      dy[i] += (height / 2 - y[i]) * 0.02;
      const moved = Math.max(Math.hypot(dx[i], dy[i]), 0.01);
      x[i] += (dx[i] / moved) * Math.min(moved, temperature);
      y[i] += (dy[i] / moved) * Math.min(moved, temperature);
    }
    temperature = Math.max(temperature * 0.985, 0.5);
  }
  // Fit the result to the canvas.
  const [minX, maxX] = [Math.min(...x), Math.max(...x)];
  const [minY, maxY] = [Math.min(...y), Math.max(...y)];
  const scale = (v, lo, hi, size) => (hi - lo < 1 ? size / 2 : MARGIN + ((v - lo) / (hi - lo)) * (size - 2 * MARGIN));
  return nodes.map((_, i) => [scale(x[i], minX, maxX, width), scale(y[i], minY, maxY, height)]);
}

/**
 * The SVG of a GET /memory/session/{id}/graph answer, laid out `width` units wide (the width
 * it is shown at, so that names stay legible on a phone).
 */
export function graphPicture(picture, width = 960) {
  const height = width < 600 ? Math.round(width * 1.3) : 560;
  const nodes = picture.entities;
  const at = new Map(layout(nodes, picture.relationships, width, height).map((point, i) => [nodes[i].key, point]));
  const types = [...new Set(nodes.map((n) => n.type || "entity"))].sort();
  const colour = (type) => seriesClass(types.indexOf(type || "entity"));
  const edges = picture.relationships
    .filter((r) => at.has(r.source) && at.has(r.target))
    .map((r) => {
      const [x1, y1] = at.get(r.source);
      const [x2, y2] = at.get(r.target);
      return s(
        "g",
        { class: "edge" },
        s("title", {}, r.text),
        s("line", { x1, y1, x2, y2, "marker-end": "url(#arrow)" }),
        s("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, r.relation),
      );
    });
  const vertices = nodes.map((node) => {
    const [cx, cy] = at.get(node.key);
    return s(
      "g",
      { class: "node" },
      s("title", {}, `${node.name} (${node.type || "entity"})`),
      s("circle", { cx, cy, r: 9, class: colour(node.type) }),
      s("text", { x: cx, y: cy + 24, "text-anchor": "middle" }, node.name),
    );
  });
  const legend = types.map((type, i) =>
    s(
      "g",
      { class: "legend" },
      s("circle", { cx: 16, cy: 18 + i * 20, r: 6, class: colour(type) }),
      s("text", { x: 28, y: 22 + i * 20 }, type),
    ),
  );
  return s(
    "svg",
    {
      class: "graph",
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": `Knowledge graph: ${nodes.length} entities, ${edges.length} relationships (listed in the table below)`,
    },
    s(
      "defs",
      {},
      s(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 19, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }),
      ),
    ),
    edges,
    vertices,
    legend,
  );
}
