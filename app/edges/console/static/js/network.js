// The network and its stock; for admins, webhook health and dead deliveries.

import { get, post } from "./api.js";
import { ROLE, $, h, fill, table, badge, notify, guarded } from "./page.js";
import { networkMap, mapLegend } from "./map.js";

const network = async () => {
  const { nodes } = await get("/nodes");
  const show = async () => {
    const sku = $("#stock-sku").value.trim();
    const stock = sku ? await guarded("#notice", () => get(`/inventory/${encodeURIComponent(sku)}`)) : null;
    const bySku = Object.fromEntries(((stock && stock.nodes) || []).map((s) => [s.node_id, s]));
    const placed = nodes.map((n) => ({ ...n, stock: bySku[n.node_id] ? bySku[n.node_id].atp : null }));
    const marks = Object.fromEntries(placed.filter((n) => n.stock > 0).map((n) => [n.node_id, "candidate"]));
    fill("#network-map", networkMap(placed, { marks, label: `Nodes, with the ATP of ${sku}` }),
      h("figcaption", {}, `Nodes by type; larger marks hold stock of ${sku} to promise (the figure beside each).`));
    fill("#legend", mapLegend());
    fill("#nodes", table(
      [
        ["Node", (n) => h("span", {}, h("strong", {}, n.node_id), " ", n.name)],
        ["Type", (n) => n.type],
        ["Active", (n) => (n.active ? "yes" : badge("inactive", "bad"))],
        ["On hand", (n) => (bySku[n.node_id] ? bySku[n.node_id].on_hand : "–"), { number: true }],
        ["ATP", (n) => (bySku[n.node_id] ? bySku[n.node_id].atp : "–"), { number: true }],
        ["In transit", (n) => (bySku[n.node_id] ? bySku[n.node_id].in_transit.reduce((t, i) => t + (i.qty || 0), 0) : "–"), { number: true }],
        ["Feed age", (n) => (bySku[n.node_id] && bySku[n.node_id].feed_age_seconds != null ? age(bySku[n.node_id].feed_age_seconds) : "–")],
        ...(ROLE === "admin" ? [["Webhook", (n) => webhookHealth(n)]] : []),
      ],
      placed,
      "Nodes"
    ));
  };
  $("#stock-form").addEventListener("submit", (event) => { event.preventDefault(); show(); });
  const skus = await get("/skus?limit=100");
  fill("#sku-options", skus.skus.map((s) => h("option", { value: s.sku }, s.name)));
  await show();
  if (ROLE === "admin") {
    $("#deliveries-section").hidden = false;
    fill("#dead-node", h("option", { value: "" }, "every node"), nodes.map((n) => h("option", { value: n.node_id }, n.node_id)));
    $("#dead-node").addEventListener("change", deadDeliveries);
    await deadDeliveries();
  }
};

export const age = (seconds) => (seconds < 120 ? `${Math.round(seconds)} s` : seconds < 7200 ? `${Math.round(seconds / 60)} min` : seconds < 172800 ? `${Math.round(seconds / 3600)} h` : `${Math.round(seconds / 86400)} days`);

export function webhookHealth(node) {
  const hook = node.webhook;
  if (!hook) return node.transport ? "broker" : "none";
  const state = hook.disabled_at ? badge("disabled") : hook.failures ? badge(`failing (${hook.failures})`, "warn") : badge("healthy", "good");
  const recover = hook.disabled_at || hook.failures
    ? h("button", { type: "button", class: "quiet", "data-recover": node.node_id, onclick: () => recoverNode(node.node_id) }, "Recover")
    : null;
  return h("span", { class: "actions" }, state, recover);
}

export async function recoverNode(nodeId) {
  const since = new Date(Date.now() - 7 * 86400 * 1000).toISOString();
  const done = await guarded("#notice", () => post(`/nodes/${nodeId}/deliveries/recover?since=${encodeURIComponent(since)}`));
  if (done) {
    notify(`Recovering ${nodeId}: ${done.requeued} dead messages of the last 7 days queued again; its endpoint is enabled.`);
    deadDeliveries();
  }
}

export async function deadDeliveries() {
  const node = $("#dead-node").value;
  const dead = await get(`/deliveries?status=dead&limit=50${node ? `&node_id=${encodeURIComponent(node)}` : ""}`);
  fill("#deliveries", table(
    [
      ["Message", (d) => h("code", {}, d.message_id)],
      ["Node", (d) => d.node_id],
      ["Event", (d) => d.event_type],
      ["Attempts", (d) => d.attempts, { number: true }],
      ["Last error", (d) => d.last_error || ""],
      ["Action", (d) => h("button", { type: "button", class: "quiet", "data-retry": d.message_id, onclick: () => retry(d.message_id) }, "Retry now")],
    ],
    dead.deliveries,
    "Dead deliveries",
    "No dead deliveries: every message to the nodes was delivered or is still being tried."
  ), dead.deliveries.length === 50 ? h("p", { class: "hint" }, "The 50 newest; choose a node to see its own.") : null);
}

export async function retry(messageId) {
  const done = await guarded("#notice", () => post(`/deliveries/${messageId}/retry`));
  if (!done) return;
  notify(`Message ${messageId}: ${done.status}.`, done.status !== "dead");
  deadDeliveries();
}

export const pages = { network };
