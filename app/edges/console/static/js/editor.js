// The editor: a draft rule by rule, as a form and as JSON, validated as it changes.

import { ApiError, get, post, put } from "./api.js";
import { ARGS, QUERY, $, h, fill, link, guarded } from "./page.js";
import { versionsOf, scenarioReport } from "./versions.js";

const editor = async () => {
  const name = ARGS.name;
  const ruleset = await versionsOf(name);
  const base = QUERY.get("from") || ruleset.active_version || ruleset.versions[ruleset.versions.length - 1].version;
  const stored = await get(`/rulesets/${name}/versions/${base}`);
  const draftKey = `dom.draft.${name}`;
  const saved = sessionStorage.getItem(draftKey);
  const resume = saved && QUERY.get("resume") === "1";
  const doc = resume ? JSON.parse(saved) : structuredClone(stored.document);
  // Listed as they run: the highest priority first.
  doc.rules.sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0));
  const nextVersion = ruleset.versions[ruleset.versions.length - 1].version + 1;
  doc.version = nextVersion;
  delete doc.change_note;
  sessionStorage.setItem(`${draftKey}.base`, String(base));
  fill("#editor-base", `Editing a draft from version ${base}${resume ? " (your unsaved changes are back)" : ""}. Saving stores version ${nextVersion}; nothing changes until you save.`);
  fill("#next-version", String(nextVersion));

  const kind = stored.kind;
  const factsSchema = await get(`/schemas/${kind === "sourcing" ? "facts" : `${kind}-facts`}`);
  const rulesetSchema = await get("/schemas/ruleset");
  const catalogue = {};
  for (const [fact, definition] of Object.entries(factsSchema.$defs)) {
    catalogue[fact] = definition.properties || {};
  }
  const operators = Object.keys(rulesetSchema.$defs.tests.properties);
  const actions = rulesetSchema.$defs.action.oneOf.map((o) => o.required[0]);
  let selected = 0;
  let problems = [];

  const fieldList = h("datalist", { id: "field-options" });
  document.body.append(fieldList);

  const valueText = (value) => (typeof value === "string" ? value : JSON.stringify(value));
  const parseValue = (text) => {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  };

  function problemsAt(prefix) {
    return problems.filter((p) => p.pointer === prefix || p.pointer.startsWith(prefix + "/"));
  }

  function changed() {
    sessionStorage.setItem(draftKey, JSON.stringify(doc));
    renderList();
    $("#rule-json").value = JSON.stringify(doc.rules[selected], null, 2);
    scheduleValidation();
  }

  let timer = null;
  function scheduleValidation() {
    clearTimeout(timer);
    timer = setTimeout(validate, 350);
  }

  async function validate() {
    try {
      await post("/rulesets/validate", doc);
      problems = [];
      fill("#problems", h("div", { class: "notice good" }, "No problems: the draft is valid."));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      problems = error.errors.map((e) => ({ ...e, pointer: e.pointer || "" }));
      fill("#problems", h("div", { class: "notice bad", role: "alert" },
        `${problems.length} problem${problems.length === 1 ? "" : "s"}:`,
        h("ul", {}, problems.map((p) => h("li", {}, p.rule_id ? h("strong", {}, p.rule_id + ": ") : null, p.message, " ", h("code", {}, p.pointer))))));
    }
    renderList();
    renderForm();
  }

  function renderList() {
    const list = $("#rule-list");
    // Drawn again, the list keeps the keyboard where it was (on the same rule's control).
    const focused = list.contains(document.activeElement) ? document.activeElement : null;
    const keep = focused && [focused.closest("li").dataset.rule, focused.tagName];
    fill(list, doc.rules.map((rule, index) => {
      const item = h("li", {
        draggable: "true", "data-index": index, "data-rule": rule.id,
        class: `${index === selected ? "selected" : ""} ${problemsAt(`/rules/${index}`).length ? "has-problem" : ""}`,
      },
      h("button", { type: "button", "aria-current": index === selected ? "true" : null, onclick: () => { selected = index; renderList(); renderForm(); } },
        rule.id || "(no id)", problemsAt(`/rules/${index}`).length ? h("span", { class: "visually-hidden" }, " (has problems)") : null),
      h("label", { class: "visually-hidden", for: `priority-${index}` }, `Priority of ${rule.id}`),
      h("input", { id: `priority-${index}`, type: "number", value: rule.priority ?? "", onchange: (event) => { rule.priority = Number(event.target.value); sortByPriority(); } }));
      item.addEventListener("dragstart", (event) => { event.dataTransfer.setData("text/plain", String(index)); item.classList.add("dragging"); });
      item.addEventListener("dragend", () => item.classList.remove("dragging"));
      item.addEventListener("dragover", (event) => event.preventDefault());
      item.addEventListener("drop", (event) => {
        event.preventDefault();
        moveRule(Number(event.dataTransfer.getData("text/plain")), index);
      });
      return item;
    }));
    if (keep) {
      const again = [...list.children].find((li) => li.dataset.rule === keep[0]);
      if (again) again.querySelector(keep[1].toLowerCase()).focus();
    }
  }

  function sortByPriority() {
    const current = doc.rules[selected];
    doc.rules.sort((a, b) => (b.priority ?? 0) - (a.priority ?? 0));
    selected = doc.rules.indexOf(current);
    changed();
    renderForm();
  }

  // Dropping a rule above another gives it a priority just above that rule's.
  function moveRule(from, to) {
    if (from === to) return;
    const [rule] = doc.rules.splice(from, 1);
    doc.rules.splice(to, 0, rule);
    const above = doc.rules[to - 1];
    const below = doc.rules[to + 1];
    if (below && (!above || above.priority > below.priority + 1)) rule.priority = (below.priority ?? 0) + 1;
    else if (above) rule.priority = above.priority ?? 0;
    selected = to;
    changed();
    renderForm();
  }

  function fieldInput(id, label, value, onchange, pointer, extra = {}) {
    const found = problemsAt(pointer);
    return [
      h("label", { for: id, class: extra.hiddenLabel ? "visually-hidden" : null }, label),
      h("input", { id, value: value ?? "", "aria-invalid": found.length ? "true" : null, "aria-describedby": found.length ? `${id}-problem` : null, onchange: (event) => onchange(event.target.value), ...extra.attributes }),
      found.length ? h("p", { class: "field-problem", id: `${id}-problem` }, found.map((p) => p.message).join("; ")) : null,
    ];
  }

  function renderForm() {
    const rule = doc.rules[selected];
    if (!rule) return fill("#rule-form", h("p", {}, "No rule selected."));
    const at = `/rules/${selected}`;
    const head = h("div", { class: "grid" },
      fieldInput("rule-id", "Rule id", rule.id, (v) => { rule.id = v; changed(); }, `${at}/id`),
      fieldInput("rule-description", "Description", rule.description, (v) => { rule.description = v; changed(); }, `${at}/description`),
      fieldInput("rule-priority", "Priority", rule.priority, (v) => { rule.priority = Number(v); sortByPriority(); }, `${at}/priority`, { attributes: { type: "number" } }));
    const conditions = (rule.when || []).map((pattern, p) => {
      const where = Object.entries(pattern.where || {});
      const fields = catalogue[pattern.fact] || {};
      const rows = [];
      where.forEach(([field, tests], w) => {
        Object.entries(tests).forEach(([op, value], t) => {
          const id = `c${p}-${w}-${t}`;
          const pointer = `${at}/when/${p}/where/${field}`;
          const found = problemsAt(pointer);
          const type = fields[field] ? fields[field].type || (fields[field].enum ? "one of " + fields[field].enum.join(", ") : "") : "";
          rows.push(h("div", { class: "where-row", "data-field": field },
            h("label", { for: `${id}-field`, class: "visually-hidden" }, "Field"),
            h("input", {
              id: `${id}-field`, list: "field-options", value: field, "aria-invalid": found.length ? "true" : null,
              "aria-describedby": found.length ? `${id}-problem` : `${id}-type`,
              onfocus: () => fill(fieldList, Object.entries(fields).map(([f, d]) => h("option", { value: f }, `${f}: ${d.type || "value"}`))),
              onchange: (event) => { renameField(pattern, field, event.target.value); changed(); renderForm(); },
            }),
            h("label", { for: `${id}-op`, class: "visually-hidden" }, "Operator"),
            h("select", { id: `${id}-op`, onchange: (event) => { const old = pattern.where[field][op]; delete pattern.where[field][op]; pattern.where[field][event.target.value] = old; changed(); renderForm(); } },
              operators.map((o) => h("option", { value: o, selected: o === op }, o))),
            h("label", { for: `${id}-value`, class: "visually-hidden" }, "Value"),
            h("input", { id: `${id}-value`, value: valueText(value), onchange: (event) => { pattern.where[field][op] = parseValue(event.target.value); changed(); } }),
            h("button", { type: "button", class: "secondary quiet", "aria-label": `Remove the test of ${field}`, onclick: () => { delete pattern.where[field][op]; if (!Object.keys(pattern.where[field]).length) delete pattern.where[field]; changed(); renderForm(); } }, "✕"),
            found.length
              ? h("p", { class: "field-problem", id: `${id}-problem`, role: "alert" }, found.map((x) => x.message).join("; "))
              : h("p", { class: "hint field-problem", id: `${id}-type` }, type ? `${field}: ${type}` : "")));
        });
      });
      return h("fieldset", { class: "condition" },
        h("legend", {}, `When a ${pattern.fact}`, pattern.as ? ` (as ${pattern.as})` : ""),
        h("div", { class: "inline" },
          h("label", { for: `c${p}-fact` }, "Fact"),
          h("select", { id: `c${p}-fact`, onchange: (event) => { pattern.fact = event.target.value; changed(); renderForm(); } },
            Object.keys(catalogue).map((f) => h("option", { value: f, selected: f === pattern.fact }, f))),
          h("label", { for: `c${p}-as` }, "as"),
          h("input", { id: `c${p}-as`, value: pattern.as || "", size: 6, onchange: (event) => { pattern.as = event.target.value || undefined; changed(); } })),
        rows,
        h("button", { type: "button", class: "secondary quiet", onclick: () => { pattern.where = pattern.where || {}; const free = Object.keys(fields).find((f) => !(f in pattern.where)) || "field"; pattern.where[free] = { eq: "" }; changed(); renderForm(); } }, "Add a test"));
    });
    const actionsForm = (rule.then || []).map((action, a) => {
      const type = actions.find((name) => name in action) || Object.keys(action)[0];
      return h("fieldset", { class: "action" },
        h("legend", {}, `Then ${type}`),
        h("div", { class: "grid" },
          Object.entries(action).map(([key, value]) =>
            fieldInput(`a${a}-${key}`, key, valueText(value), (v) => { action[key] = parseValue(v); changed(); }, `${at}/then/${a}/${key}`))));
    });
    fill("#rule-form",
      problemsAt(at).filter((p) => p.pointer === at).map((p) => h("p", { class: "error" }, p.message)),
      head,
      h("h3", {}, "Conditions"), exactly(`${at}/when`), conditions,
      h("button", { type: "button", class: "secondary quiet", onclick: () => { rule.when = rule.when || []; rule.when.push({ fact: Object.keys(catalogue)[0], where: {} }); changed(); renderForm(); } }, "Add a condition"),
      h("h3", {}, "Actions"), exactly(`${at}/then`), actionsForm,
      h("div", { class: "inline" },
        h("label", { for: "new-action" }, "Add an action"),
        h("select", { id: "new-action" }, actions.map((name) => h("option", {}, name))),
        h("button", { type: "button", class: "secondary quiet", onclick: () => { const name = $("#new-action").value; rule.then = rule.then || []; rule.then.push(templateAction(name)); changed(); renderForm(); } }, "Add")),
      h("p", {}, h("button", { type: "button", class: "danger quiet", onclick: () => { doc.rules.splice(selected, 1); selected = Math.max(0, selected - 1); changed(); renderForm(); } }, "Delete this rule")));
    $("#rule-json").value = JSON.stringify(rule, null, 2);
  }

  // The problems about a part as a whole (no actions at all), shown where it starts.
  function exactly(pointer) {
    return problems.filter((p) => p.pointer === pointer).map((p) => h("p", { class: "error", role: "alert" }, p.message));
  }

  function templateAction(name) {
    const option = rulesetSchema.$defs.action.oneOf.find((o) => o.required[0] === name);
    return Object.fromEntries(option.required.map((key) => [key, key === "add" ? 1 : ""]));
  }

  function renameField(pattern, from, to) {
    const entries = Object.entries(pattern.where).map(([k, v]) => [k === from ? to : k, v]);
    pattern.where = Object.fromEntries(entries);
  }

  $("#rule-json").addEventListener("input", (event) => {
    try {
      doc.rules[selected] = JSON.parse(event.target.value);
      $("#rule-json-error").hidden = true;
      sessionStorage.setItem(draftKey, JSON.stringify(doc));
      renderList();
      scheduleValidation();
    } catch (error) {
      fill("#rule-json-error", `Not JSON yet: ${error.message}`).hidden = false;
    }
  });
  $("#rule-json").addEventListener("blur", () => renderForm());
  $("#add-rule").addEventListener("click", () => {
    doc.rules.push({ id: `new-rule-${doc.rules.length + 1}`, description: "", priority: 0, when: [{ fact: Object.keys(catalogue)[0], as: "x", where: {} }], then: [] });
    selected = doc.rules.length - 1;
    changed();
    renderForm();
  });
  $("#save-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    doc.change_note = $("#change-note").value;
    const version = await guarded("#save-result", () => post(`/rulesets/${name}/versions`, doc));
    delete doc.change_note;
    if (!version) return;
    sessionStorage.removeItem(draftKey);
    fill("#save-result", h("div", { class: "notice good" }, `Saved as version ${version.version}. `,
      link(`/console/rulesets/${name}/diff?from=${base}&to=${version.version}`, `See what changed from version ${base}`), " · ",
      link(`/console/rulesets/${name}`, "Back to the ruleset")));
  });
  $("#test-draft").addEventListener("click", async () => {
    const result = await guarded("#save-result", () => post(`/rulesets/${name}/test`, { ruleset: doc }));
    if (result) fill("#save-result", scenarioReport(result));
  });
  $("#simulate-draft").addEventListener("click", () => {
    sessionStorage.setItem(draftKey, JSON.stringify(doc));
    location.href = `/console/simulate?ruleset=${name}&draft=1`;
  });
  $("#scenario-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    let facts;
    let expect;
    try {
      facts = JSON.parse($("#scenario-facts").value);
      expect = JSON.parse($("#scenario-expect").value);
    } catch (error) {
      return fill("#scenario-result", h("div", { class: "notice bad", role: "alert" }, `The facts and effects must be JSON: ${error.message}`));
    }
    const id = $("#scenario-id").value;
    const body = { scenario: $("#scenario-title").value, facts, expect };
    const stored = await guarded("#scenario-result", () => put(`/rulesets/${name}/scenarios/${encodeURIComponent(id)}`, body));
    if (stored) fill("#scenario-result", h("div", { class: "notice good" }, `Scenario ${id} added: the next version carries it.`));
  });
  renderList();
  renderForm();
  validate();
};

export const pages = { editor };
