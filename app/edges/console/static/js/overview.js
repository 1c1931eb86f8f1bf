// The overview: what needs attention, by role.

import { get } from "./api.js";
import { ROLE, AUTHOR, $, h, fill, link } from "./page.js";

const home = async () => {
  const cards = $("#overview");
  if (!cards) return;
  const card = (title, figure, text, href, label) =>
    h("section", { class: "card" }, h("h2", {}, title), h("p", { class: "figure" }, figure), h("p", {}, text),
      href ? h("p", {}, link(href, label)) : null);
  const items = [];
  if (AUTHOR) {
    const [rulesets, experiments, replays] = await Promise.all([get("/rulesets"), get("/experiments"), get("/replays?limit=5")]);
    items.push(card("Rulesets", rulesets.rulesets.length, rulesets.rulesets.map((r) => `${r.ruleset} v${r.active_version}`).join(", "), "/console/rulesets", "Open the rulesets"));
    const running = experiments.experiments.filter((e) => e.status === "running");
    items.push(card("Experiments running", running.length, running.map((e) => e.experiment_id).join(", ") || "none", "/console/experiments", "Open the experiments"));
    const [latest] = replays.replays;
    items.push(card("Replays", replays.replays.length >= 5 ? "5+" : replays.replays.length,
      latest ? `latest: ${latest.replay_id}, ${latest.status} (${latest.done} of ${latest.total})` : "none yet", "/console/replays", "Open the replays"));
  }
  const [orders, nodes] = await Promise.all([get("/orders?limit=100"), get("/nodes")]);
  const open = orders.orders.filter((o) => !["completed", "cancelled", "returned", "partially_returned"].includes(o.status));
  items.push(card("Latest orders", orders.orders.length, `of which ${open.length} still open`, "/console/decisions", "Open the orders"));
  const inactive = nodes.nodes.filter((n) => !n.active).length;
  items.push(card("Network", nodes.nodes.length, `nodes, ${inactive} inactive`, "/console/network", "Open the network"));
  if (ROLE === "admin") {
    const dead = await get("/deliveries?status=dead&limit=1000");
    const failing = nodes.nodes.filter((n) => n.webhook && (n.webhook.disabled_at || n.webhook.failures)).length;
    items.push(card("Dead deliveries", dead.count, `${failing} node webhooks failing or disabled`, "/console/network", "Open the deliveries"));
  }
  fill(cards, items);
};

export const pages = { home };
