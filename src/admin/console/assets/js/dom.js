// Building the page. Every piece of data goes in as text (textContent, setAttribute), never as
// markup, so nothing a session stores can run in the console.

const SVG = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: `h("button", {type: "button", onclick}, "Save")`. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, as `h`. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

/** Replaces what `parent` holds. */
export function replace(parent, ...children) {
  parent.replaceChildren();
  return build(parent, {}, children);
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "medium",
  timeZone: "UTC",
});

/** A timestamp of the API (RFC 3339) as a `<time>` shown in UTC. */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "never");
  const date = new Date(iso);
  return h("time", { datetime: iso, title: iso }, `${dateTime.format(date)} UTC`);
}

const integer = new Intl.NumberFormat();

export function count(n) {
  return integer.format(n);
}

/** Says something to screen readers and sighted users alike, for a few seconds. */
export function announce(message, kind = "info") {
  const status = document.getElementById("status");
  replace(status, h("p", { class: `toast ${kind}` }, message));
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => status.replaceChildren(), 6000);
}

/** An error of the API, shown where the page asked for it. */
export function problem(error) {
  return h("p", { class: "error", role: "alert" }, error.message);
}

/**
 * A table that becomes a list of labelled cards on narrow screens. `columns` are
 * `{label, cell: row => node, numeric?}`.
 */
export function table(caption, columns, rows, empty) {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  // The roles are spelled out: on a phone the cells are laid out as blocks, which would
  // otherwise take the table's meaning away from screen readers.
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "cards", role: "table" },
      h("caption", { class: "visually-hidden" }, caption),
      h(
        "thead",
        { role: "rowgroup" },
        h("tr", { role: "row" }, columns.map((c) => h("th", { scope: "col", role: "columnheader", class: c.numeric ? "num" : null }, c.label))),
      ),
      h(
        "tbody",
        { role: "rowgroup" },
        rows.map((row) =>
          h(
            "tr",
            { role: "row" },
            columns.map((c) => h("td", { role: "cell", "data-label": c.label, class: c.numeric ? "num" : null }, c.cell(row))),
          ),
        ),
      ),
    ),
  );
}

/** Previous / next for an API page (`total`, `limit`, `offset`); `go(offset)` turns it. */
export function pager(label, page, go) {
  const { total, limit, offset } = page;
  if (total <= limit) return null;
  const last = Math.min(offset + limit, total);
  return h(
    "nav",
    { class: "pager", "aria-label": label },
    h("button", { type: "button", disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)) }, "Previous"),
    h("span", {}, `${count(offset + 1)}–${count(last)} of ${count(total)}`),
    h("button", { type: "button", disabled: last >= total, onclick: () => go(offset + limit) }, "Next"),
  );
}

/** The offset to show after removing one row of `rows` (a page at `offset` of `limit`): the
 * previous page when it was the last row of a later page. */
export function offsetAfterRemoving(rows, offset, limit) {
  return rows.length === 1 && offset > 0 ? Math.max(0, offset - limit) : offset;
}

/** Headline numbers: `[label, value, testId?]` each. */
export function totals(items) {
  return h(
    "dl",
    { class: "totals" },
    items.map(([label, value, testId]) => h("div", {}, h("dt", {}, label), h("dd", { "data-testid": testId }, value))),
  );
}

/**
 * Asks before something that cannot be undone. Resolves to true when confirmed. The dialog
 * names what goes; Escape or Cancel keeps it.
 */
export function confirmAction({ title, body, action }) {
  return new Promise((resolve) => {
    const close = (value) => () => dialog.close(value);
    const dialog = h(
      "dialog",
      { class: "confirm", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title),
      [body].flat().map((line) => h("p", {}, line)),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "quiet", autofocus: true, onclick: close("cancel") }, "Cancel"),
        h("button", { type: "button", class: "danger", onclick: close("confirm") }, action),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A labelled form control; `errorFor` shows an API error at it (see `showFieldErrors`). */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  const hintNode = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintNode) control.setAttribute("aria-describedby", `${id}-hint`);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintNode, h("p", { class: "field-error", id: `${id}-error`, hidden: true }));
}

/** Puts an API field error (its `param`) next to the control named for it, or above the form. */
export function showFieldErrors(form, error) {
  for (const node of form.querySelectorAll(".field-error")) {
    node.hidden = true;
    node.textContent = "";
  }
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  const general = form.querySelector(".form-error");
  general.replaceChildren();
  if (!error) return;
  const control = error.param ? form.querySelector(`[data-param="${CSS.escape(error.param)}"]`) : null;
  if (control) {
    const slot = document.getElementById(`${control.id}-error`);
    slot.textContent = error.message;
    slot.hidden = false;
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-errormessage", slot.id);
    control.focus();
  } else {
    general.append(problem(error));
  }
}
