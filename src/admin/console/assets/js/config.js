// A session's config as form controls, for creating a session and for changing one. The
// server validates; its errors come back naming the key (`param`), shown at the control.

import { h, field } from "./dom.js";

/** The documented keys of a session's config (GET /openapi.json, SessionConfig). */
const KEYS = [
  {
    name: "top_k",
    label: "Facts injected (top_k)",
    kind: "number",
    hint: "1 to 50; empty takes the server's memory.top_k.",
  },
  { name: "retrieval", label: "Inject context into requests", kind: "boolean", default: true },
  { name: "store_memory", label: "Store turns when a request does not say", kind: "boolean", default: true },
  {
    name: "fact_ttl_seconds",
    label: "Forget facts not written for (seconds)",
    kind: "number",
    hint: "Empty keeps them; mem0 only.",
    mem0Only: true,
  },
  {
    name: "max_facts",
    label: "Keep at most (facts)",
    kind: "number",
    hint: "The least recently written go first; empty for no cap; mem0 only.",
    mem0Only: true,
  },
  {
    name: "placement",
    label: "Context placement",
    kind: "choice",
    choices: [
      ["", "Server default (memory.placement)"],
      ["system", "In the system prompt"],
      ["before_last_user", "Before the last user message"],
    ],
  },
];

function control(key, value) {
  const param = `config.${key.name}`;
  switch (key.kind) {
    case "boolean":
      return h("input", { type: "checkbox", name: key.name, "data-param": param, checked: value ?? key.default });
    case "choice":
      return h(
        "select",
        { name: key.name, "data-param": param },
        key.choices.map(([v, label]) => h("option", { value: v, selected: (value ?? "") === v }, label)),
      );
    default:
      return h("input", { type: "text", inputmode: "numeric", name: key.name, "data-param": param, value: value ?? "" });
  }
}

/** The controls for `config` (a session's, or empty for a new one) of an `engine`. */
export function configFields(config, engine) {
  return h(
    "fieldset",
    { class: "config" },
    h("legend", {}, "Config"),
    KEYS.map((key) => {
      const wrapper = field(key.label, control(key, config[key.name]), key.hint);
      wrapper.classList.toggle("check", key.kind === "boolean");
      if (key.mem0Only) {
        wrapper.dataset.mem0Only = "";
        wrapper.hidden = engine === "cognee";
      }
      return wrapper;
    }),
  );
}

/** Shows the keys an engine has (cognee keeps no TTL or cap). */
export function showKeysOf(form, engine) {
  for (const wrapper of form.querySelectorAll("[data-mem0-only]")) wrapper.hidden = engine === "cognee";
}

/** A typed value: a number when the text is one, else the text, so the server names the fault. */
function numberOrText(text) {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  return /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : trimmed;
}

/**
 * The config the form holds. Keys left empty are null: on a change that means "back to the
 * default" (a JSON merge patch); on creation they are left out.
 */
export function readConfig(form, { forCreate }) {
  const config = {};
  for (const key of KEYS) {
    const input = form.querySelector(`[name="${key.name}"]`);
    if (!input || input.closest("[hidden]")) continue;
    let value;
    if (key.kind === "boolean") value = input.checked;
    else if (key.kind === "choice") value = input.value || null;
    else value = numberOrText(input.value);
    if (value === null && forCreate) continue;
    config[key.name] = value;
  }
  return config;
}
