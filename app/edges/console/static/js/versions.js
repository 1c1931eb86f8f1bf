// A ruleset's versions with their status, and its scenarios' results.

import { get } from "./api.js";
import { QUERY, h, fill, table, badge } from "./page.js";

export async function versionsOf(name) {
  const ruleset = await get(`/rulesets/${name}`);
  const scheduled = new Set(ruleset.activations.filter((a) => a.status === "scheduled").map((a) => a.version));
  const once = new Set(ruleset.activations.filter((a) => a.status === "effective").map((a) => a.version));
  for (const version of ruleset.versions) {
    version.status =
      version.version === ruleset.active_version ? "active"
        : scheduled.has(version.version) ? "scheduled"
          : once.has(version.version) ? "retired" : "draft";
  }
  return ruleset;
}

export function versionOptions(select, versions, selected, extra = []) {
  fill(
    select,
    extra.map(([value, label]) => h("option", { value }, label)),
    versions.map((v) => h("option", { value: v.version, selected: String(v.version) === String(selected) }, `version ${v.version} (${v.status || ""})`))
  );
}

// A form's ruleset, champion and challenger, chosen from the rulesets: the active version
// against the latest, or (withDraft) against the draft in the editor, once there is one.
export async function chooseVersions(rulesets, form, { withDraft = false } = {}) {
  fill(form.ruleset, rulesets.map((r) => h("option", { value: r.ruleset }, r.ruleset)));
  form.ruleset.value = QUERY.get("ruleset") || "sourcing";
  const load = async () => {
    const name = form.ruleset.value;
    const ruleset = await versionsOf(name);
    const latest = ruleset.versions[ruleset.versions.length - 1].version;
    const draft = withDraft && sessionStorage.getItem(`dom.draft.${name}`) ? [["draft", "the draft in the editor"]] : [];
    versionOptions(form.champion, ruleset.versions, ruleset.active_version);
    versionOptions(form.challenger, ruleset.versions, latest, draft);
  };
  form.ruleset.addEventListener("change", load);
  await load();
}

export function scenarioReport(result) {
  const failed = result.scenarios.filter((s) => !s.passed);
  return h(
    "div",
    {},
    h("p", {}, badge(result.failed ? "failed" : "passed"), ` ${result.passed} passed, ${result.failed} failed`),
    table(
      [
        ["Scenario", (s) => h("span", {}, h("code", {}, s.scenario_id), " ", s.scenario)],
        ["Result", (s) => badge(s.passed ? "passed" : "failed")],
        ["Expected, against what happened", (s) => (s.failures.length ? h("ul", {}, s.failures.map((f) => h("li", {}, f))) : "")],
        ["Rules fired", (s) => (s.fired || []).join(", ")],
      ],
      [...failed, ...result.scenarios.filter((s) => s.passed)],
      "Scenario results"
    )
  );
}

// ---- Pages --------------------------------------------------------------------------

const PAGES = {};
