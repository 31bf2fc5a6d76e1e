/* kgc serve: the page. Vanilla JS over the JSON API (/api/...) and /sparql; cytoscape.js draws graphs.
 * Text from the model or the user only ever reaches the page as text nodes (never as HTML). */
(() => {
  "use strict";

  const TOKEN_KEY = "kgc.token";
  const VIEWS = ["extract", "graph", "resolve", "sparql"];
  const PALETTE = ["#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0c8599", "#e67700", "#5c940d",
                   "#1971c2", "#d6336c", "#862e9c", "#087f5b"];
  const UNTYPED = "#868e96";
  const VALUE = "#adb5bd";
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC", sans-serif';
  const PREFIXES = {
    "kgc:": "urn:kgc:", "rdf:": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs:": "http://www.w3.org/2000/01/rdf-schema#", "owl:": "http://www.w3.org/2002/07/owl#",
    "prov:": "http://www.w3.org/ns/prov#", "xsd:": "http://www.w3.org/2001/XMLSchema#",
  };
  const EXAMPLES = {
    en: "Ada Lovelace worked with Charles Babbage in London. Babbage designed the Analytical Engine, " +
        "and Lovelace published the first program for it.",
    zh: "马云在杭州创办了阿里巴巴。李白出生于碎叶城，后来住在长安。",
  };
  const SPARQL_EXAMPLES = [
    ["Relations: head, relation, tail",
     "SELECT DISTINCT ?head ?relation ?tail WHERE {\n  ?h ?p ?t .\n  ?p a kgc:Relation ; rdfs:label ?relation .\n" +
     "  ?h rdfs:label ?head .\n  ?t rdfs:label ?tail .\n} LIMIT 50"],
    ["Entities per type",
     "SELECT ?type (COUNT(DISTINCT ?entity) AS ?entities) WHERE {\n  ?entity kgc:entityType ?type .\n}\n" +
     "GROUP BY ?type ORDER BY DESC(?entities)"],
    ["Documents and their text",
     "SELECT ?document ?text WHERE {\n  GRAPH ?document { ?document a kgc:Document ; kgc:text ?text }\n} LIMIT 20"],
    ["Mentions with their character spans",
     "SELECT ?name ?start ?end WHERE {\n  ?mention kgc:mentionOf ?entity ; kgc:start ?start ; kgc:end ?end .\n" +
     "  ?entity rdfs:label ?name .\n} ORDER BY ?name LIMIT 50"],
    ["Merge decisions",
     "SELECT ?decision ?by ?time WHERE {\n  GRAPH <urn:kgc:graph:resolution> {\n" +
     "    ?d a kgc:Decision ; kgc:decision ?decision ; kgc:decidedBy ?by ; prov:generatedAtTime ?time .\n  }\n" +
     "} ORDER BY DESC(?time)"],
    ["Does the graph hold an entity? (ASK)", "ASK { ?entity a kgc:Entity }"],
  ];

  const state = {
    info: null,
    tasks: [{ task: "NER", labels: ["person", "location", "organization"] }],
    token: null,
    retries: [],
    view: "extract",
    resultGraph: null,
    storeGraph: null,
    storeDirty: true,
    storeLoaded: false,
    proposalsLoaded: false,
    lastResult: null,
    entityRequest: 0,
  };

  // ---------------------------------------------------------------------------------------------- helpers
  const $ = (selector, root = document) => root.querySelector(selector);

  /** An element with properties (class, text, testid, style, on*, attributes) and children (nodes or text). */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "testid") node.dataset.testid = value;
      else if (key === "style") for (const [p, v] of Object.entries(value)) node.style.setProperty(p, v);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child == null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const colors = new Map();
  /** One colour per label (entity type), the same everywhere on the page. */
  function colorFor(label) {
    if (label == null || label === "" || label === "entity") return UNTYPED;
    const key = String(label);
    if (!colors.has(key)) colors.set(key, PALETTE[colors.size % PALETTE.length]);
    return colors.get(key);
  }

  /** How names are compared (as the graph does): NFKC, case-folded, spaces collapsed, no punctuation at the ends. */
  function normalizeName(text) {
    return String(text).normalize("NFKC").toLowerCase().split(/\s+/).filter(Boolean).join(" ")
      .replace(/^\p{P}+|\p{P}+$/gu, "").trim();
  }

  const plural = (n, one, many) => `${n} ${n === 1 ? one : (many || one + "s")}`;
  const hasCJK = (text) => /[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]/.test(text);
  const isEntityIri = (iri) => /^urn:kgc:entity:[0-9a-f]{24}$/.test(iri);

  function compactIri(iri) {
    for (const [prefix, full] of Object.entries(PREFIXES)) {
      if (iri.startsWith(full) && iri.length > full.length) {
        const rest = iri.slice(full.length);
        if (prefix !== "kgc:" || /^[\w.-]+$/.test(rest)) return prefix + rest;
      }
    }
    return iri;
  }

  /** Text with character spans (code-point offsets, as the server counts) marked. */
  function markedText(text, spans, offset = 0, markProps = () => ({})) {
    const chars = Array.from(text);
    const out = [];
    let at = 0;
    const sorted = spans.map((s) => ({ ...s, start: s.start - offset, end: s.end - offset }))
      .filter((s) => s.end > 0 && s.start < chars.length && s.end > s.start)
      .sort((a, b) => a.start - b.start || b.end - a.end);
    for (const span of sorted) {
      const start = Math.max(span.start, 0);
      const end = Math.min(span.end, chars.length);
      if (start < at) continue;
      if (start > at) out.push(chars.slice(at, start).join(""));
      out.push(el("mark", markProps(span), chars.slice(start, end).join("")));
      at = end;
    }
    if (at < chars.length) out.push(chars.slice(at).join(""));
    return out;
  }

  // ---------------------------------------------------------------------------------------------- errors, token
  function showError(message) {
    const banner = $("#banner");
    $(".banner-text", banner).textContent = message;
    banner.hidden = false;
  }

  function clearError() {
    $("#banner").hidden = true;
  }

  function setServer(kind, text, title) {
    const box = $("#server-info") || $('[data-testid="server-info"]');
    box.classList.toggle("ok", kind === "ok");
    box.classList.toggle("down", kind === "down");
    $(".server-text", box).textContent = text;
    if (title) box.title = title;
    $("#forget-token").hidden = !state.token;
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function errorMessage(response) {
    const body = await response.text().catch(() => "");
    try {
      const data = JSON.parse(body);
      if (data && typeof data.error === "string") return data.error;
    } catch (_) { /* not JSON */ }
    return body.trim() ? body.trim().slice(0, 300) : `the server answered ${response.status} ${response.statusText}`;
  }

  /** A call to the server: JSON in and out; errors become ApiError with the server's message. */
  async function api(path, options = {}) {
    const headers = { Accept: options.accept || "application/json" };
    let body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    } else if (options.body !== undefined) {
      headers["Content-Type"] = options.contentType;
      body = options.body;
    }
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    let response;
    try {
      response = await fetch(path, { method: options.method || (body === undefined ? "GET" : "POST"), headers, body });
    } catch (_) {
      setServer("down", "not answering");
      throw new ApiError(0, "the server did not answer (is kgc serve still running?)");
    }
    if (!response.ok) {
      let message = await errorMessage(response);
      if (response.status === 503 && response.headers.get("Retry-After")) {
        message += ` (the server asks to retry in ${response.headers.get("Retry-After")} s)`;
      }
      throw new ApiError(response.status, message);
    }
    if (options.raw) return response;
    const kind = response.headers.get("Content-Type") || "";
    return kind.includes("json") ? response.json() : response.text();
  }

  /** Run an action; a 401 asks for the token (and runs the action again once given); other errors go to the banner. */
  async function attempt(what, action) {
    try {
      return await action();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        askToken(action, what);
        return undefined;
      }
      const message = error instanceof ApiError ? error.message : `${error && error.message ? error.message : error}`;
      showError(what ? `${what}: ${message}` : message);
      if (!(error instanceof ApiError)) console.error(error);
      return undefined;
    }
  }

  function askToken(retry, what) {
    const form = $("#token-form");
    const label = $(".token-label", form);
    label.textContent = state.token ? "The server did not accept this token; enter the right one."
                                    : "This server needs an access token.";
    if (retry && !state.retries.some((r) => r.what === what)) state.retries.push({ what, retry });
    clearError();
    form.hidden = false;
    setServer("down", "needs a token");
    $("#token-input").focus();
  }

  function useToken(token) {
    state.token = token || null;
    if (state.token) sessionStorage.setItem(TOKEN_KEY, state.token);
    else sessionStorage.removeItem(TOKEN_KEY);
    $("#forget-token").hidden = !state.token;
  }

  function setupToken() {
    const fromStorage = sessionStorage.getItem(TOKEN_KEY);
    const hash = new URLSearchParams(location.hash.replace(/^#/, ""));
    if (hash.get("token")) {
      useToken(hash.get("token"));
      hash.delete("token");
      const rest = hash.toString();
      history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
    } else if (fromStorage) {
      state.token = fromStorage;
    }
    $("#token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("#token-input").value.trim();
      if (!value) return;
      useToken(value);
      $("#token-input").value = "";
      $("#token-form").hidden = true;
      const retries = state.retries.splice(0);
      for (const { what, retry } of retries) attempt(what, retry);
    });
    $("#forget-token").addEventListener("click", () => {
      useToken(null);
      setServer("", "token forgotten");
    });
  }

  // ---------------------------------------------------------------------------------------------- views
  function viewFromHash() {
    const hash = location.hash.replace(/^#/, "");
    const params = new URLSearchParams(hash);
    const name = params.get("view") || hash;
    return VIEWS.includes(name) ? name : null;
  }

  function showView(name, { updateHash = true } = {}) {
    state.view = name;
    for (const view of VIEWS) {
      const tab = $(`#tab-${view}`);
      const selected = view === name;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(`#view-${view}`).hidden = !selected;
    }
    if (updateHash) history.replaceState(null, "", `#${name}`);
    if (name === "graph") openGraphView();
    if (name === "resolve" && !state.proposalsLoaded) loadProposals();
    if (name === "extract" && state.resultGraph) state.resultGraph.resize();
  }

  function setupTabs() {
    const tabs = VIEWS.map((v) => $(`#tab-${v}`));
    tabs.forEach((tab, i) => {
      tab.addEventListener("click", () => showView(tab.dataset.view));
      tab.addEventListener("keydown", (event) => {
        const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
        if (!step) return;
        const next = tabs[(i + step + tabs.length) % tabs.length];
        next.focus();
        showView(next.dataset.view);
      });
    });
    window.addEventListener("hashchange", () => {
      const name = viewFromHash();
      if (name && name !== state.view) showView(name, { updateHash: false });
    });
  }

  // ---------------------------------------------------------------------------------------------- server info
  async function loadInfo() {
    const info = await api("/api/info");
    state.info = info;
    const backend = info.backend || {};
    const model = String(backend.model || "").split(/[\\/]/).pop();
    const short = [backend.backend, model].filter(Boolean).join(" · ");
    setServer("ok", `${short || "connected"}${backend.lora ? " + adapter" : ""}`,
              `kgc ${info.version}\nbackend: ${backend.backend || "?"}\nmodel: ${backend.model || "?"}` +
              `${backend.lora ? `\nadapter: ${backend.lora}` : ""}\ngraph: ${info.store}`);
    $("#token-form").hidden = true;
    renderPresets();
    renderTasks();
    renderExports();
  }

  // ---------------------------------------------------------------------------------------------- extract: form
  function taskSummary(name) {
    const task = (state.info ? state.info.tasks : []).find((t) => t.name === name);
    return task ? task.summary : "";
  }

  function renderPresets() {
    const select = $("#preset-select");
    select.replaceChildren(el("option", { value: "" }, "Custom labels"));
    (state.info.presets || []).forEach((preset, i) => {
      const tasks = preset.tasks.map((t) => t.task).join(" + ");
      select.append(el("option", { value: String(i) }, `${preset.name}`, tasks && !preset.name.includes(tasks) ? ` · ${tasks}` : ""));
    });
    select.value = "";
  }

  function applyPreset(index) {
    const preset = state.info.presets[index];
    if (!preset) return;
    state.tasks = preset.tasks.map((t) => ({ task: t.task, labels: [...(t.labels || [])] }));
    if (preset.language) $("#language-select").value = preset.language;
    renderTasks();
  }

  function markCustom() {
    $("#preset-select").value = "";
  }

  function splitLabels(text) {
    return text.split(/[,，、;；\n]/).map((s) => s.trim()).filter(Boolean);
  }

  function addLabels(task, text) {
    const labels = splitLabels(text);
    let added = false;
    for (const label of labels) {
      if (!task.labels.includes(label)) {
        task.labels.push(label);
        added = true;
      }
    }
    if (added) markCustom();
    return added;
  }

  function renderTasks(focusTask) {
    const list = $("#task-list");
    list.replaceChildren();
    state.tasks.forEach((task) => {
      const input = el("input", {
        type: "text", class: "label-input", testid: `label-input-${task.task}`,
        "aria-label": `Add a label to ${task.task} (Enter or comma adds it)`,
        placeholder: task.labels.length ? "add label…" : (/^EE/.test(task.task) ? "type:role1/role2" : "add a label…"),
      });
      const commit = () => {
        if (input.value.trim() && addLabels(task, input.value)) {
          renderTasks(task.task);
        } else {
          input.value = "";
        }
      };
      input.addEventListener("keydown", (event) => {
        if ((event.key === "Enter" || event.key === "," || event.key === "，") && !event.isComposing) {
          event.preventDefault();
          if (input.value.trim()) commit();
        } else if (event.key === "Backspace" && !input.value && task.labels.length) {
          task.labels.pop();
          markCustom();
          renderTasks(task.task);
        }
      });
      input.addEventListener("input", () => {
        if (/[,，、;；\n]/.test(input.value)) commit();
      });
      input.addEventListener("blur", () => {
        if (input.value.trim()) {
          addLabels(task, input.value);
          input.value = "";
          // re-render after the focus settles, so a click on another control still lands
          setTimeout(() => renderTasks(), 0);
        }
      });
      const chips = task.labels.map((label) => el("span", {
        class: "chip", testid: "label-chip", "data-task": task.task, "data-label": label,
        style: { "--c": colorFor(label) },
      }, el("span", { class: "chip-text", title: label }, label), el("button", {
        type: "button", "aria-label": `Remove label ${label} from ${task.task}`, title: "Remove",
        onclick: () => {
          task.labels = task.labels.filter((l) => l !== label);
          markCustom();
          renderTasks(task.task);
        },
      }, "×")));
      const box = el("div", { class: "chips", onclick: (event) => { if (event.target === box) input.focus(); } }, chips, input);
      list.append(el("div", { class: "task-card", testid: `task-${task.task}`, "data-task": task.task },
        el("div", { class: "task-card-head" },
          el("span", { class: "task-name" }, task.task),
          el("span", { class: "task-summary", title: taskSummary(task.task) }, taskSummary(task.task)),
          el("button", {
            type: "button", class: "icon-button", "aria-label": `Remove task ${task.task}`, title: "Remove task",
            testid: `remove-task-${task.task}`,
            onclick: () => {
              state.tasks = state.tasks.filter((t) => t !== task);
              markCustom();
              renderTasks();
            },
          }, "×")),
        box));
      if (focusTask === task.task) setTimeout(() => input.focus(), 0);
    });
    if (!state.tasks.length) {
      list.append(el("p", { class: "muted small" }, "No task yet: add one below, or pick a preset."));
    }
    renderAddTask();
  }

  function renderAddTask() {
    const select = $("#add-task");
    const used = new Set(state.tasks.map((t) => t.task));
    const tasks = (state.info ? state.info.tasks : []).filter((t) => !used.has(t.name));
    select.replaceChildren(el("option", { value: "" }, state.tasks.length ? "+ Combine with another task…" : "+ Add a task…"),
      tasks.map((t) => el("option", { value: t.name }, `${t.name} · ${t.summary}`)));
    select.disabled = !tasks.length;
    select.value = "";
  }

  function addTask(name) {
    if (!name || state.tasks.some((t) => t.task === name)) return;
    // mentions first: a relation task after NER gets the NER types in the graph
    if (name === "NER") state.tasks.unshift({ task: name, labels: [] });
    else state.tasks.push({ task: name, labels: [] });
    markCustom();
    renderTasks(name);
  }

  function setBusy(button, busy, text) {
    button.setAttribute("aria-busy", String(busy));
    button.disabled = busy;
    if (text) $(".button-text", button).textContent = text;
  }

  let extracting = false;
  async function extract() {
    if (extracting) return;
    clearError();
    const text = $("#text-input").value;
    for (const input of document.querySelectorAll(".label-input")) {
      const task = state.tasks.find((t) => t.task === input.dataset.testid.replace("label-input-", ""));
      if (task && input.value.trim()) addLabels(task, input.value);
    }
    renderTasks();
    if (!text.trim()) {
      showError("Type or paste a text first.");
      $("#text-input").focus();
      return;
    }
    if (!state.tasks.length) {
      showError("Choose at least one task (a preset, or “Add a task”).");
      return;
    }
    const empty = state.tasks.find((t) => !t.labels.length);
    if (empty) {
      showError(`Give ${empty.task} at least one label.`);
      const input = $(`[data-testid="label-input-${empty.task}"]`);
      if (input) input.focus();
      return;
    }
    const request = {
      text, language: $("#language-select").value, ingest: $("#ingest").checked,
      tasks: state.tasks.map((t) => ({ task: t.task, labels: [...t.labels] })),
    };
    const button = $("#extract-button");
    const status = $("#extract-status");
    const started = Date.now();
    extracting = true;
    setBusy(button, true, "Extracting…");
    status.textContent = "The model is reading the text…";
    const timer = setInterval(() => {
      $(".button-text", button).textContent = `Extracting… ${Math.round((Date.now() - started) / 1000)} s`;
    }, 1000);
    try {
      const data = await attempt("Extraction failed", async () => {
        const answer = await api("/api/extract", { json: request });
        renderResult(answer, request);
        return answer;
      });
      if (data) {
        const ingested = data.ingested;
        if (ingested) state.storeDirty = true;
        status.textContent = `Done in ${data.seconds} s` + (ingested ? ` · added to the graph (${ingested.added} added, ` +
          `${ingested.replaced} replaced, ${ingested.unchanged} unchanged)` : "");
      } else {
        status.textContent = "";
      }
    } finally {
      clearInterval(timer);
      extracting = false;
      setBusy(button, false, "Extract");
    }
  }

  // ---------------------------------------------------------------------------------------------- extract: result
  /** How a task's answer reads: mentions, relations, events or attributes (by task name, else by its shape). */
  function shapeOf(task, result) {
    const known = { NER: "mentions", RE: "relations", SPO: "relations", EE: "events", EET: "events", EEA: "events",
                    KG: "attributes" };
    if (known[task]) return known[task];
    const values = Object.values(result || {});
    const items = values.flatMap((v) => (Array.isArray(v) ? v : []));
    if (values.some((v) => v && !Array.isArray(v) && typeof v === "object")) return "attributes";
    if (items.some((i) => i && typeof i === "object" && "trigger" in i)) return "events";
    if (items.some((i) => i && typeof i === "object" && ("head" in i || "subject" in i))) return "relations";
    if (items.every((i) => typeof i === "string")) return "mentions";
    return "triples";
  }

  const asList = (value) => (Array.isArray(value) ? value : value == null ? [] : [value]);
  const isName = (value) => typeof value === "string" && value.trim() !== "";

  /** The nodes and edges of one document's result: entities (typed by mention tasks), events, values. */
  function buildResultGraph(doc, order) {
    const nodes = new Map();
    const edges = new Map();
    const types = new Map();
    const shapes = Object.fromEntries(order.map((task) => [task, shapeOf(task, (doc.results[task] || {}).result)]));
    const node = (name, type, kind = "entity") => {
      const key = kind === "event" ? name : `${kind}:${normalizeName(name)}`;
      if (!nodes.has(key)) {
        const color = kind === "value" ? VALUE : colorFor(type);
        nodes.set(key, { id: key, label: kind === "event" ? type : String(name).trim(), type: type || "entity", kind, color });
      }
      return key;
    };
    const entity = (name) => node(name, types.get(normalizeName(name)) || "entity");
    const edge = (source, label, target, task) => {
      const id = `${source}\u0001${label}\u0001${target}`;
      if (!edges.has(id)) edges.set(id, { id, source, target, label, task, support: 1 });
    };
    for (const task of order) {
      const result = (doc.results[task] || {}).result;
      if (shapes[task] !== "mentions" || !result) continue;
      for (const [label, names] of Object.entries(result)) {
        for (const name of asList(names).filter(isName)) {
          if (!types.has(normalizeName(name))) types.set(normalizeName(name), label);
          node(name, types.get(normalizeName(name)));
        }
      }
    }
    for (const task of order) {
      const answer = doc.results[task] || {};
      const result = answer.result || {};
      const shape = shapes[task];
      if (shape === "relations") {
        for (const [relation, pairs] of Object.entries(result)) {
          for (const pair of asList(pairs)) {
            if (!pair || typeof pair !== "object") continue;
            const head = pair.head ?? pair.subject;
            const tail = pair.tail ?? pair.object;
            if (isName(head) && isName(tail)) edge(entity(head), relation, entity(tail), task);
          }
        }
      } else if (shape === "events") {
        for (const [type, events] of Object.entries(result)) {
          for (const event of asList(events)) {
            if (!event || typeof event !== "object") continue;
            const trigger = isName(event.trigger) ? event.trigger.trim() : "";
            const id = node(`event:${type}:${normalizeName(trigger)}`, `${type}${trigger ? ` · ${trigger}` : ""}`, "event");
            for (const [role, values] of Object.entries(event.arguments || {})) {
              for (const value of asList(values).filter(isName)) edge(id, role, entity(value), task);
            }
          }
        }
      } else if (shape === "attributes") {
        for (const [type, entities] of Object.entries(result)) {
          if (!entities || typeof entities !== "object" || Array.isArray(entities)) continue;
          for (const [name, attributes] of Object.entries(entities)) {
            if (!isName(name)) continue;
            if (!types.has(normalizeName(name))) types.set(normalizeName(name), type);
            const id = entity(name);
            for (const [attribute, values] of Object.entries(attributes || {})) {
              for (const value of asList(values).filter(isName)) edge(id, attribute, node(value, "value", "value"), task);
            }
          }
        }
      } else if (shape === "triples") {
        for (const [head, relation, tail] of answer.triples || []) {
          if (isName(head) && isName(tail)) edge(entity(head), relation, entity(tail), task);
        }
      }
    }
    return { nodes: [...nodes.values()], edges: [...edges.values()], shapes };
  }

  /** The spans to mark: mention tasks first, then the others where they do not overlap. */
  function chooseSpans(doc, order, shapes) {
    const length = Array.from(doc.text).length;
    const chosen = [];
    const ranked = [...order].sort((a, b) => (shapes[a] === "mentions" ? 0 : 1) - (shapes[b] === "mentions" ? 0 : 1));
    for (const task of ranked) {
      const spans = ((doc.results[task] || {}).spans || [])
        .filter((s) => Number.isInteger(s.start) && Number.isInteger(s.end) && s.start >= 0 && s.end <= length && s.end > s.start)
        .sort((a, b) => a.start - b.start || b.end - a.end);
      for (const span of spans) {
        if (!chosen.some((c) => span.start < c.end && c.start < span.end)) chosen.push({ ...span, task });
      }
    }
    return chosen.sort((a, b) => a.start - b.start);
  }

  function renderResult(data, request) {
    const doc = (data.documents || [])[0];
    if (!doc) throw new Error("the server answered without a document");
    const order = request.tasks.map((t) => t.task).filter((t) => doc.results[t]);
    for (const t of request.tasks) for (const label of t.labels) colorFor(label);
    state.lastResult = { data, request };
    $("#results-empty").hidden = true;
    $("#results-body").hidden = false;

    const graph = buildResultGraph(doc, order);
    const spans = chooseSpans(doc, order, graph.shapes);

    // the text, with mentions marked
    const box = $("#annotated-text");
    box.lang = hasCJK(doc.text) ? "zh" : "en";
    box.replaceChildren(...markedText(doc.text, spans, 0, (span) => ({
      class: "mention", testid: "mention", "data-label": span.label, "data-task": span.task,
      "data-key": normalizeName(span.text), title: `${span.label} (${span.task})`, style: { "--c": colorFor(span.label) },
    })));
    if (!spans.length) box.append(el("div", { class: "muted small" }, "No mentions found in this text."));

    // the legend: every label asked of a mention task, and every label marked
    const counts = new Map();
    for (const task of order) {
      if (graph.shapes[task] === "mentions") for (const label of request.tasks.find((t) => t.task === task).labels) counts.set(label, 0);
    }
    for (const span of spans) counts.set(span.label, (counts.get(span.label) || 0) + 1);
    $("#legend").replaceChildren(...[...counts].map(([label, n]) => el("span", {
      class: "legend-item", testid: "legend-item", "data-label": label, style: { "--c": colorFor(label), opacity: n ? 1 : 0.6 },
    }, el("span", { class: "swatch" }), `${label}`, el("span", { class: "badge" }, String(n)))));

    // triples, each once per task
    const rows = [];
    for (const task of order) {
      const seen = new Set();
      for (const triple of doc.results[task].triples || []) {
        const key = JSON.stringify(triple);
        if (seen.has(key)) continue;
        seen.add(key);
        rows.push(el("tr", { testid: "triple-row" },
          el("td", {}, String(triple[0])),
          el("td", { class: `rel${graph.shapes[task] === "mentions" ? " type" : ""}` }, String(triple[1])),
          el("td", {}, String(triple[2])),
          el("td", { class: "task" }, task)));
      }
    }
    $("#triples-body").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No triples."))]));
    $("#triple-count").textContent = String(rows.length);

    // each task's answer: fine, or not readable; the raw answer behind a toggle
    $("#answers").replaceChildren(...order.map((task) => {
      const answer = doc.results[task];
      const failed = answer.parse_failures || 0;
      const raw = asList(answer.raw).map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n\n");
      return el("li", { testid: `answer-${task}`, "data-failed": failed ? "true" : "false" },
        el("strong", {}, task),
        el("span", { class: `state ${failed ? "failed" : "ok"}`, testid: failed ? "parse-failure" : null },
          failed ? `the model's answer could not be read (${plural(failed, "parse failure")})` : "answer read"),
        el("span", { class: "muted small" }, plural((answer.triples || []).length, "triple")),
        el("details", { testid: "raw-toggle" }, el("summary", {}, "raw"), el("pre", { class: "raw" }, raw || "(empty)")));
    }));

    const failures = data.parse_failures || 0;
    $("#result-summary").replaceChildren(
      `${plural(spans.length, "mention")} · ${plural(rows.length, "triple")} · ${data.seconds} s`,
      failures ? el("span", { class: "state failed", style: { "margin-left": "8px" } }, plural(failures, "parse failure")) : "",
      data.ingested ? " · added to the graph" : "");

    drawResultGraph(graph);
  }

  // ---------------------------------------------------------------------------------------------- cytoscape
  function graphStyle() {
    return [
      { selector: "node", style: {
        "background-color": "data(color)", label: "data(label)", "font-family": FONT, "font-size": 12, color: "#172033",
        "text-valign": "bottom", "text-margin-y": 5, "text-outline-color": "#fbfcfe", "text-outline-width": 2.5,
        width: 28, height: 28, "border-width": 2, "border-color": "#ffffff", "text-wrap": "ellipsis", "text-max-width": 150,
        "overlay-opacity": 0 } },
      { selector: 'node[kind = "event"]', style: { shape: "round-diamond", width: 34, height: 34, "background-color": "#495057" } },
      { selector: 'node[kind = "value"]', style: { shape: "round-rectangle", width: 24, height: 16, "font-size": 11, color: "#3a4459" } },
      { selector: "node:selected, node.focus", style: { "border-color": "#111a2e", "border-width": 3.5, width: 36, height: 36,
        "font-weight": 700 } },
      { selector: "edge", style: {
        width: "mapData(support, 1, 10, 1.6, 6)", "line-color": "#9aa7bd", "target-arrow-color": "#9aa7bd",
        "target-arrow-shape": "triangle", "arrow-scale": 0.9, "curve-style": "bezier", label: "data(label)",
        "font-family": FONT, "font-size": 10.5, color: "#2f3a52", "text-rotation": "autorotate",
        "text-background-color": "#ffffff", "text-background-opacity": 0.92, "text-background-padding": 2,
        "text-background-shape": "roundrectangle", "overlay-opacity": 0 } },
      { selector: "edge:selected, edge.focus", style: { "line-color": "#3b5bdb", "target-arrow-color": "#3b5bdb", color: "#2f49b8" } },
      { selector: ".faded", style: { opacity: 0.28 } },
    ];
  }

  function makeGraph(container) {
    return cytoscape({
      container, style: graphStyle(), minZoom: 0.15, maxZoom: 3, boxSelectionEnabled: false,
      elements: [],
    });
  }

  function layout(cy) {
    if (!cy.nodes().length) return;
    const options = cy.edges().length
      ? { name: "cose", animate: false, padding: 36, randomize: true, nodeRepulsion: () => 12000,
          idealEdgeLength: () => 110, edgeElasticity: () => 80, nodeOverlap: 24, componentSpacing: 70, gravity: 0.6,
          numIter: 1200, fit: true }
      : { name: "grid", padding: 48, avoidOverlap: true, fit: true };
    cy.layout(options).run();
    if (cy.zoom() > 1.35) {
      cy.zoom(1.35);
      cy.center();
    }
  }

  function drawResultGraph(graph) {
    const box = $("#result-graph");
    if (!state.resultGraph) {
      state.resultGraph = makeGraph(box);
      state.resultGraph.on("tap", "node", (event) => pulseMentions(event.target));
    }
    const cy = state.resultGraph;
    cy.elements().remove();
    cy.add([...graph.nodes.map((data) => ({ group: "nodes", data })), ...graph.edges.map((data) => ({ group: "edges", data }))]);
    cy.resize();
    layout(cy);
    $("#result-graph-empty").hidden = graph.nodes.length > 0;
  }

  function pulseMentions(node) {
    const key = node.data("id").replace(/^entity:/, "");
    for (const mark of document.querySelectorAll("#annotated-text mark")) {
      mark.classList.toggle("pulse", mark.dataset.key === key);
    }
  }

  // ---------------------------------------------------------------------------------------------- graph view
  function openGraphView() {
    if (!state.storeGraph) {
      state.storeGraph = makeGraph($("#store-graph"));
      state.storeGraph.on("tap", "node", (event) => selectNode(event.target.id()));
      state.storeGraph.on("tap", (event) => {
        if (event.target === state.storeGraph) state.storeGraph.elements().removeClass("faded");
      });
    }
    state.storeGraph.resize();
    if (state.storeDirty || !state.storeLoaded) loadStoreGraph();
  }

  function renderStats(stats) {
    const items = [["documents", "document"], ["entities", "entity", "entities"], ["relations", "relation"],
                   ["events", "event"], ["mentions", "mention"]];
    $("#graph-stats").replaceChildren(...items.map(([key, one, many]) => el("span", { class: "stat", testid: `stat-${key}` },
      el("strong", {}, String(stats[key] ?? 0)), (stats[key] === 1 ? one : many || `${one}s`))));
  }

  function storeNodeData(node) {
    return { id: node.id, label: node.label || node.type || compactIri(node.id), type: node.type || "entity",
             kind: node.kind || "entity", color: node.kind === "event" ? "#495057" : colorFor(node.type) };
  }

  function storeEdgeData(edge) {
    return { id: `${edge.source}|${edge.label}|${edge.target}`, source: edge.source, target: edge.target, label: edge.label,
             support: edge.support || 1 };
  }

  function renderStoreLegend() {
    const cy = state.storeGraph;
    const types = new Map();
    cy.nodes('[kind = "entity"]').forEach((n) => types.set(n.data("type"), (types.get(n.data("type")) || 0) + 1));
    $("#store-legend").replaceChildren(...[...types].sort((a, b) => b[1] - a[1]).slice(0, 10).map(([type, n]) =>
      el("span", { class: "legend-item", style: { "--c": colorFor(type) } }, el("span", { class: "swatch round" }), `${type}`,
        el("span", { class: "badge" }, String(n)))));
    $("#store-legend").hidden = types.size === 0;
  }

  async function loadStoreGraph() {
    await attempt("Could not load the graph", async () => {
      const [stats, sub] = await Promise.all([api("/api/graph/stats"), api("/api/graph/subgraph?limit=300")]);
      state.storeDirty = false;
      state.storeLoaded = true;
      renderStats(stats);
      const cy = state.storeGraph;
      cy.elements().remove();
      cy.add([...sub.nodes.map((n) => ({ group: "nodes", data: storeNodeData(n) })),
              ...sub.edges.map((e) => ({ group: "edges", data: storeEdgeData(e) }))]);
      cy.resize();
      layout(cy);
      renderStoreLegend();
      const empty = $("#store-graph-empty");
      empty.hidden = sub.nodes.length > 0;
      empty.textContent = stats.entities
        ? `${plural(stats.entities, "entity", "entities")} but no relation between them yet: search for one above, ` +
          "or extract with a relation task and “Add to graph”."
        : "The graph is empty. Extract a text with “Add to graph” ticked, and it shows here.";
    });
  }

  function placeAround(cy, center, ids) {
    const c = center.position();
    const fresh = ids.filter((id) => cy.$id(id).length && cy.$id(id).data("placed") !== true);
    const radius = 130 + 6 * fresh.length;
    fresh.forEach((id, i) => {
      const angle = (2 * Math.PI * i) / Math.max(fresh.length, 1) - Math.PI / 2;
      cy.$id(id).position({ x: c.x + radius * Math.cos(angle), y: c.y + radius * Math.sin(angle) });
    });
  }

  /** Add a node's neighbourhood (from /api/graph/subgraph?iri=) around it, and centre on it. */
  function expandAround(iri, sub) {
    const cy = state.storeGraph;
    const newNodes = [];
    let center = cy.$id(iri);
    if (!center.length) {
      const data = sub.nodes.find((n) => n.id === iri);
      if (!data) return;
      const extent = cy.extent();
      center = cy.add({ group: "nodes", data: storeNodeData(data),
                        position: { x: (extent.x1 + extent.x2) / 2, y: (extent.y1 + extent.y2) / 2 } });
    }
    for (const n of sub.nodes) {
      if (!cy.$id(n.id).length) {
        cy.add({ group: "nodes", data: storeNodeData(n) });
        newNodes.push(n.id);
      }
    }
    for (const e of sub.edges) {
      const data = storeEdgeData(e);
      if (!cy.$id(data.id).length && cy.$id(data.source).length && cy.$id(data.target).length) cy.add({ group: "edges", data });
    }
    placeAround(cy, center, newNodes);
    cy.elements().removeClass("focus faded");
    const hood = center.closedNeighborhood();
    cy.elements().not(hood).addClass("faded");
    center.addClass("focus");
    hood.edges().addClass("focus");
    $("#store-graph-empty").hidden = true;
    renderStoreLegend();
    cy.stop();
    cy.animate({ center: { eles: center }, zoom: Math.max(Math.min(cy.zoom(), 1.5), 0.6) }, { duration: 250 });
  }

  async function selectNode(id) {
    const cy = state.storeGraph;
    const node = cy.$id(id);
    if (!isEntityIri(id)) {
      renderEventPanel(node);
      cy.elements().removeClass("focus faded");
      node.addClass("focus");
      return;
    }
    await selectEntity(id);
  }

  async function selectEntity(iri) {
    const request = ++state.entityRequest;
    const panel = $("#entity-panel");
    panel.setAttribute("aria-busy", "true");
    await attempt("Could not load the entity", async () => {
      const q = encodeURIComponent(iri);
      const [entity, sub] = await Promise.all([api(`/api/graph/entity?iri=${q}&facts=50&sources=3`),
                                               api(`/api/graph/subgraph?iri=${q}&limit=100`)]);
      if (request !== state.entityRequest) return;
      renderEntityPanel(entity);
      expandAround(iri, sub);
    });
    panel.setAttribute("aria-busy", "false");
  }

  function sentenceItem(source) {
    const sentence = source.sentence || { start: 0, end: 0, text: "" };
    return el("li", { class: "sentence", testid: "sentence", title: source.document },
      markedText(sentence.text, source.spans || [], sentence.start, () => ({ testid: "sentence-span" })));
  }

  function typePill(type) {
    return el("span", { class: "type-pill", style: { "--c": colorFor(type) } }, el("span", { class: "swatch round" }), type || "entity");
  }

  function renderEntityPanel(entity) {
    const panel = $("#entity-panel");
    const facts = entity.facts || [];
    const meta = ["mentioned in " + plural(entity.documents || 0, "document")];
    const aliases = (entity.labels || []).filter((l) => l !== entity.label);
    const content = [
      el("div", { class: "entity-head" }, el("h3", { testid: "entity-name" }, entity.label), typePill(entity.type)),
      el("div", { class: "entity-meta" }, meta.join(" · "),
        aliases.length ? el("div", {}, "also called: ", aliases.join(", ")) : null,
        (entity.same_as || []).length ? el("div", {}, "merged with: ",
          entity.same_as.map((s, i) => [i ? ", " : "", el("button", { type: "button", class: "link", onclick: () => selectEntity(s.iri) }, s.label || s.iri)])) : null,
        entity.canonical && entity.canonical !== entity.iri ? el("div", {}, "canonical: ",
          el("button", { type: "button", class: "link", onclick: () => selectEntity(entity.canonical) }, compactIri(entity.canonical))) : null,
        el("div", {}, el("code", { title: "IRI" }, entity.iri))),
      el("div", { class: "section-title" }, `Facts (${entity.fact_count ?? facts.length})`,
        entity.fact_count > facts.length ? ` · the ${facts.length} best supported` : ""),
    ];
    if (facts.length) {
      content.push(el("ul", { class: "facts", testid: "facts" }, facts.map((fact) => {
        const other = fact.type && isEntityIri(fact.value)
          ? el("button", { type: "button", class: "link", testid: "fact-other", onclick: () => selectEntity(fact.value) }, fact.label || fact.value)
          : el("span", { testid: "fact-other" }, fact.label || (fact.value != null ? String(fact.value) : ""));
        return el("li", { class: "fact", testid: "fact" },
          el("div", { class: "fact-line" },
            el("span", { class: "dir", title: fact.direction === "in" ? "points at this entity" : "from this entity" },
              fact.direction === "in" ? "←" : "→"),
            el("span", { class: "pred", testid: "fact-predicate" }, fact.predicate), other,
            fact.type ? typePill(fact.type) : null,
            el("span", { class: "support", testid: "fact-support", title: "documents that state it" }, `support ${fact.support}`)),
          (fact.sources || []).length ? el("ul", { class: "sentences" }, fact.sources.map(sentenceItem)) : null);
      })));
    } else {
      content.push(el("p", { class: "muted small", testid: "no-facts" }, "No facts yet: no relation links this entity."));
    }
    if ((entity.mentions || []).length) {
      content.push(el("div", { class: "section-title" }, "Mentioned in"),
        el("ul", { class: "sentences", testid: "mentions" }, entity.mentions.map(sentenceItem)));
    }
    panel.replaceChildren(...content);
    panel.scrollTop = 0;
  }

  function renderEventPanel(node) {
    const cy = state.storeGraph;
    const edges = node.connectedEdges();
    $("#entity-panel").replaceChildren(
      el("div", { class: "entity-head" }, el("h3", { testid: "entity-name" }, node.data("label")), el("span", { class: "type-pill" }, "event")),
      el("div", { class: "entity-meta" }, el("code", {}, node.id())),
      el("div", { class: "section-title" }, `Roles (${edges.length})`),
      el("ul", { class: "facts", testid: "facts" }, edges.map((edge) => {
        const otherId = edge.source().id() === node.id() ? edge.target().id() : edge.source().id();
        const other = cy.$id(otherId);
        return el("li", { class: "fact", testid: "fact" }, el("div", { class: "fact-line" },
          el("span", { class: "pred" }, edge.data("label")),
          isEntityIri(otherId) ? el("button", { type: "button", class: "link", onclick: () => selectEntity(otherId) }, other.data("label"))
                               : el("span", {}, other.data("label")),
          el("span", { class: "support" }, `support ${edge.data("support")}`)));
      })));
  }

  function setupSearch() {
    const input = $("#graph-search");
    const list = $("#search-results");
    let timer = null;
    let asked = 0;
    const close = () => { list.hidden = true; };
    const pick = (hit) => {
      close();
      input.value = hit.label;
      selectEntity(hit.entity);
    };
    const search = async () => {
      const q = input.value.trim();
      if (!q) { close(); return; }
      const ticket = ++asked;
      await attempt("Search failed", async () => {
        const hits = await api(`/api/graph/search?q=${encodeURIComponent(q)}&limit=12`);
        if (ticket !== asked) return;
        list.replaceChildren(...(hits.length ? hits.map((hit) => el("li", { role: "option" }, el("button", {
          type: "button", testid: "search-hit", "data-iri": hit.entity, onclick: () => pick(hit),
        }, el("span", { class: "swatch round", style: { "--c": colorFor(hit.type) } }), hit.label,
        el("span", { class: "meta" }, `${hit.type} · ${plural(hit.documents, "doc")}`)))) : [el("li", { class: "none" }, `No entity named like “${q}”.`)]));
        list.hidden = false;
      });
    };
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(search, 250);
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
      if (event.key === "Enter") {
        event.preventDefault();
        const first = $("button", list);
        if (!list.hidden && first) first.click();
        else search();
      }
    });
    document.addEventListener("click", (event) => {
      if (!event.target.closest(".search")) close();
    });
  }

  // ---------------------------------------------------------------------------------------------- export
  function renderExports() {
    const box = $("#export-buttons");
    box.replaceChildren(...(state.info.formats || []).map((format) => {
      const href = `/api/graph/export?format=${encodeURIComponent(format.name)}`;
      return el("a", {
        href, download: "", testid: `export-${format.name}`, title: format.summary, "aria-label": `Download the graph as ${format.name}: ${format.summary}`,
        onclick: (event) => { event.preventDefault(); download(format.name, href); },
      }, el("strong", {}, format.name), el("span", {}, format.summary));
    }));
  }

  async function download(name, href) {
    clearError();
    await attempt(`Export as ${name} failed`, async () => {
      const response = await api(href, { raw: true, accept: "*/*" });
      const disposition = response.headers.get("Content-Disposition") || "";
      const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
      const filename = match ? decodeURIComponent(match[1]) : `kgc-graph.${name}`;
      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: filename, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    });
  }

  // ---------------------------------------------------------------------------------------------- resolve
  async function loadProposals() {
    const box = $("#proposals");
    const button = $("#proposals-load");
    const threshold = Math.min(100, Math.max(50, Number($("#threshold").value) || 90));
    $("#threshold").value = String(threshold);
    setBusy(button, true);
    box.replaceChildren(el("p", { class: "muted" }, "Looking for names that name the same thing…"));
    await attempt("Could not load merge proposals", async () => {
      const proposals = await api(`/api/graph/proposals?threshold=${threshold}`);
      state.proposalsLoaded = true;
      box.replaceChildren(...(proposals.length ? proposals.map(proposalCard) : [el("div", { class: "card empty-state small-empty", testid: "no-proposals" },
        el("p", {}, el("strong", {}, `No merge proposals at threshold ${threshold}.`)),
        el("p", { class: "muted" }, "Lower the threshold to see weaker matches, or add more texts to the graph."))]));
    });
    if (!state.proposalsLoaded) box.replaceChildren();
    setBusy(button, false);
  }

  let proposalCount = 0;
  function proposalCard(proposal) {
    const group = `canonical-${++proposalCount}`;
    const card = el("article", { class: "card proposal", testid: "proposal", "data-canonical": proposal.canonical });
    const members = el("ul", { class: "members" }, (proposal.members || []).map((member) => el("li", { class: "member" },
      el("label", {},
        el("input", { type: "radio", name: group, value: member.iri, checked: member.iri === proposal.canonical,
                      "aria-label": `Keep “${member.label}” as the canonical name` }),
        member.label, el("span", { class: "docs" }, plural(member.documents, "document"))),
      (member.examples || []).map((ex) => {
        const contextStart = Math.max(0, ex.start - 40);
        return el("div", { class: "example" }, "…", markedText(ex.context, [{ start: ex.start, end: ex.end }], contextStart), "…");
      }))));
    const decide = async (decision) => {
      const canonical = ($(`input[name="${group}"]:checked`, card) || {}).value || proposal.canonical;
      const body = { decisions: [{ decision, members: proposal.members.map((m) => m.iri), canonical,
                                   score: proposal.score, reasons: proposal.reasons || [] }], by: "kgc serve page" };
      for (const b of card.querySelectorAll("button")) b.disabled = true;
      const answer = await attempt("Could not record the decision", () => api("/api/graph/decisions", { json: body }));
      if (!answer) {
        for (const b of card.querySelectorAll("button")) b.disabled = false;
        return;
      }
      state.storeDirty = true;
      const chosen = proposal.members.find((m) => m.iri === canonical);
      card.classList.add("decided");
      $(".buttons", card).replaceChildren(el("div", { class: `decision ${decision}`, testid: "decision" },
        decision === "accept" ? `Merged into “${chosen ? chosen.label : canonical}”` : "Kept apart",
        answer.unchanged ? " (already recorded)" : ""));
    };
    card.append(
      el("h3", {}, typePill(proposal.type), proposal.label, el("span", { class: "score" }, `score ${proposal.score}`)),
      el("div", { class: "reasons" }, (proposal.reasons || []).map((r) => el("span", { class: "reason" }, r))),
      members,
      el("div", { class: "muted small", style: { "margin-bottom": "8px" } }, (proposal.pairs || []).map((p, i) => [i ? " · " : "",
        `${p.labels[0]} ↔ ${p.labels[1]} (${p.score}, ${p.reasons.join(", ")})`])),
      el("div", { class: "buttons" },
        el("button", { type: "button", class: "danger", testid: "reject", onclick: () => decide("reject") }, "Reject"),
        el("button", { type: "button", class: "success", testid: "accept", onclick: () => decide("accept") }, "Accept merge")));
    return card;
  }

  // ---------------------------------------------------------------------------------------------- sparql
  function termCell(term) {
    if (!term) return el("td", { class: "muted" }, "");
    if (term.type === "uri") return el("td", { title: term.value }, el("span", { class: "iri" }, compactIri(term.value)));
    if (term.type === "bnode") return el("td", {}, `_:${term.value}`);
    const datatype = term.datatype && !term.datatype.endsWith("#string") ? compactIri(term.datatype) : null;
    return el("td", {}, term.value, term["xml:lang"] ? el("span", { class: "lit-type" }, `@${term["xml:lang"]}`) : null,
      datatype && !/#(integer|decimal|double)$/.test(term.datatype) ? el("span", { class: "lit-type" }, datatype) : null);
  }

  async function runSparql() {
    clearError();
    const query = $("#sparql-input").value;
    const box = $("#sparql-result");
    const summary = $("#sparql-summary");
    if (!query.trim()) {
      showError("Write a SPARQL query first.");
      return;
    }
    const button = $("#sparql-run");
    setBusy(button, true);
    const started = performance.now();
    await attempt("The query failed", async () => {
      const response = await api("/sparql", {
        body: query, contentType: "application/sparql-query", raw: true,
        accept: "application/sparql-results+json, text/turtle;q=0.9",
      });
      const ms = Math.round(performance.now() - started);
      const kind = response.headers.get("Content-Type") || "";
      if (!kind.includes("json")) {
        const text = await response.text();
        summary.textContent = `graph · ${ms} ms`;
        box.replaceChildren(el("pre", { class: "graph-result", testid: "sparql-graph" }, text || "(no triples)"));
        return;
      }
      const data = await response.json();
      if (typeof data.boolean === "boolean") {
        summary.textContent = `ASK · ${ms} ms`;
        box.replaceChildren(el("div", { class: `ask ${data.boolean ? "yes" : "no"}`, testid: "sparql-ask" }, data.boolean ? "yes" : "no"));
        return;
      }
      const vars = (data.head && data.head.vars) || [];
      const bindings = (data.results && data.results.bindings) || [];
      const shown = bindings.slice(0, 1000);
      summary.textContent = `${plural(bindings.length, "row")}${bindings.length > shown.length ? ` (the first ${shown.length} shown)` : ""} · ${ms} ms`;
      box.replaceChildren(el("div", { class: "table-wrap" }, el("table", { class: "data", testid: "sparql-table" },
        el("thead", {}, el("tr", {}, vars.map((v) => el("th", { scope: "col" }, `?${v}`)))),
        el("tbody", {}, shown.length ? shown.map((row) => el("tr", {}, vars.map((v) => termCell(row[v]))))
                                      : el("tr", {}, el("td", { colspan: Math.max(vars.length, 1), class: "muted" }, "No rows."))))));
    });
    setBusy(button, false);
  }

  function setupSparql() {
    const select = $("#sparql-examples");
    select.replaceChildren(el("option", { value: "" }, "Example queries…"),
      SPARQL_EXAMPLES.map(([name], i) => el("option", { value: String(i) }, name)));
    $("#sparql-input").value = SPARQL_EXAMPLES[0][1];
    select.addEventListener("change", () => {
      if (select.value !== "") $("#sparql-input").value = SPARQL_EXAMPLES[Number(select.value)][1];
      select.value = "";
      $("#sparql-input").focus();
    });
    $("#sparql-run").addEventListener("click", runSparql);
    $("#sparql-input").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        runSparql();
      }
    });
  }

  // ---------------------------------------------------------------------------------------------- start
  function setupExtract() {
    const text = $("#text-input");
    const count = () => {
      const n = Array.from(text.value).length;
      const max = state.info && state.info.limits ? state.info.limits.max_text_chars : null;
      $("#text-count").textContent = n ? `${n.toLocaleString()}${max ? ` / ${max.toLocaleString()}` : ""} characters` : "";
    };
    text.addEventListener("input", count);
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        extract();
      }
    });
    $("#extract-form").addEventListener("submit", (event) => {
      event.preventDefault();
      extract();
    });
    $("#preset-select").addEventListener("change", (event) => {
      if (event.target.value !== "") applyPreset(Number(event.target.value));
    });
    $("#add-task").addEventListener("change", (event) => addTask(event.target.value));
    for (const button of document.querySelectorAll("[data-example]")) {
      button.addEventListener("click", () => {
        const lang = button.dataset.example;
        text.value = EXAMPLES[lang];
        count();
        if (lang === "zh" && state.info && !state.tasks.some((t) => t.labels.some(hasCJK))) {
          const i = state.info.presets.findIndex((p) => p.language === "zh");
          if (i >= 0) {
            $("#preset-select").value = String(i);
            applyPreset(i);
          }
        }
        text.focus();
      });
    }
    $("#result-fit").addEventListener("click", () => state.resultGraph && state.resultGraph.fit(undefined, 30));
    $("#graph-fit").addEventListener("click", () => state.storeGraph && state.storeGraph.fit(undefined, 30));
    $("#graph-reload").addEventListener("click", () => {
      state.storeDirty = true;
      openGraphView();
    });
    $("#proposals-load").addEventListener("click", loadProposals);
    $("#threshold").addEventListener("keydown", (event) => {
      if (event.key === "Enter") loadProposals();
    });
    $("#banner-close").addEventListener("click", clearError);
  }

  function start() {
    setupToken();
    setupTabs();
    setupExtract();
    setupSearch();
    setupSparql();
    renderTasks();
    if (typeof cytoscape !== "function") showError("The graph library (vendor/cytoscape.min.js) did not load.");
    attempt("Could not reach the server", loadInfo);
    const view = viewFromHash();
    if (view && view !== "extract") showView(view, { updateHash: false });
  }

  window.kgc = {
    get resultGraph() { return state.resultGraph; },
    get storeGraph() { return state.storeGraph; },
    state, api, selectEntity, showView, buildResultGraph, normalizeName,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
