// The console's pages: each fills its template from the /v1 API, as any client would.
// The session cookie authenticates; every change sends the session's CSRF token.

const BODY = document.body;
const CSRF = BODY.dataset.csrf;
const ROLE = BODY.dataset.role;
const ARGS = JSON.parse(BODY.dataset.args || "{}");
const QUERY = new URLSearchParams(location.search);
const AUTHOR = ROLE === "admin" || ROLE === "analyst";

// ---- Talking to the API -------------------------------------------------------------

class ApiError extends Error {
  constructor(status, error) {
    super((error && error.message) || `the service answered ${status}`);
    this.status = status;
    this.code = error && error.code;
    this.errors = (error && error.errors) || [];
  }
}

async function api(method, path, data) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (data !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(data);
  }
  if (method !== "GET") options.headers["X-CSRF-Token"] = CSRF;
  const response = await fetch("/v1" + path, options);
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (response.status === 401) {
    location.href = "/console/sign-in?next=" + encodeURIComponent(location.pathname + location.search);
  }
  if (!response.ok) throw new ApiError(response.status, json && json.error);
  return json;
}

const get = (path) => api("GET", path);
const post = (path, data) => api("POST", path, data);
const put = (path, data) => api("PUT", path, data);

// ---- Building pages -----------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);

// h("a", {href: "/x", class: "badge"}, "text", child): an element; "on<event>" attributes
// become listeners, null children are skipped.
function h(tag, attributes = {}, ...children) {
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

function fill(target, ...children) {
  const element = typeof target === "string" ? $(target) : target;
  element.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return element;
}

// A table: columns are [label, row => cell content, {number: true}?].
function table(columns, rows, caption) {
  return h(
    "div",
    { class: "table-wrap" },
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
          : h("tr", {}, h("td", { colspan: columns.length }, "None."))
      )
    )
  );
}

const badge = (text, kind) => h("span", { class: `badge ${kind || String(text).replace(/\s+/g, "_")}` }, text);
const link = (href, text) => h("a", { href }, text);
const when = (text) => (text ? new Date(text).toLocaleString("en-GB", { dateStyle: "medium", timeStyle: "short" }) : "");
const number = (value, digits = 2) =>
  value === null || value === undefined ? "–" : Number(value).toLocaleString("en-GB", { maximumFractionDigits: digits });
const percent = (value) => (value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`);

// Success or an API error, in the page's notice area (or a given element).
function notify(message, good = true, target = "#notice") {
  fill(target, h("div", { class: `notice ${good ? "good" : "bad"}` }, message));
}

function problem(error, target = "#notice") {
  const items = (error.errors || []).map((e) => h("li", {}, e.pointer ? h("code", {}, e.pointer) : null, e.pointer ? " " : null, e.message));
  fill(target, h("div", { class: "notice bad", role: "alert" }, error.message, items.length ? h("ul", {}, items) : null));
}

async function guarded(target, work) {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    problem(error, target);
    return undefined;
  }
}

// ---- The map of the network ---------------------------------------------------------

const NODE_COLOURS = { dc: "#1a5fb4", store: "#26a269", "3pl": "#9141ac", supplier: "#c64600" };

// An SVG map of nodes from their coordinates (no tiles): marks = {node_id: "chosen" |
// "candidate" | "excluded"}; destination = {lat, lon, label}.
function networkMap(nodes, { marks = {}, destination = null, label = "Map of the network", size = {} } = {}) {
  const points = nodes.filter((n) => n.address && n.address.lat != null);
  const lats = points.map((n) => n.address.lat).concat(destination ? [destination.lat] : []);
  const lons = points.map((n) => n.address.lon).concat(destination ? [destination.lon] : []);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  const squash = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
  const width = 600;
  const spanX = Math.max((maxLon - minLon) * squash, 0.5);
  const spanY = Math.max(maxLat - minLat, 0.5);
  const height = Math.round(Math.min(900, Math.max(300, (width * spanY) / spanX)));
  const pad = 24;
  const x = (lon) => pad + (((lon - minLon) * squash) / spanX) * (width - 2 * pad);
  const y = (lat) => height - pad - ((lat - minLat) / spanY) * (height - 2 * pad);
  const svg = h("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, width: size.width || width, height: size.height || height });
  for (let i = 1; i < 6; i += 1) {
    svg.append(h("line", { x1: (width * i) / 6, x2: (width * i) / 6, y1: 0, y2: height, stroke: "#d4dde8" }));
    svg.append(h("line", { y1: (height * i) / 6, y2: (height * i) / 6, x1: 0, x2: width, stroke: "#d4dde8" }));
  }
  const order = { undefined: 0, excluded: 1, candidate: 2, chosen: 3 };
  for (const node of [...points].sort((a, b) => order[marks[a.node_id]] - order[marks[b.node_id]])) {
    const mark = marks[node.node_id];
    const cx = x(node.address.lon);
    const cy = y(node.address.lat);
    const radius = mark === "chosen" ? 9 : mark === "candidate" ? 6 : 4;
    const group = h("g", { class: `node ${mark || "plain"}`, "data-node": node.node_id });
    group.append(
      h("title", {}, `${node.node_id} (${node.type}) ${mark || ""}${node.stock != null ? ` · ATP ${node.stock}` : ""}`),
      h("circle", {
        cx, cy, r: radius, fill: NODE_COLOURS[node.type] || "#555",
        "fill-opacity": mark === "excluded" ? 0.35 : 0.9,
        stroke: mark === "chosen" ? "#111" : "#fff", "stroke-width": mark === "chosen" ? 3 : 1,
      })
    );
    if (mark === "excluded") {
      group.append(h("line", { x1: cx - 6, y1: cy - 6, x2: cx + 6, y2: cy + 6, stroke: "#b3261e", "stroke-width": 2 }));
    }
    if (mark === "chosen" || (node.stock != null && node.stock > 0 && points.length < 80)) {
      group.append(h("text", { x: cx + radius + 3, y: cy + 4, "font-size": 12, fill: "#1b1f24" }, mark === "chosen" ? node.node_id : String(node.stock)));
    }
    svg.append(group);
  }
  if (destination) {
    const dx = x(destination.lon);
    const dy = y(destination.lat);
    svg.append(
      h("g", { class: "destination" },
        h("title", {}, destination.label || "Delivery address"),
        h("rect", { x: dx - 7, y: dy - 7, width: 14, height: 14, fill: "#f6d32d", stroke: "#111", "stroke-width": 2 }))
    );
  }
  return svg;
}

function mapLegend(extra = []) {
  return h(
    "ul",
    { class: "legend-list", "aria-label": "Legend" },
    Object.entries(NODE_COLOURS).map(([type, colour]) => {
      const swatch = h("span", { class: "swatch" });
      swatch.style.background = colour;
      return h("li", {}, swatch, type.toUpperCase() === "3PL" ? "3PL" : type);
    }),
    extra.map((text) => h("li", {}, text))
  );
}

// ---- Rulesets, versions and their status ----------------------------------------------

async function versionsOf(name) {
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

function versionOptions(select, versions, selected, extra = []) {
  fill(
    select,
    extra.map(([value, label]) => h("option", { value }, label)),
    versions.map((v) => h("option", { value: v.version, selected: String(v.version) === String(selected) }, `version ${v.version} (${v.status || ""})`))
  );
}

function scenarioReport(result) {
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

PAGES.home = async () => {
  const cards = $("#overview");
  if (!cards) return;
  const card = (title, figure, text, href) =>
    h("section", { class: "card" }, h("h2", {}, title), h("p", { class: "figure" }, figure), h("p", {}, text, " ", href ? link(href, "Open") : null));
  const items = [];
  if (AUTHOR) {
    const [rulesets, experiments] = await Promise.all([get("/rulesets"), get("/experiments")]);
    items.push(card("Rulesets", rulesets.rulesets.length, rulesets.rulesets.map((r) => `${r.ruleset} v${r.active_version}`).join(", "), "/console/rulesets"));
    const running = experiments.experiments.filter((e) => e.status === "running");
    items.push(card("Experiments running", running.length, running.map((e) => e.experiment_id).join(", ") || "none", "/console/experiments"));
  }
  const orders = await get("/orders?limit=100");
  const open = orders.orders.filter((o) => !["completed", "cancelled", "returned", "partially_returned"].includes(o.status));
  items.push(card("Latest orders", orders.orders.length, `of which ${open.length} still open`, "/console/decisions"));
  if (ROLE === "admin") {
    const dead = await get("/deliveries?status=dead&limit=1000");
    items.push(card("Dead deliveries", dead.count, "webhook messages that gave up", "/console/network"));
  }
  fill(cards, items);
};

PAGES.rulesets = async () => {
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

PAGES.ruleset = async () => {
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
function sideBySide(before, after) {
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

PAGES.diff = async () => {
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

PAGES.editor = async () => {
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
    fill(list, doc.rules.map((rule, index) => {
      const item = h("li", {
        draggable: "true", "data-index": index,
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

PAGES.simulate = async () => {
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

// A decision explained: shipments, unfulfilled lines, rules in the order they fired,
// excluded candidates, scores, and the map of candidates and chosen nodes.
function explain(decision, nodes, destination) {
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

PAGES.experiments = async () => {
  const [list, rulesets] = await Promise.all([get("/experiments"), get("/rulesets")]);
  fill("#experiment-ruleset", rulesets.rulesets.map((r) => h("option", { value: r.ruleset }, r.ruleset)));
  $("#experiment-ruleset").value = "sourcing";
  const loadVersions = async () => {
    const ruleset = await versionsOf($("#experiment-ruleset").value);
    versionOptions($("#experiment-champion"), ruleset.versions, ruleset.active_version);
    versionOptions($("#experiment-challenger"), ruleset.versions, ruleset.versions[ruleset.versions.length - 1].version);
  };
  $("#experiment-ruleset").addEventListener("change", loadVersions);
  await loadVersions();
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
    "Experiments"
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
function intervalChart(differences) {
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
function verdict(differences) {
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

function measuresTable(report) {
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

PAGES.experiment = async () => {
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

PAGES.replays = async () => {
  const [list, rulesets] = await Promise.all([get("/replays"), get("/rulesets")]);
  fill("#replay-ruleset", rulesets.rulesets.map((r) => h("option", { value: r.ruleset }, r.ruleset)));
  $("#replay-ruleset").value = QUERY.get("ruleset") || "sourcing";
  const loadVersions = async () => {
    const name = $("#replay-ruleset").value;
    const ruleset = await versionsOf(name);
    versionOptions($("#replay-champion"), ruleset.versions, ruleset.active_version);
    const extra = sessionStorage.getItem(`dom.draft.${name}`) ? [["draft", "the draft in the editor"]] : [];
    versionOptions($("#replay-challenger"), ruleset.versions, ruleset.versions[ruleset.versions.length - 1].version, extra);
    $("#replay-challenger").value = String(ruleset.versions[ruleset.versions.length - 1].version);
  };
  $("#replay-ruleset").addEventListener("change", loadVersions);
  await loadVersions();
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
    "Replays"
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

PAGES.replay = async () => {
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

// A searchable list: the form's fields are the API's filters; "More" follows next_cursor.
function searchable(form, more, target, path, key, columns, caption) {
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
    fill(target, table(columns, rows, caption));
  };
  form.addEventListener("submit", (event) => { event.preventDefault(); load(false); });
  more.addEventListener("click", () => load(true));
  return load(false);
}

PAGES.decisions = async () => {
  const orders = searchable($("#order-filters"), $("#more-orders"), "#orders", "/orders", "orders",
    [
      ["Order", (o) => link(`/console/orders/${encodeURIComponent(o.order_id)}`, o.order_id)],
      ["Status", (o) => badge(o.status)],
      ["Channel", (o) => o.channel],
      ["Received", (o) => when(o.created_at)],
      ["Updated", (o) => when(o.updated_at)],
    ], "Orders");
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
    ], "Decisions")]);
};

function showOrder(order) {
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

async function showDecision(id) {
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

PAGES.decision = async () => {
  const decision = await showDecision(ARGS.decision_id);
  const order = await get(`/orders/${encodeURIComponent(decision.order_id)}`).catch(() => null);
  if (order) showOrder(order);
  else fill("#order", h("p", {}, "This decision's order is not stored (a replayed or simulated decision)."));
};

PAGES.order = async () => {
  const order = await get(`/orders/${encodeURIComponent(ARGS.order_id)}`);
  showOrder(order);
  const latest = order.decisions[order.decisions.length - 1];
  if (latest) await showDecision(latest.decision_id);
  else fill("#explanation", h("p", {}, "The order has no decision yet."));
};

PAGES.network = async () => {
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

const age = (seconds) => (seconds < 120 ? `${Math.round(seconds)} s` : seconds < 7200 ? `${Math.round(seconds / 60)} min` : seconds < 172800 ? `${Math.round(seconds / 3600)} h` : `${Math.round(seconds / 86400)} days`);

function webhookHealth(node) {
  const hook = node.webhook;
  if (!hook) return node.transport ? "broker" : "none";
  const state = hook.disabled_at ? badge("disabled") : hook.failures ? badge(`failing (${hook.failures})`, "warn") : badge("healthy", "good");
  const recover = hook.disabled_at || hook.failures
    ? h("button", { type: "button", class: "quiet", "data-recover": node.node_id, onclick: () => recoverNode(node.node_id) }, "Recover")
    : null;
  return h("span", { class: "actions" }, state, recover);
}

async function recoverNode(nodeId) {
  const since = new Date(Date.now() - 7 * 86400 * 1000).toISOString();
  const done = await guarded("#notice", () => post(`/nodes/${nodeId}/deliveries/recover?since=${encodeURIComponent(since)}`));
  if (done) {
    notify(`Recovering ${nodeId}: ${done.requeued} dead messages of the last 7 days queued again; its endpoint is enabled.`);
    deadDeliveries();
  }
}

async function deadDeliveries() {
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
    "Dead deliveries"
  ), dead.deliveries.length === 50 ? h("p", { class: "hint" }, "The 50 newest; choose a node to see its own.") : null);
}

async function retry(messageId) {
  const done = await guarded("#notice", () => post(`/deliveries/${messageId}/retry`));
  if (!done) return;
  notify(`Message ${messageId}: ${done.status}.`, done.status !== "dead");
  deadDeliveries();
}

// ---- Start ------------------------------------------------------------------------

const start = PAGES[BODY.dataset.page];
if (start) {
  start()
    .then(() => { BODY.dataset.ready = "true"; })
    .catch((error) => {
      BODY.dataset.ready = "error";
      if (error instanceof ApiError) problem(error);
      else fill("#notice", h("div", { class: "notice bad", role: "alert" }, `The page failed: ${error.message}`));
    });
}
