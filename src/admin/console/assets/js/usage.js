// Internal / Platform: the tokens of memgate's own embedding and extraction calls, which the
// gateway bills to the platform, not to the caller's key (GET /memory/usage).

import { get, path, ApiFailure } from "./api.js";
import { h, replace, table, count, field, showFieldErrors, problem, totals } from "./dom.js";
import { stackedBars, swatch } from "./charts.js";

const DAY = 86_400_000;

function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

function daysBetween(from, to) {
  const days = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += DAY) days.push(isoDay(t));
  return days;
}

const tokens = (row) => row.prompt_tokens + row.completion_tokens;

/** Sums `rows` by `keyOf`, largest first. */
function totalsBy(rows, keyOf) {
  const totals = new Map();
  for (const row of rows) {
    const key = keyOf(row);
    const sum = totals.get(key) || { key, calls: 0, prompt_tokens: 0, completion_tokens: 0, provider: row.provider };
    sum.calls += row.calls;
    sum.prompt_tokens += row.prompt_tokens;
    sum.completion_tokens += row.completion_tokens;
    totals.set(key, sum);
  }
  return [...totals.values()].sort((a, b) => tokens(b) - tokens(a) || String(a.key).localeCompare(String(b.key)));
}

function report(usage, width) {
  const days = daysBetween(usage.from, usage.to);
  const kinds = [...new Set(usage.rows.map((r) => r.kind))].sort();
  const series = kinds.map((kind) => ({
    name: kind,
    values: days.map((day) => usage.rows.filter((r) => r.day === day && r.kind === kind).reduce((sum, r) => sum + tokens(r), 0)),
  }));
  const numbers = [
    { label: "Calls", numeric: true, cell: (r) => count(r.calls) },
    { label: "Prompt tokens", numeric: true, cell: (r) => count(r.prompt_tokens) },
    { label: "Completion tokens", numeric: true, cell: (r) => count(r.completion_tokens) },
  ];
  return [
    totals([
      ["Internal calls", count(usage.total_calls), "total-calls"],
      ["Prompt tokens", count(usage.total_prompt_tokens)],
      ["Completion tokens", count(usage.total_completion_tokens)],
    ]),
    h("h2", {}, "Tokens by UTC day and kind"),
    usage.rows.length
      ? h(
          "figure",
          { class: "chart-box" },
          stackedBars({
            width,
            labels: days,
            series,
            unit: "tokens",
            title: `Internal tokens per UTC day from ${usage.from} to ${usage.to}, stacked by kind of call`,
          }),
          h(
            "figcaption",
            {},
            h("ul", { class: "legend" }, kinds.map((kind, i) => h("li", {}, swatch(i), kind))),
          ),
        )
      : h("p", { class: "empty" }, "No internal calls in this range."),
    h("h2", {}, "By kind"),
    table("Tokens by kind of call", [{ label: "Kind", cell: (r) => r.key }, ...numbers], totalsBy(usage.rows, (r) => r.kind), "None."),
    h("h2", {}, "By session"),
    table(
      "Tokens by memory session",
      [{ label: "Session", cell: (r) => r.key ?? h("span", { class: "muted" }, "(no session)") }, ...numbers],
      totalsBy(usage.rows, (r) => r.memory_id ?? null),
      "None.",
    ),
    h("h2", {}, "By model"),
    table(
      "Tokens by model",
      [
        { label: "Model", cell: (r) => r.key },
        { label: "Provider", cell: (r) => (r.provider === "local" ? "local (no spend)" : r.provider) },
        ...numbers,
      ],
      totalsBy(usage.rows, (r) => r.model),
      "None.",
    ),
  ];
}

export async function usagePage(main, range) {
  const today = isoDay(Date.now());
  const from = h("input", { type: "date", name: "from", "data-param": "from", value: range?.from ?? isoDay(Date.now() - 29 * DAY) });
  const to = h("input", { type: "date", name: "to", "data-param": "to", value: range?.to ?? today });
  const out = h("div", { class: "usage" });
  const form = h(
    "form",
    { class: "panel range", "aria-label": "Range", novalidate: true },
    h("div", { class: "form-error" }),
    h("div", { class: "row" }, field("From (UTC)", from), field("To (UTC, included)", to)),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Show")),
  );
  const load = async () => {
    try {
      const usage = await get(path("/memory/usage", { from: from.value, to: to.value, by: "session" }));
      showFieldErrors(form, null);
      // The chart is drawn at the width it is shown at, less the box's padding.
      replace(out, report(usage, Math.max(320, Math.min(960, main.clientWidth - 26))));
    } catch (error) {
      if (error instanceof ApiFailure && error.status === 403) {
        replace(out, problem({ message: "Platform spend is shown to admin keys only." }));
      } else if (error instanceof ApiFailure && error.status === 400) {
        out.replaceChildren();
        showFieldErrors(form, error);
      } else {
        throw error;
      }
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load().catch((error) => replace(out, problem(error)));
  });
  replace(
    main,
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Internal / Platform"),
      h("p", { class: "muted" }, "Embedding and extraction calls memgate makes for memory, under its service-account key: platform spend, not charged to the calling key."),
    ),
    form,
    out,
  );
  await load();
}
