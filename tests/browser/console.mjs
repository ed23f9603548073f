// Drives Debian's Chromium through the admin console, as a user would: tests/console.rs starts
// memgate in front of the mock gateway, prepares a dead letter, and runs this with
//   ADMIN_URL, PROXY_URL, ACME_ADMIN, ACME_MEMBER, GLOBEX_ADMIN, SCREENSHOTS, CHROMIUM,
//   BROWSER_ENV (where scripts/install-browser.sh installed playwright-core)
// It prints one JSON line per screenshot and exits non-zero on the first failed check.

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const require = createRequire(join(env("BROWSER_ENV"), "package.json"));
const { chromium } = require("playwright-core");
// axe, the accessibility checker, evaluated in the page over the devtools protocol (which the
// page's CSP does not govern: the console itself still loads nothing but its own files).
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const ADMIN = env("ADMIN_URL");
const PROXY = env("PROXY_URL");
const KEYS = { admin: env("ACME_ADMIN"), member: env("ACME_MEMBER"), other: env("GLOBEX_ADMIN") };
const SHOTS = env("SCREENSHOTS");
const WIDE = { width: 1280, height: 800 };
const NARROW = { width: 390, height: 844 };
const SESSION = "alice-console";
const GRAPH_SESSION = "graph-demo";
const WAIT = 20_000;

mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  headless: true,
  // Without these Chromium keeps dialling out, and this machine has no network to dial.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: WIDE, reducedMotion: "reduce" });
const page = await context.newPage();
page.setDefaultTimeout(WAIT);

// Anything the page logs as an error (a CSP refusal among them), any script error, any request
// that leaves the admin origin or carries a key in its URL fails the run.
const problems = [];
page.on("console", (message) => {
  // The refusals this run provokes on purpose (400, 401, 403, 404, 422) are logged too: not problems.
  const provoked = /^Failed to load resource: the server responded with a status of 4(00|01|03|04|22) /;
  if (message.type() === "error" && !provoked.test(message.text())) problems.push(`console: ${message.text()}`);
});
page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
page.on("request", (request) => {
  const url = request.url();
  if (!url.startsWith(ADMIN)) problems.push(`request off the admin origin: ${url}`);
  for (const key of Object.values(KEYS)) if (url.includes(key)) problems.push(`a key in a URL: ${url}`);
});
const checkNoProblems = () => assert.deepEqual(problems, [], "the page reported problems");

let size = "1280x800";
async function shoot(name) {
  // A passing notice ("Saved …") would cover part of the page.
  await page.evaluate(() => document.getElementById("status").replaceChildren());
  await page.evaluate(() => document.fonts.ready);
  const file = join(SHOTS, `${size}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(JSON.stringify({ screenshot: file, page: name, size }));
}

/**
 * axe finds no WCAG 2.1 A or AA violation (contrast, names, roles, landmarks…); every form
 * control has a label a screen reader reads out; at 390 px nothing scrolls sideways.
 */
async function checkPage(name) {
  await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
    });
    return result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
  });
  assert.deepEqual(violations, [], `${name} at ${size}: accessibility violations`);
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea, button")]
      .filter((el) => !el.closest("[hidden]"))
      .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.textContent.trim()))
      .map((el) => el.outerHTML),
  );
  assert.deepEqual(unlabelled, [], `${name}: unlabelled controls`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name}: the page is ${overflow}px wider than the ${size} window`);
}

/** Until the page has rendered what it loads: the console marks `main` busy meanwhile. */
async function settled() {
  await page.locator('#main[aria-busy="false"]').waitFor();
}

async function visit(hash, heading) {
  const target = `${ADMIN}/ui${hash}`;
  if (page.url() === target) {
    await page.reload();
  } else {
    // A new fragment renders in the same document: clear the mark so the wait sees the new render.
    await page.evaluate(() => document.getElementById("main")?.removeAttribute("aria-busy")).catch(() => {});
    await page.goto(target);
  }
  await settled();
  await page.getByRole("heading", { level: 1, name: heading }).waitFor();
}

async function signIn(key) {
  await page.goto(`${ADMIN}/ui`);
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { level: 1, name: "Sessions" }).waitFor();
}

async function signOut() {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "signing out forgets the key");
}

async function chat(memoryId, text) {
  const response = await fetch(`${PROXY}/v1/chat/completions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${KEYS.member}`, "Content-Type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o-mini", memory_id: memoryId, messages: [{ role: "user", content: text }] }),
  });
  const answer = await response.text();
  assert.equal(response.status, 200, `chat turn: ${answer}`);
}

/** Reloads until `locator` shows: ingestion runs behind the proxy, a moment later. */
async function eventually(locator, what) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    if ((await locator.count()) > 0) return;
    if (Date.now() > deadline) throw new Error(`never appeared: ${what}`);
    await page.waitForTimeout(300);
    await page.reload();
    await settled();
  }
}

async function sessionTab(memoryId, tab) {
  await visit(`#/sessions/${memoryId}/${tab}`, memoryId);
}

async function search(query) {
  await page.getByLabel("Query").fill(query);
  await page.getByRole("button", { name: "Search", exact: true }).click();
  await page.getByTestId("answered-by").waitFor();
}

// ── Sign-in: a wrong key is refused at the field, a right one lands on the sessions.
await page.goto(`${ADMIN}/ui`);
await page.getByRole("heading", { name: "Sign in" }).waitFor();
await checkPage("signin");
await shoot("signin");
await page.getByLabel("API key").fill("sk-nobody");
await page.getByRole("button", { name: "Sign in" }).click();
await page.getByText("This key is not known to the server.").waitFor();
await page.getByLabel("API key").fill(KEYS.admin);
await page.getByRole("button", { name: "Sign in" }).click();
await page.getByRole("heading", { level: 1, name: "Sessions" }).waitFor();
assert.match(await page.locator("#who").textContent(), /acme · admin/);

// ── A session created in the form; the API's validation error shows at its field first.
await page.getByLabel("Name (its memory_id)").fill(SESSION);
await page.getByLabel("Facts injected (top_k)").fill("99");
await page.getByRole("button", { name: "Create session" }).click();
const topKError = page.locator(".field-error:not([hidden])");
await topKError.waitFor();
assert.match(await topKError.textContent(), /config\.top_k.*between 1 and 50/);
assert.equal(await page.getByLabel("Facts injected (top_k)").getAttribute("aria-invalid"), "true");
await page.getByLabel("Facts injected (top_k)").fill("3");
await page.getByRole("button", { name: "Create session" }).click();
await page.getByRole("heading", { level: 1, name: SESSION }).waitFor();

// ── Two chat turns through the proxy; their facts and history appear.
await chat(SESSION, "I prefer summaries under 200 words. My team is in Singapore.");
await chat(SESSION, "I am working on the Q3 APAC analysis. Notes look like <b>bold</b> & <img src=x onerror=alert(1)> here");
await sessionTab(SESSION, "facts");
await eventually(page.getByRole("cell", { name: "I am working on the Q3 APAC analysis" }), "the second turn's facts");
for (const fact of ["I prefer summaries under 200 words", "My team is in Singapore"]) {
  await page.getByRole("cell", { name: fact, exact: true }).waitFor();
}
// Stored markup is shown as the text it is.
await page.getByRole("cell", { name: "Notes look like <b>bold</b> & <img src=x onerror=alert(1)> here", exact: true }).waitFor();
assert.equal(await page.locator("main img, main b").count(), 0, "stored markup must not render");
await checkPage("facts");
await shoot("session-facts");

await sessionTab(SESSION, "history");
assert.equal(await page.locator("ol.timeline li.add").count(), 4, "four ADD events");
await checkPage("history");

// ── Search: each result's score, the query kind and the path that answered.
await sessionTab(SESSION, "search");
await search("What length of summaries do I prefer?");
assert.equal(await page.getByTestId("query-kind").textContent(), "question");
assert.equal(await page.getByTestId("answered-by").textContent(), "facts");
const first = page.locator("ol.hits li").first();
assert.match(await first.locator(".text").textContent(), /summaries under 200 words/);
assert.match(await first.locator(".score").textContent(), /score\s*[01]\.\d{3}/);
await checkPage("search");
await shoot("session-search");
await search("Singapore team");
assert.equal(await page.getByTestId("query-kind").textContent(), "keywords");

// ── Deleting a fact asks first (Cancel keeps it), then it goes, and the history says so.
await sessionTab(SESSION, "facts");
await page.getByRole("button", { name: "Delete fact: My team is in Singapore" }).click();
const dialog = page.getByRole("dialog", { name: "Delete this fact?" });
await dialog.waitFor();
await dialog.getByRole("button", { name: "Cancel" }).click();
await dialog.waitFor({ state: "detached" });
await page.getByRole("cell", { name: "My team is in Singapore", exact: true }).waitFor();
await page.getByRole("button", { name: "Delete fact: My team is in Singapore" }).click();
await dialog.getByRole("button", { name: "Delete fact" }).click();
await page.getByRole("cell", { name: "My team is in Singapore", exact: true }).waitFor({ state: "detached" });
await sessionTab(SESSION, "history");
await page.locator("ol.timeline li.delete").filter({ hasText: "reason: api" }).waitFor();
await shoot("session-history");

// ── Facts come in pages of 20: 25 facts added through the API turn two pages.
const sentences = Array.from({ length: 22 }, (_, i) => `Reading list entry number ${i + 1} is noted`).join(". ");
const added = await fetch(`${ADMIN}/memory/session/add`, {
  method: "POST",
  headers: { Authorization: `Bearer ${KEYS.admin}`, "Content-Type": "application/json" },
  body: JSON.stringify({ memory_id: SESSION, messages: [{ role: "user", content: sentences }] }),
});
assert.equal(added.status, 200, await added.text());
await sessionTab(SESSION, "facts");
const pages = page.getByRole("navigation", { name: "Facts pages" });
assert.equal(await pages.getByText("1–20 of 25").count(), 1);
assert.equal(await pages.getByRole("button", { name: "Previous" }).isDisabled(), true);
await pages.getByRole("button", { name: "Next" }).click();
await pages.getByText("21–25 of 25").waitFor();
await page.getByRole("cell", { name: "Reading list entry number 22 is noted", exact: true }).waitFor();
assert.equal(await pages.getByRole("button", { name: "Next" }).isDisabled(), true);
await pages.getByRole("button", { name: "Previous" }).click();
await pages.getByText("1–20 of 25").waitFor();

// ── The config: a bad value is refused at its field, a good one saved.
await sessionTab(SESSION, "config");
await page.getByLabel("Keep at most (facts)").fill("0");
await page.getByRole("button", { name: "Save config" }).click();
await page.locator(".field-error:not([hidden])").filter({ hasText: "config.max_facts" }).waitFor();
await page.getByLabel("Keep at most (facts)").fill("500");
await page.getByLabel("Context placement").selectOption("before_last_user");
await page.getByLabel("E-mail addresses").selectOption("on");
await page.getByRole("button", { name: "Save config" }).click();
await page.getByText(`Saved the config of ${SESSION}.`).waitFor();
await page.reload();
await page.getByRole("heading", { level: 1, name: SESSION }).waitFor();
assert.equal(await page.getByLabel("Keep at most (facts)").inputValue(), "500");
assert.equal(await page.getByLabel("Context placement").inputValue(), "before_last_user");
assert.equal(await page.getByLabel("E-mail addresses").inputValue(), "on");
assert.equal(await page.getByLabel("Secrets", { exact: true }).inputValue(), "");
await checkPage("config");
await shoot("session-config");

// ── A cognee session, made in the form (its engine has no TTL or cap to offer), and its graph.
await visit("#/sessions", "Sessions");
await page.getByLabel("Engine").selectOption("cognee");
assert.equal(await page.getByLabel("Keep at most (facts)").isVisible(), false, "cognee keeps no cap");
await page.getByLabel("Name (its memory_id)").fill(GRAPH_SESSION);
await page.getByRole("button", { name: "Create session" }).click();
await page.getByRole("heading", { level: 1, name: GRAPH_SESSION }).waitFor();
await chat(GRAPH_SESSION, "Alice works with Bob. Bob lives in Berlin. Alice manages Project Phoenix.");
await sessionTab(GRAPH_SESSION, "graph");
await eventually(page.locator("svg.graph .node"), "the graph");
await eventually(page.locator("svg.graph .edge"), "three relationships");
assert.ok((await page.locator("svg.graph .node").count()) >= 4, "Alice, Bob, Berlin and Project Phoenix");
await page.getByRole("cell", { name: "lives_in" }).waitFor();
await checkPage("graph");
await shoot("session-graph");
await sessionTab(GRAPH_SESSION, "history");
assert.equal(await page.locator("ol.timeline li.add").count(), 3, "each relationship's ADD");
await sessionTab(GRAPH_SESSION, "search");
await page.getByLabel("Search type").selectOption("GRAPH_COMPLETION");
await search("Where does Bob live?");
assert.equal(await page.getByTestId("answered-by").textContent(), "graph");
await page.locator("ol.hits .triplet").filter({ hasText: "Bob → lives_in → Berlin" }).first().waitFor();
await page.locator("blockquote.answer").waitFor();

// ── Internal / Platform: the internal calls of all this, by day and kind, session and model.
await page.getByRole("link", { name: "Internal / Platform" }).click();
await page.getByRole("heading", { level: 1, name: "Internal / Platform" }).waitFor();
await page.locator("svg.chart rect").first().waitFor();
assert.ok(Number((await page.getByTestId("total-calls").textContent()).replace(/\D/g, "")) > 0, "internal calls counted");
await page.getByRole("table", { name: "Tokens by memory session" }).getByRole("cell", { name: SESSION }).waitFor();
for (const kind of ["extraction", "fact_embedding"]) {
  await page.getByRole("table", { name: "Tokens by kind of call" }).getByRole("cell", { name: kind, exact: true }).waitFor();
}
await checkPage("usage");
await shoot("usage");
// A range the API refuses is shown at the field it names.
await page.getByLabel("From (UTC)").fill("2026-12-31");
await page.getByLabel("To (UTC, included)").fill("2026-01-01");
await page.getByRole("button", { name: "Show" }).click();
await page.locator(".field-error:not([hidden])").filter({ hasText: "must be in order" }).waitFor();
assert.equal(await page.getByLabel("From (UTC)").getAttribute("aria-invalid"), "true");

// ── Operations: the dead letter tests/console.rs made goes back to the queue and is ingested.
await page.getByRole("link", { name: "Operations" }).click();
await page.getByRole("heading", { level: 1, name: "Operations" }).waitFor();
assert.equal(await page.getByTestId("dead").textContent(), "1");
await checkPage("operations");
await shoot("operations");
await page.getByRole("button", { name: /^Retry turn / }).click();
await page.getByText("No dead letters").waitFor();
assert.equal((await page.getByRole("link", { name: "/metrics" }).getAttribute("href")), "/metrics");

// ── Keyboard: from the top of the sessions page, Tab reaches the navigation, the sessions and
// the form, and Enter on a session link opens it.
await visit("#/sessions", "Sessions");
await page.locator("body").focus();
const reached = [];
for (let i = 0; i < 60; i++) {
  await page.keyboard.press("Tab");
  reached.push(await page.evaluate(() => document.activeElement?.getAttribute("aria-label") || document.activeElement?.textContent?.trim() || ""));
}
for (const stop of ["Skip to content", "Sessions", "Operations", "Sign out", SESSION, `Delete session ${SESSION}`, "Create session"]) {
  assert.ok(reached.includes(stop), `Tab never reaches "${stop}": ${JSON.stringify(reached)}`);
}
await page.getByRole("link", { name: SESSION, exact: true }).focus();
await page.keyboard.press("Enter");
await page.getByRole("heading", { level: 1, name: SESSION }).waitFor();
await shoot("sessions-after-keyboard");

// ── Every page once more at phone size.
await page.setViewportSize(NARROW);
size = "390x844";
await visit("#/sessions", "Sessions");
await checkPage("sessions");
await shoot("sessions");
for (const tab of ["config", "facts", "history"]) {
  await sessionTab(SESSION, tab);
  await checkPage(tab);
  await shoot(`session-${tab}`);
}
await sessionTab(SESSION, "search");
await search("What length of summaries do I prefer?");
await checkPage("search");
await shoot("session-search");
await sessionTab(GRAPH_SESSION, "graph");
await checkPage("graph");
await shoot("session-graph");
await visit("#/usage", "Internal / Platform");
await page.locator("svg.chart rect").first().waitFor();
// Laid out as cards, the tables are still tables to assistive technology.
await page.getByRole("table", { name: "Tokens by memory session" }).getByRole("cell", { name: SESSION }).waitFor();
await checkPage("usage");
await shoot("usage");
await visit("#/operations", "Operations");
await checkPage("operations");
await shoot("operations");
await signOut();
await checkPage("signin");
await shoot("signin");
await page.setViewportSize(WIDE);
size = "1280x800";

// ── In the system's dark scheme the pages pass the same checks (contrast among them).
await page.emulateMedia({ colorScheme: "dark" });
await signIn(KEYS.admin);
await settled();
await checkPage("sessions (dark)");
await shoot("dark-sessions");
await sessionTab(SESSION, "history");
await checkPage("history (dark)");
await visit("#/usage", "Internal / Platform");
await page.locator("svg.chart rect").first().waitFor();
await checkPage("usage (dark)");
await shoot("dark-usage");
await signOut();
await page.emulateMedia({ colorScheme: "light" });

// ── Deleting a session names what goes.
await signIn(KEYS.admin);
await settled();
await shoot("sessions");
await page.getByRole("button", { name: `Delete session ${GRAPH_SESSION}` }).click();
const sessionDialog = page.getByRole("dialog", { name: `Delete session “${GRAPH_SESSION}”?` });
await sessionDialog.getByText(/3 relationships.*graph, chunks and summaries/).waitFor();
await sessionDialog.getByRole("button", { name: "Delete session" }).click();
await page.getByRole("link", { name: GRAPH_SESSION }).waitFor({ state: "detached" });
await signOut();

// ── A member key: sees the org's sessions and facts, can change nothing.
await signIn(KEYS.member);
assert.match(await page.locator("#who").textContent(), /acme · member/);
await page.getByRole("link", { name: SESSION, exact: true }).waitFor();
assert.equal(await page.getByRole("button", { name: /^Delete/ }).count(), 0, "a member sees no delete");
assert.equal(await page.getByRole("button", { name: "Create session" }).count(), 0, "a member cannot create");
await sessionTab(SESSION, "facts");
await page.getByRole("cell", { name: "I prefer summaries under 200 words", exact: true }).waitFor();
assert.equal(await page.getByRole("button", { name: /^Delete/ }).count(), 0, "a member cannot delete a fact");
await sessionTab(SESSION, "config");
assert.equal(await page.getByLabel("Keep at most (facts)").isDisabled(), true, "a member cannot change the config");
assert.equal(await page.getByRole("button", { name: "Save config" }).count(), 0);
// The API refuses the member too, whatever a page might send.
const refused = await page.evaluate(async ([memoryId]) => {
  const { key } = JSON.parse(sessionStorage.getItem("memgate.console.credentials"));
  const response = await fetch(`/memory/session/${memoryId}`, { method: "DELETE", headers: { Authorization: `Bearer ${key}` } });
  return response.status;
}, [SESSION]);
assert.equal(refused, 403);
await visit("#/usage", "Internal / Platform");
await page.getByText("Platform spend is shown to admin keys only.").waitFor();
await visit("#/operations", "Operations");
await page.getByText("The queue is shown to admin keys only.").waitFor();
await signOut();

// ── Another org's admin: none of acme's sessions, not even by their name.
await signIn(KEYS.other);
assert.match(await page.locator("#who").textContent(), /globex · admin/);
await page.getByText("No sessions yet.").waitFor();
assert.equal(await page.getByRole("link", { name: SESSION }).count(), 0);
await visit(`#/sessions/${SESSION}/facts`, "No such session");
assert.equal(await page.getByText("I prefer summaries under 200 words").count(), 0);
await visit("#/usage", "Internal / Platform");
assert.equal(await page.getByText("No internal calls in this range.").count(), 1, "globex has spent nothing");
await signOut();

checkNoProblems();
await browser.close();
console.log(JSON.stringify({ done: true }));
