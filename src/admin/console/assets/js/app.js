// The console's frame: sign-in, navigation and the hash routes
//   #/sessions                     the org's sessions
//   #/sessions/<id>[/<tab>]        one session: config, facts, history, search, graph
//   #/usage                        Internal / Platform spend
//   #/operations                   the ingestion queue and the journal
// Routes are in the fragment so that a reload keeps the page and nothing reaches a server log.

import { credentials, forget, signIn, whenSignedOut, ApiFailure } from "./api.js";
import { h, replace, field, showFieldErrors, announce } from "./dom.js";
import { sessionsPage } from "./sessions.js";
import { sessionPage } from "./session.js";
import { usagePage } from "./usage.js";
import { operationsPage } from "./operations.js";

const main = document.getElementById("main");

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return parts.length ? parts : ["sessions"];
}

function showIdentity() {
  const who = credentials();
  document.querySelector("nav.primary").hidden = !who;
  document.querySelector(".identity").hidden = !who;
  if (who) {
    replace(document.getElementById("who"), h("span", {}, `org `), h("strong", {}, who.org), ` · ${who.role}`);
  }
}

function markSection(section) {
  for (const link of document.querySelectorAll("nav.primary a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function signInPage(reason) {
  const key = h("input", {
    type: "password",
    name: "api-key",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "data-param": "key",
  });
  const form = h(
    "form",
    { class: "panel sign-in", "aria-labelledby": "sign-in-title", novalidate: true },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", {}, "Use an API key of your org. An admin key can change sessions; a member key sees them read-only."),
    reason ? h("p", { class: "notice" }, reason) : null,
    h("div", { class: "form-error" }),
    field("API key", key, "Kept in this tab only, and sent to this server alone."),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Sign in")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = key.value.trim();
    if (!value) {
      showFieldErrors(form, { param: "key", message: "Enter an API key." });
      return;
    }
    try {
      await signIn(value);
      key.value = "";
      showIdentity();
      const target = sessionStorage.getItem("memgate.console.after-sign-in") || "#/sessions";
      sessionStorage.removeItem("memgate.console.after-sign-in");
      if (location.hash === target) render();
      else location.hash = target;
    } catch (error) {
      const message =
        error instanceof ApiFailure && error.status === 401 ? "This key is not known to the server." : error.message;
      showFieldErrors(form, { param: "key", message });
    }
  });
  replace(main, form);
  main.setAttribute("aria-busy", "false");
  key.focus();
}

const pages = {
  sessions: (parts) => (parts.length > 1 ? sessionPage(main, parts[1], parts[2] || "config") : sessionsPage(main)),
  usage: () => usagePage(main),
  operations: () => operationsPage(main),
};

/** `navigated`: the user went somewhere, so focus moves to the new page's heading. */
async function render(navigated = false) {
  showIdentity();
  const parts = route();
  if (!credentials()) {
    if (parts[0] !== "signin") sessionStorage.setItem("memgate.console.after-sign-in", location.hash || "#/sessions");
    markSection(null);
    signInPage();
    return;
  }
  const page = pages[parts[0]];
  if (!page) {
    location.hash = "#/sessions";
    return;
  }
  markSection(parts[0]);
  main.setAttribute("aria-busy", "true");
  replace(main, h("p", { class: "loading" }, "Loading…"));
  try {
    await page(parts);
  } catch (error) {
    if (error instanceof ApiFailure && error.status === 401) return;
    replace(main, h("h1", {}, "Something went wrong"), h("p", { class: "error", role: "alert" }, error.message));
  } finally {
    main.setAttribute("aria-busy", "false");
  }
  const heading = main.querySelector("h1");
  if (heading && (navigated || document.activeElement === document.body)) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

whenSignedOut(() => {
  showIdentity();
  signInPage("The server no longer accepts that key; sign in again.");
});

document.getElementById("sign-out").addEventListener("click", () => {
  forget();
  announce("Signed out.");
  location.hash = "#/signin";
  render();
});

window.addEventListener("hashchange", () => render(true));
render();
