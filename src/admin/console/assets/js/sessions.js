// The org's memory sessions: the list, a new session, deleting one.

import { get, post, del, path, segment, isAdmin } from "./api.js";
import { h, replace, table, pager, when, count, field, showFieldErrors, confirmAction, announce, offsetAfterRemoving } from "./dom.js";
import { configFields, readConfig, showKeysOf } from "./config.js";

const PAGE = 50;

/** Asks, then deletes a session; resolves to true when it went. */
export async function deleteSession(session) {
  const facts = session.engine_name === "cognee" ? "relationships" : "facts";
  const confirmed = await confirmAction({
    title: `Delete session “${session.memory_id}”?`,
    body: [
      `Its ${count(session.fact_count)} ${facts}, their history, ${count(session.pending_turns)} pending and ${count(session.dead_turns)} dead turns go with it${session.engine_name === "cognee" ? ", and so do its graph, chunks and summaries" : ""}.`,
      "This cannot be undone.",
    ],
    action: "Delete session",
  });
  if (!confirmed) return false;
  const deleted = await del(`/memory/session/${segment(session.memory_id)}`);
  announce(`Deleted session ${deleted.memory_id} and ${count(deleted.facts_deleted)} ${facts}.`);
  return true;
}

function createForm(engines, created) {
  const name = h("input", { type: "text", name: "session_name", "data-param": "session_name", required: true, autocomplete: "off", spellcheck: "false" });
  const engine = h(
    "select",
    { name: "engine_name", "data-param": "engine_name" },
    engines.map((e) =>
      h("option", { value: e.name, disabled: !e.available }, `${e.name}${e.available ? "" : " (not available here)"}`),
    ),
  );
  const form = h(
    "form",
    { class: "panel create", "aria-labelledby": "create-title", novalidate: true },
    h("h2", { id: "create-title" }, "New session"),
    h("div", { class: "form-error" }),
    h(
      "div",
      { class: "row" },
      field("Name (its memory_id)", name, "Letters, digits and . _ : @ -, up to 128."),
      field("Engine", engine, "Cannot change after creation."),
    ),
    configFields({}, engine.value),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create session")),
  );
  engine.addEventListener("change", () => showKeysOf(form, engine.value));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const session = await post("/memory/session/create", {
        session_name: name.value.trim(),
        engine_name: engine.value,
        config: readConfig(form, { forCreate: true }),
      });
      announce(`Created session ${session.memory_id}.`);
      created(session);
    } catch (error) {
      showFieldErrors(form, error);
    }
  });
  return form;
}

export async function sessionsPage(main, offset = 0) {
  const admin = isAdmin();
  const [list, engines] = await Promise.all([
    get(path("/memory/sessions", { limit: PAGE, offset })),
    admin ? get("/memory/engines") : Promise.resolve({ engines: [] }),
  ]);
  const reload = (at = offset) => sessionsPage(main, at);
  const columns = [
    {
      label: "Session",
      cell: (s) => h("a", { href: `#/sessions/${segment(s.memory_id)}` }, s.memory_id),
    },
    { label: "Engine", cell: (s) => s.engine_name },
    { label: "Facts", numeric: true, cell: (s) => count(s.fact_count) },
    { label: "Pending turns", numeric: true, cell: (s) => count(s.pending_turns) },
    {
      label: "Dead turns",
      numeric: true,
      cell: (s) => (s.dead_turns ? h("a", { href: "#/operations", class: "warn" }, count(s.dead_turns)) : "0"),
    },
    { label: "Last activity", cell: (s) => when(s.last_activity_at) },
  ];
  if (admin) {
    columns.push({
      label: "Actions",
      cell: (s) =>
        h(
          "button",
          {
            type: "button",
            class: "danger small",
            "aria-label": `Delete session ${s.memory_id}`,
            onclick: async () => {
              if (await deleteSession(s)) reload(offsetAfterRemoving(list.sessions, offset, PAGE));
            },
          },
          "Delete",
        ),
    });
  }
  replace(
    main,
    h(
      "div",
      { class: "page-head" },
      h("h1", {}, "Sessions"),
      h("p", { class: "muted" }, `${count(list.total)} in this org${admin ? "" : " · read-only (member key)"}`),
    ),
    table("The org's memory sessions", columns, list.sessions, "No sessions yet."),
    pager("Sessions pages", list, reload),
    admin
      ? createForm(engines.engines, (session) => {
          location.hash = `#/sessions/${segment(session.memory_id)}`;
        })
      : null,
  );
}
