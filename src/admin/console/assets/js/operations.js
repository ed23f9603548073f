// Operations: the org's ingestion queue (waiting turns, dead letters with retry), the turns
// waiting in this replica's journal, and the server's metrics.

import { get, post, path, segment, ApiFailure } from "./api.js";
import { h, replace, table, pager, when, count, announce, problem, totals, offsetAfterRemoving } from "./dom.js";

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
                  again(offsetAfterRemoving(dead.turns, offset, PAGE));
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
  let queue;
  try {
    queue = await Promise.all(["pending", "dead", "done"].map((state) => get(path("/memory/outbox", { state, limit: 1 }))));
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 403) {
      replace(main, h("h1", {}, "Operations"), problem({ message: "The queue is shown to admin keys only." }));
      return;
    }
    throw error;
  }
  const [pending, dead, done] = queue;
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
    totals([
      ["Pending turns", count(pending.total), "pending"],
      ["Dead letters", count(dead.total), "dead"],
      ["Ingested (kept 24 h)", count(done.total)],
      ["In this replica's journal", journal, "journal"],
    ]),
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
