// Simulate an order under the active version, a stored one or the draft in the editor.

import { get, post } from "./api.js";
import { QUERY, AUTHOR, $, h, fill, link, notify, guarded } from "./page.js";
import { versionsOf, versionOptions } from "./versions.js";
import { explain } from "./explain.js";

const simulate = async () => {
  const rulesetName = QUERY.get("ruleset") || "sourcing";
  const [nodes, ruleset] = await Promise.all([get("/nodes"), AUTHOR ? versionsOf("sourcing") : null]);
  const stores = nodes.nodes.filter((n) => n.type === "store");
  fill("#store", stores.map((n) => h("option", { value: n.node_id }, `${n.node_id} · ${n.name}`)));
  const draft = sessionStorage.getItem(`dom.draft.${rulesetName}`);
  const under = [["", "the active version"]];
  if (draft && AUTHOR) under.push(["draft", "the draft in the editor"]);
  if (AUTHOR) versionOptions($("#under"), ruleset.versions, "", under);
  else fill("#under", h("option", { value: "" }, "the active version"));
  if (draft && AUTHOR) {
    const base = sessionStorage.getItem(`dom.draft.${rulesetName}.base`) || "";
    $("#under").after(" ", link(`/console/rulesets/${rulesetName}/edit?resume=1&from=${base}`, "Back to the draft in the editor"));
  }
  if (QUERY.get("draft") === "1" && draft) $("#under").value = "draft";
  else if (QUERY.get("version")) $("#under").value = QUERY.get("version");

  const recent = await get("/orders?limit=50");
  fill("#past-orders", recent.orders.map((o) => h("option", { value: o.order_id })));
  const customers = [...new Set(recent.orders.map((o) => o.customer_id))];
  fill("#customers", customers.map((c) => h("option", { value: c })));
  if (customers.length) $("#customer").value = customers[0];
  const lines = $("#lines");
  let lineCount = 0;
  const addLine = (sku = "", qty = 1, price = 20) => {
    lineCount += 1;
    const n = lineCount;
    lines.append(h("tr", {},
      h("td", {}, h("label", { for: `sku-${n}`, class: "visually-hidden" }, `SKU of line ${n}`),
        h("input", { id: `sku-${n}`, class: "sku", list: "sku-options", value: sku, required: true, oninput: (event) => suggestSkus(event.target.value) })),
      h("td", {}, h("label", { for: `qty-${n}`, class: "visually-hidden" }, `Quantity of line ${n}`), h("input", { id: `qty-${n}`, class: "qty", type: "number", min: 1, value: qty, size: 4 })),
      h("td", {}, h("label", { for: `price-${n}`, class: "visually-hidden" }, `Unit price of line ${n}`), h("input", { id: `price-${n}`, class: "price", type: "number", min: 0, step: "0.01", value: price, size: 6 })),
      h("td", {}, h("button", { type: "button", class: "secondary quiet", "aria-label": `Remove line ${n}`, onclick: (event) => event.target.closest("tr").remove() }, "✕"))));
  };
  let lastQuery = null;
  async function suggestSkus(text) {
    if (text === lastQuery) return;
    lastQuery = text;
    const found = await get(`/skus?limit=20&q=${encodeURIComponent(text)}`);
    fill("#sku-options", found.skus.map((s) => h("option", { value: s.sku }, `${s.name} (${s.category}${s.hazmat ? ", hazardous" : ""})`)));
  }
  suggestSkus("");
  $("#add-line").addEventListener("click", () => addLine());
  const showFields = () => {
    const method = $("#method").value;
    $("#address-fields").hidden = method === "pickup" || method === "ship_to_store";
    $("#store-fields").hidden = !$("#address-fields").hidden;
  };
  $("#method").addEventListener("change", showFields);
  addLine("SKU-0001", 1, 20);

  $("#load-past").addEventListener("click", async () => {
    const order = await guarded("#simulation", () => get(`/orders/${encodeURIComponent($("#pick-past").value)}`));
    if (!order) return;
    $("#customer").value = order.customer_id;
    $("#channel").value = order.channel;
    $("#method").value = order.delivery.method;
    if (order.delivery.node_id) $("#store").value = order.delivery.node_id;
    if (order.delivery.address) {
      const a = order.delivery.address;
      $("#address-line").value = (a.lines || []).join(", ");
      $("#address-city").value = a.city || "";
      $("#address-postcode").value = a.postcode || "";
      if (a.lat != null) { $("#address-lat").value = a.lat; $("#address-lon").value = a.lon; }
    }
    showFields();
    lines.replaceChildren();
    order.lines.forEach((l) => addLine(l.sku, l.qty, l.unit_price));
    notify(`Loaded order ${order.order_id}.`);
  });

  $("#order-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const method = $("#method").value;
    const body = {
      order_id: `SIM-${Date.now()}`,
      channel: $("#channel").value,
      customer_id: $("#customer").value.trim(),
      delivery: { method },
      lines: [...lines.querySelectorAll("tr")].map((row, i) => ({
        line_id: String(i + 1),
        sku: row.querySelector(".sku").value.trim(),
        qty: Number(row.querySelector(".qty").value),
        unit_price: Number(row.querySelector(".price").value),
      })),
    };
    if ($("#service").value) body.requested_service = $("#service").value;
    if (method === "pickup" || method === "ship_to_store") body.delivery.node_id = $("#store").value;
    else body.delivery.address = {
      lines: [$("#address-line").value], city: $("#address-city").value, postcode: $("#address-postcode").value,
      country: "GB", lat: Number($("#address-lat").value), lon: Number($("#address-lon").value),
    };
    const choice = $("#under").value;
    if (choice === "draft") body.draft_ruleset = JSON.parse(sessionStorage.getItem(`dom.draft.${rulesetName}`));
    else if (choice) body.ruleset_version = Number(choice);
    fill("#simulation", "Deciding…");
    const decision = await guarded("#simulation", () => post("/decisions/simulate", body));
    if (!decision) return;
    const destination = body.delivery.address
      ? { lat: body.delivery.address.lat, lon: body.delivery.address.lon, label: "Delivery address" }
      : null;
    fill("#simulation", h("h2", {}, `Decided under ${choice === "draft" ? "the draft" : `version ${decision.ruleset.version}`}`), explain(decision, nodes.nodes, destination));
  });
};

export const pages = { simulate };
