// One memory session: its config, facts, history, a search box and (cognee) its graph.

import { get, post, patch, del, path, segment, isAdmin, ApiFailure } from "./api.js";
import { h, replace, table, pager, when, count, field, showFieldErrors, confirmAction, announce, problem, offsetAfterRemoving } from "./dom.js";
import { configFields, readConfig } from "./config.js";
import { deleteSession } from "./sessions.js";
import { graphPicture } from "./graph.js";

const TABS = [
  ["config", "Config"],
  ["facts", "Facts"],
  ["history", "History"],
  ["search", "Search"],
  ["graph", "Graph"],
];

const FACTS_PAGE = 20;

const base = (session) => `/memory/session/${segment(session.memory_id)}`;

function header(session, tab) {
  const tabs = TABS.filter(([id]) => id !== "graph" || session.engine_name === "cognee");
  return h(
    "div",
    { class: "page-head" },
    h("p", { class: "crumbs" }, h("a", { href: "#/sessions" }, "Sessions"), " / "),
    h("h1", {}, session.memory_id),
    h(
      "p",
      { class: "muted" },
      h("span", { class: `badge engine-${session.engine_name}` }, session.engine_name),
      ` ${count(session.fact_count)} ${session.engine_name === "cognee" ? "relationships" : "facts"} · ${count(session.pending_turns)} pending · ${count(session.dead_turns)} dead turns · last activity `,
      when(session.last_activity_at),
    ),
    h(
      "nav",
      { class: "tabs", "aria-label": "Session" },
      tabs.map(([id, label]) =>
        h("a", { href: `#/sessions/${segment(session.memory_id)}/${id}`, "aria-current": id === tab ? "page" : null }, label),
      ),
    ),
  );
}

async function configTab(session, body) {
  const admin = isAdmin();
  const fields = configFields(session.config, session.engine_name);
  fields.disabled = !admin;
  const form = h(
    "form",
    { class: "panel", "aria-label": "Session config", novalidate: true },
    h("div", { class: "form-error" }),
    fields,
    admin
      ? h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Save config"))
      : h("p", { class: "muted" }, "Read-only: a member key cannot change a session."),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const updated = await patch(base(session), { config: readConfig(form, { forCreate: false }) });
      showFieldErrors(form, null);
      announce(`Saved the config of ${updated.memory_id}.`);
      Object.assign(session, updated);
    } catch (error) {
      showFieldErrors(form, error);
    }
  });
  const details = h(
    "dl",
    { class: "details" },
    h("dt", {}, "memory_id"),
    h("dd", {}, h("code", {}, session.memory_id)),
    h("dt", {}, "Engine"),
    h("dd", {}, session.engine_name),
    h("dt", {}, "Created"),
    h("dd", {}, when(session.created_at)),
    h("dt", {}, "Config changed"),
    h("dd", {}, when(session.updated_at)),
  );
  const actions = admin
    ? h(
        "div",
        { class: "actions" },
        h(
          "button",
          {
            type: "button",
            class: "danger",
            onclick: async () => {
              if (await deleteSession(session)) location.hash = "#/sessions";
            },
          },
          "Delete session",
        ),
      )
    : null;
  replace(body, h("section", { class: "split" }, details, form), actions);
}

async function factsTab(session, body, offset = 0) {
  const list = await get(path(`${base(session)}/facts`, { limit: FACTS_PAGE, offset }));
  const again = (at) => factsTab(session, body, at);
  const columns = [
    { label: "Fact", cell: (f) => f.text },
    { label: "Written", cell: (f) => when(f.updated_at) },
    { label: "Id", cell: (f) => h("code", { class: "id" }, f.id) },
  ];
  if (isAdmin()) {
    columns.push({
      label: "Actions",
      cell: (f) =>
        h(
          "button",
          {
            type: "button",
            class: "danger small",
            "aria-label": `Delete fact: ${f.text}`,
            onclick: async () => {
              const confirmed = await confirmAction({
                title: "Delete this fact?",
                body: [`“${f.text}”`, "It will no longer be injected or found; the deletion is kept in the history."],
                action: "Delete fact",
              });
              if (!confirmed) return;
              try {
                await del(`${base(session)}/facts/${segment(f.id)}`);
                announce("Deleted the fact.");
              } catch (error) {
                announce(error.message, "error");
              }
              again(offsetAfterRemoving(list.facts, offset, FACTS_PAGE));
            },
          },
          "Delete",
        ),
    });
  }
  replace(
    body,
    h("p", { class: "muted" }, `${count(list.total)} stored, oldest first.`),
    table("Facts", columns, list.facts, "Nothing remembered yet: facts appear once a turn has been ingested."),
    pager("Facts pages", list, again),
  );
}

async function historyTab(session, body, offset = 0) {
  const page = await get(path(`${base(session)}/history`, { limit: 50, offset }));
  const again = (at) => historyTab(session, body, at);
  const items = page.history.map((event) =>
    h(
      "li",
      { class: `event ${event.event.toLowerCase()}` },
      h("div", { class: "event-head" }, h("span", { class: "badge" }, event.event), when(event.created_at), event.reason ? h("span", { class: "muted" }, `reason: ${event.reason}`) : null),
      event.old_text !== null && event.old_text !== undefined ? h("p", { class: "old" }, h("span", { class: "visually-hidden" }, "Before: "), event.old_text) : null,
      event.new_text !== null && event.new_text !== undefined ? h("p", { class: "new" }, h("span", { class: "visually-hidden" }, "After: "), event.new_text) : null,
      h("p", { class: "muted id" }, "fact ", h("code", {}, event.fact_id)),
    ),
  );
  replace(
    body,
    h("p", { class: "muted" }, `${count(page.total)} events, oldest first.`),
    items.length ? h("ol", { class: "timeline", "aria-label": "History" }, items) : h("p", { class: "empty" }, "No changes yet."),
    pager("History pages", page, again),
  );
}

function searchTab(session, body) {
  const types = session.engine_name === "cognee" ? ["GRAPH_COMPLETION", "CHUNKS", "SUMMARIES"] : ["FACTS"];
  const query = h("input", { type: "search", name: "query", "data-param": "query", required: true, autocomplete: "off" });
  const type = h("select", { name: "search_type", "data-param": "search_type" }, types.map((t) => h("option", { value: t }, t)));
  const limit = h("input", { type: "text", inputmode: "numeric", name: "limit", "data-param": "limit", value: "" });
  const results = h("div", { class: "results", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "panel search", role: "search", "aria-label": "Search this session", novalidate: true },
    h("div", { class: "form-error" }),
    h(
      "div",
      { class: "row" },
      field("Query", query, "A question searches by meaning; keywords add full-text matching."),
      field("Search type", type),
      field("Results", limit, "1 to 100; empty takes the session's top_k."),
    ),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Search")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const request = { memory_id: session.memory_id, query: query.value, search_type: type.value };
    if (limit.value.trim()) request.limit = /^\d+$/.test(limit.value.trim()) ? Number(limit.value.trim()) : limit.value;
    replace(results, h("p", { class: "loading" }, "Searching…"));
    try {
      const found = await post("/memory/session/search", request);
      showFieldErrors(form, null);
      replace(results, searchResults(found));
    } catch (error) {
      results.replaceChildren();
      showFieldErrors(form, error);
    }
  });
  replace(body, form, results);
  query.focus();
}

function searchResults(found) {
  const facts = [
    h("dt", {}, "Query kind"),
    h("dd", { "data-testid": "query-kind" }, found.query_kind),
    h("dt", {}, "Search type"),
    h("dd", {}, found.search_type),
    h("dt", {}, "Answered by"),
    h("dd", { "data-testid": "answered-by" }, found.answered_by),
  ];
  if (found.fallback) facts.push(h("dt", {}, "Fallback"), h("dd", {}, found.fallback));
  if (found.answer_unavailable) facts.push(h("dt", {}, "No answer"), h("dd", {}, found.answer_unavailable));
  return [
    h("dl", { class: "details inline" }, facts),
    found.answer ? h("blockquote", { class: "answer" }, h("p", {}, found.answer)) : null,
    found.results.length
      ? h(
          "ol",
          { class: "hits", "aria-label": "Results, best first" },
          found.results.map((hit) =>
            h(
              "li",
              {},
              h("span", { class: "score", title: "score" }, h("span", { class: "visually-hidden" }, "score "), hit.score.toFixed(3)),
              h("span", { class: "text" }, hit.text),
              hit.triplet
                ? h(
                    "span",
                    { class: "muted triplet" },
                    `${hit.triplet.source.name} → ${hit.triplet.relation} → ${hit.triplet.target.name}`,
                    ` · ${hit.triplet.hops === 1 ? "touches" : "one hop from"} an entry point`,
                  )
                : null,
            ),
          ),
        )
      : h("p", { class: "empty" }, "Nothing matched."),
  ];
}

async function graphTab(session, body, offset = 0) {
  const picture = await get(path(`${base(session)}/graph`, { limit: 100, offset }));
  const again = (at) => graphTab(session, body, at);
  const names = new Map(picture.entities.map((e) => [e.key, e.name]));
  replace(
    body,
    h("p", { class: "muted" }, `${count(picture.entities.length)} entities joined by ${count(picture.relationships.length)} of ${count(picture.total_relationships)} relationships.`),
    picture.relationships.length ? graphPicture(picture, Math.max(320, Math.min(960, body.clientWidth))) : h("p", { class: "empty" }, "No graph yet: it grows as turns are ingested."),
    pager("Graph pages", { total: picture.total_relationships, limit: picture.limit, offset: picture.offset }, again),
    table(
      "Relationships",
      [
        { label: "From", cell: (r) => names.get(r.source) ?? r.source },
        { label: "Relation", cell: (r) => r.relation },
        { label: "To", cell: (r) => names.get(r.target) ?? r.target },
      ],
      picture.relationships,
      "",
    ),
  );
}

const TAB_PAGES = { config: configTab, facts: factsTab, history: historyTab, search: searchTab, graph: graphTab };

export async function sessionPage(main, memoryId, tab) {
  let session;
  try {
    session = await get(`/memory/session/${segment(memoryId)}`);
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 404) {
      replace(main, h("h1", {}, "No such session"), problem(error), h("p", {}, h("a", { href: "#/sessions" }, "Back to the sessions")));
      return;
    }
    throw error;
  }
  const render = TAB_PAGES[tab] && (tab !== "graph" || session.engine_name === "cognee") ? TAB_PAGES[tab] : configTab;
  const body = h("div", { class: "tab-body" });
  replace(main, header(session, TAB_PAGES[tab] === render ? tab : "config"), body);
  await render(session, body);
}
