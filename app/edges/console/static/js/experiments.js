// Experiments and replays: start them, follow them, and read their measures.

import { get, post } from "./api.js";
import { ARGS, $, h, fill, table, badge, link, when, number, percent, notify, problem, guarded } from "./page.js";
import { chooseVersions } from "./versions.js";
import { explain } from "./explain.js";

const experiments = async () => {
  const [list, rulesets] = await Promise.all([get("/experiments"), get("/rulesets")]);
  await chooseVersions(rulesets.rulesets, {
    ruleset: $("#experiment-ruleset"), champion: $("#experiment-champion"), challenger: $("#experiment-challenger"),
  });
  $("#experiment-id").value = `exp-${new Date().toISOString().slice(0, 10)}-${Math.random().toString(36).slice(2, 6)}`;
  fill("#experiments", table(
    [
      ["Experiment", (e) => link(`/console/experiments/${e.experiment_id}`, e.experiment_id)],
      ["Ruleset", (e) => e.ruleset],
      ["Champion", (e) => e.champion, { number: true }],
      ["Challenger", (e) => e.challenger, { number: true }],
      ["Mode", (e) => e.mode],
      ["Status", (e) => badge(e.status)],
      ["Started", (e) => when(e.starts_at)],
    ],
    list.experiments,
    "Experiments",
    "No experiments yet. Start one with the form above: a split sends a share of orders to the challenger, a shadow decides every order under both and keeps the champion's."
  ));
  $("#experiment-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      experiment_id: $("#experiment-id").value,
      ruleset: $("#experiment-ruleset").value,
      champion: Number($("#experiment-champion").value),
      challenger: Number($("#experiment-challenger").value),
      mode: $("#experiment-mode").value,
    };
    if (body.mode === "split") body.challenger_share = Number($("#experiment-share").value);
    const guardrails = {};
    if ($("#guard-fill").value !== "") guardrails.max_fill_rate_drop = Number($("#guard-fill").value);
    if ($("#guard-cost").value !== "") guardrails.max_cost_increase = Number($("#guard-cost").value);
    if (Object.keys(guardrails).length) body.guardrails = { ...guardrails, min_decisions: Number($("#guard-min").value) };
    const started = await guarded("#notice", () => post("/experiments", body));
    if (started) location.href = `/console/experiments/${started.experiment_id}`;
  });
};

// Each measure's challenger-minus-champion difference with its 95% interval, as a chart.
// Measures differ in unit (a share, a cost, kilometres), so each row has its own scale,
// symmetric around zero, and prints its figures.
export function intervalChart(differences) {
  const rows = Object.entries(differences).filter(([, d]) => d.difference !== null && d.ci95);
  const width = 720;
  const rowHeight = 32;
  const labelWidth = 170;
  const figuresWidth = 210;
  const plot = width - labelWidth - figuresWidth - 20;
  const height = rows.length * rowHeight + 40;
  const x0 = labelWidth + plot / 2;
  const svg = h("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "Challenger minus champion per measure, with 95% intervals" });
  svg.append(h("line", { x1: x0, x2: x0, y1: 8, y2: height - 24, stroke: "#4a5360", "stroke-dasharray": "4 3" }));
  svg.append(h("text", { x: x0, y: height - 8, "text-anchor": "middle", "font-size": 12, fill: "#1b1f24" }, "0: no difference"));
  rows.forEach(([measure, d], i) => {
    const y = 24 + i * rowHeight;
    const extent = Math.max(1e-9, Math.abs(d.ci95[0]), Math.abs(d.ci95[1]), Math.abs(d.difference)) * 1.1;
    const x = (value) => x0 + (value / extent) * (plot / 2);
    const colour = d.enough_data ? "#1a5fb4" : "#5e6670";
    svg.append(
      h("g", { class: "measure", "data-measure": measure },
        h("title", {}, `${measure}: ${number(d.difference, 4)} [${number(d.ci95[0], 4)}, ${number(d.ci95[1], 4)}] ${d.verdict || ""}`),
        h("text", { x: 4, y: y + 4, "font-size": 13, fill: "#1b1f24" }, measure),
        h("line", { x1: labelWidth, x2: labelWidth + plot, y1: y, y2: y, stroke: "#e1e6ec" }),
        h("line", { x1: x(d.ci95[0]), x2: x(d.ci95[1]), y1: y, y2: y, stroke: colour, "stroke-width": 5 }),
        h("circle", { cx: x(d.difference), cy: y, r: 6, fill: colour }),
        h("text", { x: labelWidth + plot + 12, y: y + 4, "font-size": 12, fill: "#1b1f24" },
          `${number(d.difference, 3)} [${number(d.ci95[0], 3)}, ${number(d.ci95[1], 3)}]`)));
  });
  return h("figure", { class: "chart", id: "interval-chart" }, svg,
    h("figcaption", {}, "Dots: the challenger minus the champion; bars: their 95% intervals, each measure on its own scale around zero. Grey: not enough data yet."));
}

// The verdict in a sentence: where the challenger is better or worse with 95% confidence.
export function verdict(differences) {
  const by = (word) => Object.entries(differences).filter(([, d]) => d.verdict === word).map(([m]) => m);
  const better = by("better");
  const worse = by("worse");
  const unknown = by("not enough data");
  return h("p", { class: "verdict" }, h("strong", {}, "Verdict: "),
    better.length || worse.length
      ? `the challenger is better on ${better.join(", ") || "nothing"} and worse on ${worse.join(", ") || "nothing"}`
      : "no difference the data can tell yet",
    unknown.length ? `; not enough data on ${unknown.join(", ")}.` : ".");
}

export function measuresTable(report) {
  const differences = report.challenger_minus_champion || {};
  return table(
    [
      ["Measure", ([m]) => m],
      ["Champion", ([m]) => number(report.variants ? report.variants.champion[m] : report.champion[m], 4), { number: true }],
      ["Challenger", ([m]) => number(report.variants ? report.variants.challenger[m] : report.challenger[m], 4), { number: true }],
      ["Difference", ([, d]) => number(d.difference, 4), { number: true }],
      ["95% interval", ([, d]) => (d.ci95 ? `${number(d.ci95[0], 4)} to ${number(d.ci95[1], 4)}` : "–")],
      ["Verdict", ([, d]) => (["better", "worse"].includes(d.verdict) ? badge(d.verdict) : d.verdict || d.note || "")],
    ],
    Object.entries(differences),
    "Measures"
  );
}

const experiment = async () => {
  const id = ARGS.experiment_id;
  const load = async () => {
    const report = await get(`/experiments/${id}/report`);
    const e = report.experiment;
    fill("#experiment-head",
      h("p", {}, badge(e.status), ` ${e.mode} experiment on ${e.ruleset}: version ${e.champion} (champion) against ${e.challenger} (challenger)`,
        e.mode === "split" ? `, ${percent(e.challenger_share)} to the challenger` : "", `. Started ${when(e.starts_at)}.`),
      h("p", {}, h("strong", {}, "Guardrails: "),
        Object.keys(e.guardrails || {}).length ? Object.entries(e.guardrails).map(([k, v]) => `${k.replace(/_/g, " ")} ${v}`).join("; ") : "none set",
        e.stop_reason ? h("span", {}, " · ", badge("stopped"), ` ${e.stop_reason}`) : e.status === "running" ? " · none crossed" : ""));
    const variants = report.variants;
    fill("#report",
      h("p", {}, `${variants.champion.decisions} orders decided; the variants disagreed on ${report.disagreements} (${percent(report.disagreement_rate)}).`),
      verdict(report.challenger_minus_champion),
      intervalChart(report.challenger_minus_champion),
      measuresTable(report),
      report.rules_making_the_difference.length ? h("p", {}, "Rules making the difference: ", report.rules_making_the_difference.map((r) => r.rule || JSON.stringify(r)).join(", ")) : null);
    $("#stop").disabled = e.status !== "running";
    $("#promote").disabled = e.status !== "running";
    if (e.mode === "shadow") {
      const list = await get(`/experiments/${id}/disagreements`);
      const items = list.disagreements || list.decisions || [];
      fill("#disagreements", table(
        [
          ["Order", (d) => d.order_id],
          ["Decision", (d) => h("button", { type: "button", class: "secondary quiet", onclick: () => showPair(d.decision_id) }, d.decision_id)],
          ["Nodes only the champion chose", (d) => ((d.difference || {}).nodes_only_champion || []).join(", ")],
          ["Nodes only the challenger chose", (d) => ((d.difference || {}).nodes_only_challenger || []).join(", ")],
        ],
        items,
        "Disagreements"
      ));
    } else fill("#disagreements", h("p", {}, "Split experiments decide each order once: there is nothing to compare side by side."));
  };
  async function showPair(decisionId) {
    const pair = await get(`/experiments/${id}/disagreements/${decisionId}`);
    const nodes = (await get("/nodes")).nodes;
    fill("#side-by-side", h("h3", {}, `Order ${pair.order_id || ""}, side by side`),
      h("div", { class: "columns" },
        h("div", {}, h("h4", {}, "Champion"), explain(pair.champion, nodes, null)),
        h("div", {}, h("h4", {}, "Challenger"), explain(pair.challenger, nodes, null))));
  }
  $("#stop").addEventListener("click", async () => {
    if (await guarded("#notice", () => post(`/experiments/${id}/stop`))) { notify("Stopped."); load(); }
  });
  $("#promote").addEventListener("click", async () => {
    if (!confirm("Activate the challenger and end the experiment?")) return;
    if (await guarded("#notice", () => post(`/experiments/${id}/promote`))) { notify("The challenger is active."); load(); }
  });
  await load();
};

const replays = async () => {
  const [list, rulesets] = await Promise.all([get("/replays"), get("/rulesets")]);
  await chooseVersions(rulesets.rulesets, {
    ruleset: $("#replay-ruleset"), champion: $("#replay-champion"), challenger: $("#replay-challenger"),
  }, { withDraft: true });
  fill("#replays", table(
    [
      ["Replay", (r) => link(`/console/replays/${r.replay_id}`, r.replay_id)],
      ["Ruleset", (r) => r.ruleset],
      ["Champion", (r) => r.request.champion, { number: true }],
      ["Challenger", (r) => r.request.challenger || "draft"],
      ["Status", (r) => badge(r.status)],
      ["Decisions", (r) => `${r.done} / ${r.total}`, { number: true }],
      ["Started", (r) => when(r.created_at)],
    ],
    list.replays,
    "Replays",
    "No replays yet. Start one with the form above: it decides stored orders again under two versions (or a draft) and compares them."
  ));
  $("#replay-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#replay-ruleset").value;
    const body = { ruleset: name, champion: Number($("#replay-champion").value), limit: Number($("#replay-limit").value) };
    const challenger = $("#replay-challenger").value;
    if (challenger === "draft") body.draft = JSON.parse(sessionStorage.getItem(`dom.draft.${name}`));
    else body.challenger = Number(challenger);
    const started = await guarded("#notice", () => post("/replays", body));
    if (started) location.href = `/console/replays/${started.replay_id}`;
  });
};

const replay = async () => {
  const id = ARGS.replay_id;
  const poll = async () => {
    const replay = await get(`/replays/${id}`);
    const share = replay.total ? Math.round((100 * replay.done) / replay.total) : replay.status === "done" ? 100 : 0;
    $("#progress").value = share;
    fill("#progress-text", `${share}% · ${replay.done} of ${replay.total} decisions · ${replay.status}`);
    fill("#replay-head", h("p", {}, badge(replay.status), ` ${replay.ruleset}: version ${replay.request.champion} against ${replay.request.challenger ? `version ${replay.request.challenger}` : "a draft"}.`));
    if (replay.status === "queued" || replay.status === "running") return setTimeout(poll, 400);
    if (replay.status === "failed") return problem({ message: `The replay failed: ${replay.error}`, errors: [] });
    const report = replay.report;
    fill("#replay-report",
      h("p", {}, `${report.changed} of ${report.champion.decisions} decisions changed (${percent(report.change_rate)}).`),
      verdict(report.challenger_minus_champion),
      intervalChart(report.challenger_minus_champion),
      measuresTable(report));
    fill("#changed", h("h3", {}, "Changed orders"), table(
      [
        ["Order", (c) => c.order_id],
        ["Decision", (c) => link(`/console/decisions/${c.decision_id}`, c.decision_id)],
        ["Rules only before", (c) => c.difference.rules_only_champion.join(", ")],
        ["Rules only after", (c) => c.difference.rules_only_challenger.join(", ")],
        ["Nodes before", (c) => (c.difference.nodes_only_champion || []).join(", ")],
        ["Nodes after", (c) => (c.difference.nodes_only_challenger || []).join(", ")],
        ["Cost change", (c) => number(c.difference.cost_difference), { number: true }],
      ],
      replay.changes || [],
      "Changed orders"
    ));
  };
  await poll();
};

export const pages = { experiments, experiment, replays, replay };
