// A decision explained: shipments, rules, exclusions, scores and the map.

import { h, table, badge, number } from "./page.js";
import { networkMap, mapLegend } from "./map.js";

// A decision explained: shipments, unfulfilled lines, rules in the order they fired,
// excluded candidates, scores, and the map of candidates and chosen nodes.
export function explain(decision, nodes, destination) {
  const e = decision.explanation || {};
  const marks = {};
  for (const c of e.considered || []) marks[c.node_id] = "candidate";
  for (const x of e.excluded || []) marks[x.node_id] = marks[x.node_id] || "excluded";
  for (const s of decision.shipments || []) marks[s.node_id] = "chosen";
  const fired = [];
  for (const step of e.trace || []) if (!fired.includes(step.rule)) fired.push(step.rule);
  return h(
    "div",
    { class: "decision" },
    h("p", {}, "Status ", badge(decision.status), decision.objective != null ? ` · objective ${number(decision.objective, 3)}` : ""),
    h("div", { class: "split" },
      h("figure", { class: "map", id: "decision-map" },
        networkMap(nodes, { marks, destination, label: "Candidate and chosen nodes" }),
        h("figcaption", {}, "Chosen nodes are large with a dark ring; candidates medium; excluded ones faded and struck; the square is the delivery address.")),
      mapLegend(["Large, dark ring: chosen", "Medium: a candidate", "Struck through: excluded by a rule", "Yellow square: the delivery address"])),
    h("h3", {}, "Shipments"),
    table(
      [
        ["Node", (s) => h("strong", {}, s.node_id)],
        ["Type", (s) => s.node_type || ""],
        ["Lines", (s) => s.lines.map((l) => `${l.line_id}: ${l.qty} × ${l.sku}`).join("; ")],
        ["Service", (s) => s.service_level || ""],
        ["Carrier", (s) => s.carrier || ""],
        ["Cost", (s) => number(s.estimated_cost), { number: true }],
        ["Distance (km)", (s) => number(s.distance_km, 1), { number: true }],
        ["Promised", (s) => s.promised_date || ""],
        ["Status", (s) => (s.status ? badge(s.status) : "")],
      ],
      decision.shipments || [],
      "Shipments"
    ),
    (decision.unfulfilled || []).length
      ? [h("h3", {}, "Unfulfilled lines"), table([["Line", (u) => u.line_id], ["SKU", (u) => u.sku || ""], ["Quantity", (u) => u.qty, { number: true }], ["Why", (u) => u.reason || ""]], decision.unfulfilled, "Unfulfilled")]
      : null,
    h("h3", {}, "Rules that fired, in order"),
    h("ol", { class: "fired" }, fired.map((rule) => h("li", {}, h("code", {}, rule)))),
    h("h3", {}, "Excluded candidates"),
    table([["Line", (x) => x.line_id], ["Node", (x) => x.node_id], ["Excluded by", (x) => x.by.map((b) => `${b.rule}: ${b.reason}`).join("; ")]], e.excluded || [], "Excluded"),
    (e.screened || []).length
      ? [h("h3", {}, "Screened out before the rules"), table([["Line", (s) => s.line_id], ["Why", (s) => s.reason], ["Nodes", (s) => s.node_ids.join(", ")]], e.screened, "Screened")]
      : null,
    h("h3", {}, "Score breakdown"),
    table(
      [
        ["Line", (c) => c.line_id],
        ["Node", (c) => (marks[c.node_id] === "chosen" ? h("strong", {}, c.node_id, " (chosen)") : c.node_id)],
        ["Shipping cost", (c) => number(c.shipping_cost), { number: true }],
        ["Distance (km)", (c) => number(c.distance_km, 1), { number: true }],
        ["Rule score", (c) => number(c.rule_score), { number: true }],
        ["From rules", (c) => (c.scores || []).map((s) => `${s.add > 0 ? "+" : ""}${s.add} ${s.rule}`).join(", ")],
        ["Objective (lower wins)", (c) => number(c.objective, 4), { number: true }],
      ],
      e.considered || [],
      "Scores"
    )
  );
}
