// What every page shares: its context (role, path ids, query) and the helpers that build it.

import { ApiError } from "./api.js";

export const BODY = document.body;

export const ROLE = BODY.dataset.role;

// The page's path ids, ready to go into an API path (an id cannot add a query to it).
export const ARGS = Object.fromEntries(
  Object.entries(JSON.parse(BODY.dataset.args || "{}")).map(([k, v]) => [k, encodeURIComponent(v)])
);

export const QUERY = new URLSearchParams(location.search);

export const AUTHOR = ROLE === "admin" || ROLE === "analyst";

export const $ = (selector, root = document) => root.querySelector(selector);

// h("a", {href: "/x", class: "badge"}, "text", child): an element; "on<event>" attributes
// become listeners, null children are skipped.
export function h(tag, attributes = {}, ...children) {
  const svg = ["svg", "circle", "line", "rect", "text", "g", "title", "path", "polygon"].includes(tag);
  const element = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "text") element.textContent = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function fill(target, ...children) {
  const element = typeof target === "string" ? $(target) : target;
  element.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

// A table: columns are [label, row => cell content, {number: true}?]; ``empty`` says, when
// there are no rows, why and how to get some.
export function table(columns, rows, caption, empty = "None.") {
  return h(
    "div",
    // A wide table scrolls sideways in its own box, which the keyboard can reach too.
    { class: "table-wrap", tabindex: "0", role: "group", "aria-label": caption || "Table" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "visually-hidden" }, caption) : null,
      h("thead", {}, h("tr", {}, columns.map(([label, , o]) => h("th", { scope: "col", class: o && o.number ? "number" : null }, label)))),
      h(
        "tbody",
        {},
        rows.length
          ? rows.map((row) => h("tr", {}, columns.map(([, cell, o]) => h("td", { class: o && o.number ? "number" : null }, cell(row)))))
          : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty))
      )
    )
  );
}

export const badge = (text, kind) => h("span", { class: `badge ${kind || String(text).replace(/\s+/g, "_")}` }, text);

export const link = (href, text) => h("a", { href }, text);

export const when = (text) => (text ? new Date(text).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" }) : "");

export const number = (value, digits = 2) =>
  value === null || value === undefined ? "–" : Number(value).toLocaleString("en-GB", { maximumFractionDigits: digits });

export const percent = (value) => (value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`);

// Success or an API error, in the page's notice area (or a given element).
export function notify(message, good = true, target = "#notice") {
  fill(target, h("div", { class: `notice ${good ? "good" : "bad"}` }, message));
}

export function problem(error, target = "#notice") {
  const items = (error.errors || []).map((e) => h("li", {}, e.pointer ? h("code", {}, e.pointer) : null, e.pointer ? " " : null, e.message));
  fill(target, h("div", { class: "notice bad", role: "alert" }, error.message, items.length ? h("ul", {}, items) : null));
}

export async function guarded(target, work) {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    problem(error, target);
    return undefined;
  }
}
