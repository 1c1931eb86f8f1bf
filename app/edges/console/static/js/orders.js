// Orders and decisions: search, an order's story, a decision explained, why not a node.

import { get, post } from "./api.js";
import { ARGS, QUERY, AUTHOR, ROLE, $, h, fill, table, badge, link, when, guarded } from "./page.js";
import { explain } from "./explain.js";

// A searchable list: the form's fields are the API's filters; "More" follows next_cursor.
export function searchable(form, more, target, path, key, columns, caption, empty) {
  let cursor = null;
  const rows = [];
  const load = async (next) => {
    const params = new URLSearchParams();
    for (const element of form.elements) if (element.name && element.value) params.set(element.name, element.value);
    params.set("limit", "50");
    if (next && cursor) params.set("cursor", cursor);
    const page = await guarded("#notice", () => get(`${path}?${params}`));
    if (!page) return;
    if (!next) rows.length = 0;
    rows.push(...page[key]);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    fill(target, table(columns, rows, caption, empty));
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); load(false); });
  more.addEventListener("click", () => load(true));
  return load(false);
}

const decisions = async () => {
  const orders = searchable($("#order-filters"), $("#more-orders"), "#orders", "/orders", "orders",
    [
      ["Order", (o) => link(`/console/orders/${encodeURIComponent(o.order_id)}`, o.order_id)],
      ["Status", (o) => badge(o.status)],
      ["Channel", (o) => o.channel],
      ["Received", (o) => when(o.created_at)],
      ["Updated", (o) => when(o.updated_at)],
    ], "Orders",
    "No orders match. Channels place them with POST /v1/orders (the README's \u201cTry it\u201d has one); `dom demo load` on a new database adds a few days of them.");
  if (!AUTHOR) return orders;
  const form = $("#decision-filters");
  for (const [name, value] of QUERY) if (form.elements[name]) form.elements[name].value = value;
  return Promise.all([orders, searchable(form, $("#more"), "#decisions", "/decisions", "decisions",
    [
      ["Decision", (d) => (d.kind === "simulation" ? d.decision_id : link(`/console/decisions/${d.decision_id}`, d.decision_id))],
      ["Order", (d) => (d.kind === "order" ? link(`/console/orders/${encodeURIComponent(d.order_id)}`, d.order_id) : d.order_id)],
      ["Kind", (d) => d.kind],
      ["Status", (d) => badge(d.status)],
      ["Ruleset", (d) => `${d.ruleset} v${d.ruleset_version}`],
      ["Experiment", (d) => (d.experiment_id ? `${d.experiment_id} (${d.variant})` : "")],
      ["Decided", (d) => when(d.created_at)],
    ], "Decisions",
    "No decisions match. Every order, return, replenishment run and simulation leaves one; try a wider filter.")]);
};

export function showOrder(order) {
  fill("#order",
    h("p", {}, badge(order.status), ` ${order.channel} order, ${order.delivery.method}`, order.customer_id ? ` for customer ${order.customer_id}` : "",
      ` · ${order.lines.map((l) => `${l.qty} × ${l.sku}`).join(", ")}`),
    h("h3", {}, "Timeline"),
    h("ol", { class: "timeline" }, order.timeline.map((t) => h("li", {}, when(t.at), " · ", t.type.replace(/_/g, " "), t.to ? ` → ${t.to}` : "", t.node_id ? ` (${t.node_id})` : ""))),
    h("h3", {}, "Shipments"),
    table(
      [
        ["Shipment", (s) => s.shipment_id],
        ["Node", (s) => s.node_id],
        ["Status", (s) => badge(s.status)],
        ["Lines", (s) => s.lines.map((l) => `${l.qty} × ${l.sku}`).join("; ")],
        ["Carrier", (s) => s.carrier || ""],
        ["Tracking", (s) => s.tracking_number || ""],
        ["Promised", (s) => s.promised_date || ""],
      ],
      order.shipments,
      "Shipments"
    ),
    h("h3", {}, "Decisions"),
    table([["Decision", (d) => link(`/console/decisions/${d.decision_id}`, d.decision_id)], ["Kind", (d) => d.kind], ["Status", (d) => badge(d.status)], ["Ruleset", (d) => `${d.ruleset} v${d.ruleset_version}`], ["Decided", (d) => when(d.created_at)]], order.decisions, "Decisions of the order"));
}

export async function showDecision(id) {
  const [decision, nodes] = await Promise.all([get(`/decisions/${id}`), get("/nodes")]);
  fill("#decision-head", h("p", {}, `Decision ${decision.decision_id} of order ${decision.order_id} · ${decision.ruleset.name} version ${decision.ruleset.version} · decided ${when(decision.decided_at)}`,
    decision.experiment ? ` · experiment ${decision.experiment.experiment_id || ""} (${decision.experiment.variant || ""})` : ""));
  fill("#explanation", explain(decision, nodes.nodes, null));
  fill("#why-not-node", nodes.nodes.map((n) => h("option", { value: n.node_id }, `${n.node_id} · ${n.name}`)));
  $("#why-not").addEventListener("submit", async (event) => {
    event.preventDefault();
    const node = $("#why-not-node").value;
    const answer = await guarded("#why-not-answer", () => get(`/decisions/${id}/why-not/${node}`));
    if (!answer) return;
    fill("#why-not-answer", h("div", { class: `notice ${answer.chosen ? "good" : "bad"}`, id: "why-not-result" },
      answer.chosen ? `${node} was chosen.` : `${node} was not chosen:`,
      h("ul", {}, (answer.lines || []).map((l) => h("li", {}, `line ${l.line_id}: `, l.reason || l.outcome)))));
  });
  const form = $("#decision-scenario");
  if (form) {
    $("#decision-scenario-id").value = `from-${decision.decision_id}`;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { scenario_id: $("#decision-scenario-id").value };
      if ($("#decision-scenario-title").value) body.scenario = $("#decision-scenario-title").value;
      const stored = await guarded("#decision-scenario-result", () => post(`/decisions/${id}/scenario`, body));
      if (stored) fill("#decision-scenario-result", h("div", { class: "notice good" },
        `Scenario ${body.scenario_id} is in the draft set of ${decision.ruleset.name}. `,
        link(`/console/rulesets/${decision.ruleset.name}`, "See the ruleset's scenarios")));
    });
  }
  return decision;
}

const decision = async () => {
  const decision = await showDecision(ARGS.decision_id);
  const order = await get(`/orders/${encodeURIComponent(decision.order_id)}`).catch(() => null);
  if (order) showOrder(order);
  else fill("#order", h("p", {}, "This decision's order is not stored (a replayed or simulated decision)."));
};

// A held order: why, and (for the admin and its channel) release or cancel it, or take up
// the offer of another pickup store.
function showHold(order) {
  if (order.status !== "on_hold") return fill("#hold");
  const held = [...order.timeline].reverse().find((t) => t.type === "status_changed" && t.to === "on_hold") || {};
  const offer = held.offer;
  const act = async (path, body, done) => {
    const answer = await guarded("#hold-result", () => post(`/orders/${ARGS.order_id}/${path}`, body));
    if (!answer) return;
    showOrder(answer);
    if (answer.status === "on_hold") return showHold(answer);
    fill("#hold", h("div", { class: "notice good", id: "hold-done", role: "status" }, `${done}: the order is now ${answer.status.replace(/_/g, " ")}.`));
  };
  const note = h("input", { id: "release-note", maxlength: "500" });
  const body = () => (note.value ? { note: note.value } : {});
  const actions = ROLE === "admin" || ROLE === "channel"
    ? h("form", { class: "inline", id: "hold-actions", onsubmit: (e) => { e.preventDefault(); act("release", body(), "Released"); } },
        h("label", { for: "release-note" }, "Note"), " ", note, " ",
        offer ? h("button", { type: "button", id: "take-offer", onclick: () => act("release", { ...body(), pickup_node_id: offer.pickup_node_id }, `Collected at ${offer.pickup_node_id}`) }, `Collect at ${offer.pickup_node_id}`) : null, " ",
        h("button", { type: "submit", id: "release" }, offer ? "Release as it is" : "Release"), " ",
        h("button", { type: "button", class: "secondary", id: "cancel-order", onclick: () => act("cancel", {}, "Cancelled") }, "Cancel the order"))
    : h("p", { class: "hint" }, "An admin or the order's channel can release or cancel it.");
  fill("#hold", h("section", { class: "notice bad", "aria-labelledby": "hold-heading" },
    h("h2", { id: "hold-heading" }, "On hold"),
    h("p", { id: "hold-reason" }, held.reason || "Held by the rules."),
    offer ? h("p", {}, `Offered: collect at ${offer.pickup_node_id} instead.`) : null,
    actions,
    h("div", { id: "hold-result", "aria-live": "polite" })));
}

const order = async () => {
  const order = await get(`/orders/${ARGS.order_id}`);
  showOrder(order);
  showHold(order);
  const latest = order.decisions[order.decisions.length - 1];
  if (latest) await showDecision(latest.decision_id);
  else fill("#explanation", h("p", {}, "The order has no decision yet."));
};

const REASON_WORDS = {
  on_hold: "On hold", pickup_offer: "Pickup offered elsewhere", awaiting_supply: "Awaiting supply",
  no_supply: "No supply in sight", awaiting_acceptance: "Awaiting acceptance",
  awaiting_dispatch: "Awaiting dispatch", at_risk: "At risk", in_delivery: "In delivery",
};

// Every open order: counts by reason, then each with its next action, oldest first.
const open_orders = async () => {
  const form = $("#open-filters");
  const load = async () => {
    const reason = form.elements.reason.value;
    const report = await guarded("#notice", () => get(`/reports/open-orders${reason ? `?reason=${reason}` : ""}`));
    if (!report) return;
    fill("#open-reasons", table(
      [["Reason", (r) => REASON_WORDS[r.reason] || r.reason], ["Orders", (r) => r.orders, { number: true }], ["Oldest (hours)", (r) => r.oldest_hours, { number: true }]],
      report.by_reason, "Open orders by reason", "No open orders: every order is finished."));
    fill("#open-orders", table(
      [
        ["Order", (o) => link(`/console/orders/${encodeURIComponent(o.order_id)}`, o.order_id)],
        ["Status", (o) => badge(o.status)],
        ["Why", (o) => h("span", {}, h("strong", {}, REASON_WORDS[o.reason] || o.reason), ": ", o.message)],
        ["Next", (o) => o.next_action],
        ["By", (o) => (o.deadline ? when(o.deadline) : "")],
        ["Age (hours)", (o) => o.age_hours, { number: true }],
        ["Asked", (o) => (o.escalated_at ? when(o.escalated_at) : "")],
      ],
      report.orders, "Open orders", "No open orders for this reason."));
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  return load();
};

export const pages = { decisions, decision, order, open_orders };
