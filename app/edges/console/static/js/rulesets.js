// Rulesets: the list, one ruleset's versions, release and scenarios, and two versions compared.

import { get, post } from "./api.js";
import { ARGS, QUERY, $, h, fill, table, badge, link, when, notify, guarded } from "./page.js";
import { versionsOf, versionOptions, scenarioReport } from "./versions.js";

const rulesets = async () => {
  const { rulesets } = await get("/rulesets");
  fill(
    "#rulesets",
    table(
      [
        ["Ruleset", (r) => link(`/console/rulesets/${r.ruleset}`, r.ruleset)],
        ["Kind", (r) => r.kind],
        ["Active version", (r) => r.active_version ?? "none", { number: true }],
        ["Latest version", (r) => r.latest_version, { number: true }],
        ["Versions", (r) => r.versions, { number: true }],
      ],
      rulesets,
      "Rulesets"
    )
  );
};

const ruleset = async () => {
  const name = ARGS.name;
  let ruleset = await versionsOf(name);
  let releasing = null;

  const render = () => {
    const versions = [...ruleset.versions].reverse();
    fill(
      "#versions",
      table(
        [
          ["Version", (v) => v.version, { number: true }],
          ["Status", (v) => badge(v.status)],
          ["Author", (v) => v.created_by],
          ["Stored", (v) => when(v.created_at)],
          ["Change note", (v) => v.change_note || v.description || ""],
          ["Rules", (v) => v.rule_count, { number: true }],
          ["Scenarios", (v) => h("span", { id: `scenarios-${v.version}` }, h("button", { type: "button", class: "secondary quiet", onclick: () => runScenarios(v.version, `#scenarios-${v.version}`, true) }, "Run"))],
          [
            "Actions",
            (v) => h("span", { class: "actions" },
              link(`/console/rulesets/${name}/edit?from=${v.version}`, "Edit from here"),
              link(`/console/simulate?ruleset=${name}&version=${v.version}`, "Simulate"),
              v.status === "active" ? null : h("button", { type: "button", class: "quiet", "data-activate": v.version, onclick: () => release(v.version) }, `Activate ${v.version}…`)),
          ],
        ],
        versions,
        "Versions"
      )
    );
    const latest = ruleset.versions[ruleset.versions.length - 1];
    versionOptions($("#compare-from"), ruleset.versions, Math.max(1, latest.version - 1));
    versionOptions($("#compare-to"), ruleset.versions, latest.version);
    versionOptions($("#scenario-version"), ruleset.versions, latest.version);
  };

  async function runScenarios(version, target, compact) {
    const result = await guarded("#notice", () => post(`/rulesets/${name}/versions/${version}/test`));
    if (!result) return null;
    if (compact) fill(target, badge(result.failed ? "failed" : "passed"), ` ${result.passed}/${result.passed + result.failed}`);
    else fill(target, scenarioReport(result));
    return result;
  }

  async function release(version) {
    releasing = version;
    $("#release").hidden = false;
    fill("#release-version", String(version));
    $("#release-confirm").disabled = true;
    fill("#gate", "Running the scenario gate…");
    fill("#gate-details");
    const result = await runScenarios(version, "#gate-details", false);
    if (!result) return fill("#gate");
    fill("#gate", h("p", {}, h("strong", {}, "Scenario gate: "), badge(result.failed ? "failed" : "passed"), " ",
      result.failed ? `${result.failed} of ${result.passed + result.failed} scenarios fail: this version cannot be activated.` : `every scenario passes (${result.passed}).`));
    const table = $("#gate-details").firstChild;
    fill("#gate-details", h("details", { open: result.failed > 0 }, h("summary", {}, "Each scenario's result"), table));
    $("#release-confirm").disabled = Boolean(result.failed);
    $("#release-heading").scrollIntoView();
  }

  $("#release-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const at = event.target.elements.when.value === "at" ? $("#release-at").value : "";
    const body = at ? { at: new Date(at).toISOString() } : {};
    const done = await guarded("#notice", () => post(`/rulesets/${name}/versions/${releasing}/activate`, body));
    if (!done) return;
    notify(at ? `Version ${releasing} is scheduled for ${when(body.at)}.` : `Version ${releasing} is active.`);
    $("#release").hidden = true;
    ruleset = await versionsOf(name);
    render();
  });
  $("#release-cancel").addEventListener("click", () => { $("#release").hidden = true; });
  $("#rollback").addEventListener("click", async () => {
    if (!confirm("Re-activate the version that was active before the current one?")) return;
    const done = await guarded("#notice", () => post(`/rulesets/${name}/rollback`));
    if (!done) return;
    notify(`Rolled back: version ${done.version ?? ""} is active.`);
    ruleset = await versionsOf(name);
    render();
  });
  $("#run-scenarios").addEventListener("submit", (event) => {
    event.preventDefault();
    fill("#scenario-results", "Running…");
    runScenarios($("#scenario-version").value, "#scenario-results", false);
  });
  render();
  const drafts = await get(`/rulesets/${name}/scenarios`);
  fill("#draft-scenarios", table([["Scenario", (s) => h("code", {}, s.scenario_id || s.id || s)], ["What it shows", (s) => s.scenario || ""]], drafts.scenarios || [], "Draft scenarios"));
};

// A changed rule, the two versions side by side, lines that differ highlighted.
export function sideBySide(before, after) {
  const left = before ? JSON.stringify(before, null, 2).split("\n") : [];
  const right = after ? JSON.stringify(after, null, 2).split("\n") : [];
  const leftSet = new Set(left);
  const rightSet = new Set(right);
  const lines = (list, other, kind) =>
    list.map((line) => h("span", { class: `diff-line ${other.has(line) ? "" : kind}` }, line + "\n"));
  return h(
    "div",
    { class: "diff-cols" },
    h("pre", { "aria-label": "Before" }, before ? lines(left, rightSet, after ? "changed" : "removed") : "(not in this version)"),
    h("pre", { "aria-label": "After" }, after ? lines(right, leftSet, before ? "changed" : "added") : "(not in this version)")
  );
}

const diff = async () => {
  const name = ARGS.name;
  const from = QUERY.get("from");
  const to = QUERY.get("to");
  const [diff, a, b] = await Promise.all([
    get(`/rulesets/${name}/diff?from=${from}&to=${to}`),
    get(`/rulesets/${name}/versions/${from}`),
    get(`/rulesets/${name}/versions/${to}`),
  ]);
  const rulesA = Object.fromEntries(a.document.rules.map((r) => [r.id, r]));
  const rulesB = Object.fromEntries(b.document.rules.map((r) => [r.id, r]));
  const settings = Object.entries(diff.settings || {});
  fill(
    "#diff-summary",
    h("p", {}, `Version ${from} → version ${to}: `,
      `${diff.rules.added.length} added, ${diff.rules.removed.length} removed, ${diff.rules.changed.length} changed rules; ${settings.length} settings changed.`),
    settings.length
      ? table([["Setting", ([k]) => h("code", {}, k)], ["Before", ([, v]) => JSON.stringify(v.from)], ["After", ([, v]) => JSON.stringify(v.to)]], settings, "Settings changed")
      : null
  );
  const section = (id, title, before, after, fields) =>
    h("section", { class: "diff-rule", "data-rule": id },
      h("h2", {}, badge(title, title === "removed" ? "bad" : title === "added" ? "good" : "warn"), " ", h("code", {}, id),
        fields ? ` · ${fields.join(", ")} changed` : ""),
      sideBySide(before, after));
  fill(
    "#diff",
    diff.rules.changed.map((c) => section(c.id, "changed", rulesA[c.id], rulesB[c.id], Object.keys(c.fields))),
    diff.rules.added.map((id) => section(id.id || id, "added", null, rulesB[id.id || id])),
    diff.rules.removed.map((id) => section(id.id || id, "removed", rulesA[id.id || id], null))
  );
};

export const pages = { rulesets, ruleset, diff };
