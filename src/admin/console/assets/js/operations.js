// Operations: the org's ingestion queue (waiting turns, dead letters with retry), the turns
// waiting in this replica's journal, and the server's metrics.

import { get, post, path, segment, ApiFailure } from "./api.js";
import { h, replace, table, pager, when, count, announce, problem } from "./dom.js";

const PAGE = 20;

async function deadLetters(out, offset = 0) {
  const dead = await get(path("/memory/outbox", { state: "dead", limit: PAGE, offset }));
  const again = (at) => deadLetters(out, at);
  replace(
    out,
    table(
      "Dead letters",
      [
        { label: "Turn", cell: (t) => h("code", {}, String(t.id)) },
        { label: "Session", cell: (t) => h("a", { href: `#/sessions/${segment(t.memory_id)}` }, t.memory_id) },
        { label: "Attempts", numeric: true, cell: (t) => count(t.attempts) },
        { label: "Last error", cell: (t) => t.last_error ?? "" },
        { label: "Queued", cell: (t) => when(t.created_at) },
        {
          label: "Actions",
          cell: (t) =>
            h(
              "button",
              {
                type: "button",
                class: "small",
                "aria-label": `Retry turn ${t.id}`,
                onclick: async () => {
                  try {
                    await post(`/memory/outbox/${t.id}/retry`);
                    announce(`Turn ${t.id} is back in the queue.`);
                  } catch (error) {
                    announce(error.message, "error");
                  }
                  again(dead.turns.length === 1 && offset > 0 ? offset - PAGE : offset);
                },
              },
              "Retry",
            ),
        },
      ],
      dead.turns,
      "No dead letters: every turn was ingested or is still being tried.",
    ),
    pager("Dead letter pages", dead, again),
  );
}

export async function operationsPage(main) {
  let totals;
  try {
    totals = await Promise.all(["pending", "dead", "done"].map((state) => get(path("/memory/outbox", { state, limit: 1 }))));
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 403) {
      replace(main, h("h1", {}, "Operations"), problem({ message: "The queue is shown to admin keys only." }));
      return;
    }
    throw error;
  }
  const [pending, dead, done] = totals;
  let journal;
  try {
    journal = count((await get("/memory/outbox/journal")).journaled_turns);
  } catch (error) {
    journal = error.message;
  }
  const letters = h("div", {});
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", {}, "Operations"), h("p", { class: "muted" }, "The org's turns on their way to memory.")),
    h(
      "dl",
      { class: "totals" },
      h("div", {}, h("dt", {}, "Pending turns"), h("dd", { "data-testid": "pending" }, count(pending.total))),
      h("div", {}, h("dt", {}, "Dead letters"), h("dd", { "data-testid": "dead" }, count(dead.total))),
      h("div", {}, h("dt", {}, "Ingested (kept 24 h)"), h("dd", {}, count(done.total))),
      h("div", {}, h("dt", {}, "In this replica's journal"), h("dd", { "data-testid": "journal" }, journal)),
    ),
    h("h2", {}, "Dead letters"),
    letters,
    h("h2", {}, "Metrics"),
    h(
      "p",
      {},
      "The server's counters, gauges and latency histograms in Prometheus' text format: ",
      h("a", { href: "/metrics", target: "_blank", rel: "noopener" }, "/metrics"),
      ". Readiness: ",
      h("a", { href: "/readyz", target: "_blank", rel: "noopener" }, "/readyz"),
      ".",
    ),
  );
  await deadLetters(letters);
}
