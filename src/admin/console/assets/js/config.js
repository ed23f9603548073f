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

/** The built-in redaction detectors (SessionRedaction): each on, off, or as the server says. */
const DETECTORS = [
  ["secret", "Secrets", "API keys, tokens, private keys, passwords"],
  ["email", "E-mail addresses"],
  ["phone", "Phone numbers"],
  ["card", "Payment card numbers"],
  ["iban", "IBANs"],
  ["ip", "IP addresses"],
];

function detectorControl(name, value) {
  const current = value === true ? "on" : value === false ? "off" : "";
  return h(
    "select",
    { name: `redaction.${name}`, "data-param": `config.redaction.${name}` },
    [
      ["", "Server default"],
      ["on", "Redact"],
      ["off", "Keep"],
    ].map(([v, label]) => h("option", { value: v, selected: current === v }, label)),
  );
}

function redactionFields(redaction) {
  const own = redaction || {};
  const custom = (own.custom || []).map((rule) => `[${rule.label}]`).join(", ");
  return h(
    "fieldset",
    { class: "redaction" },
    h("legend", {}, "Redaction before anything is stored or sent to a model"),
    DETECTORS.map(([name, label, hint]) => field(label, detectorControl(name, own[name]), hint)),
    custom ? h("p", { class: "hint" }, `Custom rules of this session: ${custom} (change them through the API).`) : null,
  );
}

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
    redactionFields(config.redaction),
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
  const redaction = {};
  for (const [name] of DETECTORS) {
    const input = form.querySelector(`[name="redaction.${name}"]`);
    if (!input) continue;
    const value = input.value === "on" ? true : input.value === "off" ? false : null;
    if (value === null && forCreate) continue;
    redaction[name] = value;
  }
  // A merge patch: each detector left at the default goes back to the server's; custom rules
  // are left as they are.
  if (Object.keys(redaction).length > 0) config.redaction = redaction;
  return config;
}
