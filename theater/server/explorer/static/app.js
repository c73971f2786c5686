// The Theater explorer: plain JavaScript, no library, no build step.
//
// Everything shown comes from the record, which is hostile (a guest chooses what it logs, a client what it sends):
// text goes into the page only through textContent and attribute values through setAttribute, never as markup.
// The server's Content-Security-Policy forbids inline scripts besides.
"use strict";

const ROW_HEIGHT = 24;          // px of one timeline row (the virtual scroller's unit)
const PAGE = 200;               // events fetched per page of the timeline
const MAX_SCROLL_PX = 8000000;  // browsers cap an element's height; longer chains scroll proportionally
const CACHE_PAGES = 64;         // pages of the timeline kept in memory
const POLL_MS = 2000;           // the actor tree refreshes this often

let session = {auth: false, csrf: null};
let leave = [];  // what the current view undoes when another is shown (timers, streams)

// ---- DOM helpers: elements from text, never from markup ------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...children) {
  const main = document.getElementById("main");
  main.replaceChildren();
  append(main, children);
  return main;
}

function short(id) { return id ? String(id).slice(0, 8) : "—"; }
function when(ms) { return typeof ms === "number" ? new Date(ms).toISOString().replace("T", " ").slice(0, 23) : ""; }
function pretty(value) { return JSON.stringify(value, null, 2); }
function oneLine(value, max = 160) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text && text.length > max ? text.slice(0, max - 1) + "…" : (text || "");
}
function enc(text) { return encodeURIComponent(text); }
function count(n, noun) { return `${n} ${noun}${n === 1 ? "" : "s"}`; }

// ---- the API ---------------------------------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, body) {
    super(`${body.error || status}: ${body.message || ""}`);
    this.status = status;
    this.body = body;
  }
}

async function api(path, options = {}) {
  const init = {credentials: "same-origin", headers: {}, ...options};
  if (init.json !== undefined) {
    init.method = init.method || "POST";
    init.body = JSON.stringify(init.json);
    init.headers["Content-Type"] = "application/json";
    delete init.json;
  }
  if (init.method && init.method !== "GET" && session.csrf) init.headers["X-Theater-CSRF"] = session.csrf;
  const reply = await fetch(path, init);
  if (reply.status === 401 && session.auth) {
    window.location.assign("/login");
    throw new ApiFailure(401, {error: "Unauthorized", message: "log in again"});
  }
  const body = await reply.json().catch(() => ({error: "BadReply", message: reply.statusText}));
  if (!reply.ok) throw new ApiFailure(reply.status, body);
  return body;
}

function failure(error) {
  return h("p", {class: "error", role: "alert"}, String(error.message || error));
}

// ---- routing ---------------------------------------------------------------------------------------------------

const VIEWS = [
  [/^#?\/?$/, () => actorsView()],
  [/^#\/actor\/([^/?]+)(?:\?(.*))?$/, (m) => timelineView(decodeURIComponent(m[1]), new URLSearchParams(m[2] || ""))],
  [/^#\/event\/([^/]+)\/(\d+)$/, (m) => eventView(decodeURIComponent(m[1]), Number(m[2]))],
  [/^#\/flow(?:\?(.*))?$/, (m) => flowView(new URLSearchParams(m[1] || ""))],
  [/^#\/verify\/([^/]+)$/, (m) => verifyView(decodeURIComponent(m[1]))],
  [/^#\/checkpoints$/, () => checkpointsView()],
];

function route() {
  for (const undo of leave) undo();
  leave = [];
  const hash = window.location.hash || "#/";
  for (const [pattern, view] of VIEWS) {
    const match = hash.match(pattern);
    if (match) {
      view(match).catch((error) => show(failure(error)));
      return;
    }
  }
  show(h("p", {class: "error"}, "No such view: ", hash));
}

// ---- actors: the supervision tree ------------------------------------------------------------------------------

async function actorsView() {
  const tree = h("div", {id: "tree"});
  const stamp = h("span", {class: "muted", id: "tree-updated"});
  show(h("h1", {}, "Actors ", stamp), tree);
  let timer = null;
  const refresh = async () => {
    try {
      const body = await api("/v1/explorer/actors");
      tree.replaceChildren(renderTree(body.actors));
      stamp.textContent = `live, updated ${when(body.time_ms).slice(11)}`;
    } catch (error) {
      tree.replaceChildren(failure(error));
    }
  };
  await refresh();
  timer = setInterval(refresh, POLL_MS);
  leave.push(() => clearInterval(timer));
}

function renderTree(actors) {
  if (!actors.length) return h("p", {class: "muted"}, "No actors recorded in this home yet.");
  const byParent = new Map();
  const ids = new Set(actors.map((a) => a.id));
  for (const actor of actors) {
    const parent = actor.parent && ids.has(actor.parent) ? actor.parent : null;
    if (!byParent.has(parent)) byParent.set(parent, []);
    byParent.get(parent).push(actor);
  }
  const branch = (parent) => h("ul", {class: parent ? "children" : "roots"},
    (byParent.get(parent) || []).map((actor) => h("li", {class: "actor", "data-id": actor.id},
      actorLine(actor), byParent.has(actor.id) ? branch(actor.id) : null)));
  return branch(null);
}

function actorLine(actor) {
  const failed = actor.failure ? h("span", {class: "failure", title: actor.failure.detail || ""},
    `failed: ${actor.failure.kind}: ${oneLine(actor.failure.detail || "", 80)}`) : null;
  return h("div", {class: "line"},
    h("span", {class: `status status-${actor.status}`}, actor.status),
    h("a", {class: "name", href: `#/actor/${enc(actor.id)}`}, actor.name || "(unnamed)"),
    h("code", {class: "id", title: actor.id}, short(actor.id)),
    h("span", {class: "count"}, count(actor.events, "event")),
    actor.restarts ? h("span", {class: "restarts"}, `${actor.restarts} restart${actor.restarts > 1 ? "s" : ""}`) : null,
    failed,
    h("span", {class: "links"},
      h("a", {href: `#/flow?actor=${enc(actor.id)}`}, "flow"), " ",
      h("a", {href: `#/verify/${enc(actor.id)}`}, "verify")));
}

// ---- an actor's timeline ---------------------------------------------------------------------------------------

async function timelineView(id, query) {
  const actor = await api(`/v1/actors/${enc(id)}`);
  const type = query.get("type") || "";
  const text = query.get("q") || "";
  const status = h("span", {id: "live", class: "muted"}, "connecting…");
  const filters = h("form", {class: "filters", id: "filters"},
    h("label", {}, "Type ", h("input", {name: "type", value: type, placeholder: "wasm/* or a type", list: "types"})),
    h("datalist", {id: "types"}, ["wasm/*", "wasm/call", "wasm/result", "actor/*", "supervisor/*",
      "theater:simple/*"].map((t) => h("option", {value: t}))),
    h("label", {}, "Search ", h("input", {name: "q", value: text, placeholder: "text in the data"})),
    h("button", {type: "submit"}, "Filter"),
    h("a", {href: `#/actor/${enc(actor.id)}`}, "clear"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(filters);
    const params = new URLSearchParams();
    for (const key of ["type", "q"]) if (form.get(key)) params.set(key, form.get(key));
    window.location.hash = `#/actor/${enc(actor.id)}${params.toString() ? "?" + params : ""}`;
  });
  const head = h("div", {class: "actor-head"},
    h("h1", {}, actor.name || "(unnamed)", " ", h("code", {class: "id"}, actor.id)),
    h("p", {},
      h("span", {class: `status status-${actor.status}`}, actor.status), " ",
      h("span", {id: "event-count"}, count(actor.head.seq + 1, "event")), " · ",
      h("a", {href: `#/flow?actor=${enc(actor.id)}`}, "message flow"), " · ",
      h("a", {href: `#/verify/${enc(actor.id)}`}, "verify"), " · ", status));
  const list = h("div", {class: "timeline", id: "timeline", tabindex: "0", "data-type": type, "data-q": text});
  show(head, filters, list);
  const timeline = type || text ? new FilteredTimeline(list, actor.id, type, text)
    : new VirtualTimeline(list, actor.id, actor.head.seq + 1);
  await timeline.start();
  const stream = new EventSource(`/v1/actors/${enc(actor.id)}/subscribe?from=${actor.head.seq + 1}`);
  stream.addEventListener("ready", () => { status.textContent = "live"; status.className = "live"; });
  stream.addEventListener("event", (message) => {
    const event = JSON.parse(message.data);
    document.getElementById("event-count").textContent = count(event.seq + 1, "event");
    timeline.arrived(event);
  });
  stream.onerror = () => { status.textContent = "reconnecting…"; status.className = "muted"; };
  leave.push(() => stream.close());
}

function eventRow(actorId, event, fresh) {
  return h("a", {class: `row${fresh ? " new" : ""}`, href: `#/event/${enc(actorId)}/${event.seq}`,
    "data-seq": event.seq},
    h("span", {class: "seq"}, event.seq),
    h("span", {class: "time"}, when(event.timestamp_ms).slice(11)),
    h("span", {class: "type", title: event.type}, event.type),
    h("code", {class: "hash"}, event.hash.slice(0, 12)),
    h("span", {class: "summary"}, summary(event)));
}

const UTF8 = new TextDecoder("utf-8", {fatal: true});

// Event data for reading: "hex:..." bytes that are printable UTF-8 become their text (as the CLI shows them).
function readable(value) {
  if (typeof value === "string" && value.startsWith("hex:") && value.length % 2 === 0) {
    const hex = value.slice(4);
    if (hex.length > 0 && hex.length <= 8192 && /^[0-9a-f]*$/.test(hex)) {
      const bytes = new Uint8Array(hex.length / 2);
      for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
      try {
        const text = UTF8.decode(bytes);
        if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) return text;
      } catch (notText) { /* bytes, shown as hex */ }
    }
    return value;
  }
  if (Array.isArray(value)) return value.map(readable);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, readable(item)]));
  }
  return value;
}

// One line about an event: its call and parameters, or its data without the state hash and fuel.
function summary(event) {
  const data = readable(event.data);
  if (!data || typeof data !== "object" || Array.isArray(data)) return oneLine(data);
  if (typeof data.export === "string") {
    const name = data.export.split(".").pop();
    const args = "params" in data ? data.params : data.output;
    return oneLine(`${name} ${JSON.stringify(args ?? null)}`);
  }
  if ("params" in data) return oneLine(`${JSON.stringify(data.params)} → ${JSON.stringify(data.result ?? null)}`);
  const rest = {...data};
  delete rest.state;
  delete rest.fuel;
  return oneLine(rest);
}

function placeholderRow(seq) {
  return h("div", {class: "row placeholder"}, h("span", {class: "seq"}, seq), h("span", {class: "summary"}, "…"));
}

// Every event of the chain, by position: only the rows in view exist, pages are fetched as they come into view.
class VirtualTimeline {
  constructor(container, actorId, count) {
    this.container = container;
    this.actorId = actorId;
    this.count = count;
    this.pages = new Map();
    this.loading = new Set();
    this.fresh = new Set();
    this.spacer = h("div", {class: "spacer"});
    this.window = h("div", {class: "window"});
    container.append(this.window, this.spacer);
    container.addEventListener("scroll", () => this.render());
    window.addEventListener("resize", () => this.render());
  }

  async start() {
    this.resize();
    await this.load(0);
    this.render();
  }

  resize() {
    this.spacer.style.height = `${Math.min(this.count * ROW_HEIGHT, MAX_SCROLL_PX)}px`;
  }

  view() { return this.container.clientHeight || 600; }

  first() {
    const visible = Math.ceil(this.view() / ROW_HEIGHT);
    const total = Math.min(this.count * ROW_HEIGHT, MAX_SCROLL_PX);
    const range = Math.max(1, total - this.view());
    const fraction = Math.min(1, this.container.scrollTop / range);
    return Math.max(0, Math.round(fraction * Math.max(0, this.count - visible)));
  }

  atEnd() {
    return this.container.scrollTop + this.view() >= this.container.scrollHeight - ROW_HEIGHT * 2;
  }

  render() {
    const first = this.first();
    const rows = Math.ceil(this.view() / ROW_HEIGHT) + 1;
    const nodes = [];
    for (let seq = first; seq < Math.min(this.count, first + rows); seq++) {
      const page = this.pages.get(Math.floor(seq / PAGE));
      const event = page && page[seq % PAGE];
      if (event) nodes.push(eventRow(this.actorId, event, this.fresh.has(seq)));
      else {
        nodes.push(placeholderRow(seq));
        this.load(Math.floor(seq / PAGE));
      }
    }
    this.window.replaceChildren(...nodes);
  }

  async load(number) {
    if (this.pages.has(number) || this.loading.has(number)) return;
    this.loading.add(number);
    try {
      const body = await api(`/v1/actors/${enc(this.actorId)}/events?from=${number * PAGE}&limit=${PAGE}`);
      const known = this.pages.get(number) || [];
      for (const event of body.events) known[event.seq - number * PAGE] = event;
      this.pages.set(number, known);
      while (this.pages.size > CACHE_PAGES) this.pages.delete(this.pages.keys().next().value);
      this.render();
    } catch (error) {
      this.window.replaceChildren(failure(error));
    } finally {
      this.loading.delete(number);
    }
  }

  arrived(event) {
    const following = this.atEnd();
    const number = Math.floor(event.seq / PAGE);
    if (this.pages.has(number)) this.pages.get(number)[event.seq % PAGE] = event;
    this.fresh.add(event.seq);
    this.count = Math.max(this.count, event.seq + 1);
    this.resize();
    if (following) this.container.scrollTop = this.container.scrollHeight;
    this.render();
  }
}

// A selection (by type, by text): paged by the server with its cursor, more as the list scrolls to its end.
class FilteredTimeline {
  constructor(container, actorId, type, text) {
    this.container = container;
    this.actorId = actorId;
    this.type = type;
    this.text = text;
    this.next = undefined;
    this.busy = false;
    this.search = true;  // the search API; the per-actor listing when this server has none
    this.rows = h("div", {class: "rows"});
    this.more = h("p", {class: "muted more"}, "");
    container.append(this.rows, this.more);
    container.classList.add("filtered");
    container.addEventListener("scroll", () => {
      if (this.container.scrollTop + this.container.clientHeight >= this.container.scrollHeight - 200) this.page();
    });
  }

  async start() { await this.page(); }

  matches(event) {
    if (this.type) {
      const ok = this.type.endsWith("*") ? event.type.startsWith(this.type.slice(0, -1)) : event.type === this.type;
      if (!ok) return false;
    }
    return !this.text || JSON.stringify(readable(event.data)).toLowerCase().includes(this.text.toLowerCase());
  }

  async page() {
    if (this.busy || this.next === null) return;
    this.busy = true;
    this.more.textContent = "loading…";
    try {
      let events = this.search ? await this.searchPage() : null;
      if (events === null) events = await this.listingPage();
      append(this.rows, events.map((event) => eventRow(this.actorId, event, false)));
      this.more.textContent = this.next === null ? count(this.rows.childElementCount, "event") : "scroll for more";
    } catch (error) {
      this.more.replaceChildren(failure(error));
      this.next = null;
    } finally {
      this.busy = false;
    }
    if (this.next !== null && this.container.scrollHeight <= this.container.clientHeight) this.page();
  }

  async searchPage() {
    const params = new URLSearchParams({actor: this.actorId, limit: String(PAGE)});
    if (this.type) params.set("type", this.type);
    if (this.text) params.set("q", this.text);
    if (this.next !== undefined) params.set("after", this.next);
    try {
      const body = await api(`/v1/events/search?${params}`);
      this.next = body.next ?? null;
      return body.events;
    } catch (error) {
      if (error.status === 404 && error.body.error === "NotFound") {  // no search API here: filter the listing
        this.search = false;
        this.next = undefined;
        return null;
      }
      throw error;
    }
  }

  async listingPage() {
    const found = [];
    for (let scanned = 0; scanned < 10 && this.next !== null && found.length < PAGE; scanned++) {
      const params = new URLSearchParams({from: String(this.next ?? 0), limit: String(PAGE * 5)});
      if (this.type) params.set("type", this.type);
      const body = await api(`/v1/actors/${enc(this.actorId)}/events?${params}`);
      found.push(...body.events.filter((event) => this.matches(event)));
      this.next = body.next;
    }
    return found;
  }

  arrived(event) {
    if (this.matches(event) && this.next === null) {
      this.rows.append(eventRow(this.actorId, event, true));
      this.more.textContent = count(this.rows.childElementCount, "event");
    }
  }
}

// ---- an event --------------------------------------------------------------------------------------------------

async function eventView(id, seq) {
  const detail = await api(`/v1/explorer/event?actor=${enc(id)}&seq=${seq}`);
  const event = detail.event;
  const base = `#/event/${enc(event.actor)}/`;
  const nav = h("p", {class: "nav"},
    detail.previous !== null ? h("a", {id: "previous", href: base + detail.previous}, "← previous") : "",
    " ", h("a", {href: `#/actor/${enc(event.actor)}`}, "timeline"), " ",
    detail.next !== null ? h("a", {id: "next", href: base + detail.next}, "next →") : "");
  const keys = (key) => {
    if (key.target instanceof HTMLInputElement) return;
    if (key.key === "ArrowLeft" && detail.previous !== null) window.location.hash = base + detail.previous;
    if (key.key === "ArrowRight" && detail.next !== null) window.location.hash = base + detail.next;
  };
  document.addEventListener("keydown", keys);
  leave.push(() => document.removeEventListener("keydown", keys));
  const replay = h("div", {id: "replay-result"});
  show(
    nav,
    h("h1", {}, h("span", {class: "type"}, event.type), " ", h("span", {class: "muted"}, `#${event.seq}`)),
    h("dl", {class: "facts"},
      h("dt", {}, "actor"), h("dd", {}, h("a", {href: `#/actor/${enc(event.actor)}`}, h("code", {}, event.actor))),
      h("dt", {}, "hash"), h("dd", {}, h("code", {}, event.hash)),
      h("dt", {}, "parent"), h("dd", {}, h("code", {}, event.parent || "—")),
      h("dt", {}, "time"), h("dd", {}, when(event.timestamp_ms)),
      detail.cause ? [h("dt", {}, "sent by"), h("dd", {}, causeLink(detail.cause))] : null),
    callSection(detail.call),
    blobsSection(detail.blobs),
    h("section", {}, h("h2", {}, "Data"), h("pre", {class: "data", id: "event-data"}, pretty(detail.readable))),
    stateSection(detail.state, event.seq),
    h("section", {class: "replay"}, h("h2", {}, "Replay to here"),
      h("p", {}, "Re-execute this chain on the server from its start up to this event, and compare every call ",
        "with the record."),
      h("button", {id: "replay-button", type: "button", onclick: () => replayTo(event.actor, event.seq, replay)},
        `Replay to #${event.seq}`),
      replay));
}

function causeLink(cause) {
  if (!cause.actor) return h("code", {id: "cause", title: "not in this home"}, cause.hash);
  return h("a", {id: "cause", href: `#/event/${enc(cause.actor)}/${cause.seq}`, title: `recorded cause ${cause.hash}`},
    `${short(cause.actor)} #${cause.seq}`);
}

function callSection(call) {
  if (!call) return null;
  return h("section", {class: "call"}, h("h2", {}, call.kind === "host" ? "Host call" : "Call into the actor"),
    h("p", {}, h("code", {class: "call-name"}, call.name)),
    h("div", {class: "columns"},
      call.params !== null ? h("div", {}, h("h3", {}, "Parameters"), h("pre", {id: "call-params"}, pretty(call.params)))
        : null,
      call.result !== null || call.kind === "host"
        ? h("div", {}, h("h3", {}, call.kind === "host" ? "Result" : "Output"),
          h("pre", {id: "call-result"}, pretty(call.result))) : null));
}

function blobsSection(blobs) {
  if (!blobs.length) return null;
  return h("section", {}, h("h2", {}, "Blobs"), h("ul", {class: "blobs"}, blobs.map((blob) => h("li", {},
    h("span", {}, blob.field, ": "),
    h("a", {href: `/v1/blobs/${enc(blob.hash)}`, download: `${blob.hash}.bin`}, h("code", {}, blob.hash.slice(0, 16))),
    h("span", {class: "muted"}, ` ${blob.size} bytes`)))));
}

function stateText(point) {
  if (!point) return "(before the first event)";
  if (!point.hash) return "(no state)";
  if (point.json) return pretty(point.json.value);
  if (point.value) return point.value.text ?? `base64:${point.value.base64}`;
  return `(state ${point.hash.slice(0, 16)}…, too large to show)`;
}

function stateSection(state, seq) {
  const diff = state.diff;
  let body;
  if (!state.changed) body = h("p", {class: "muted", id: "state-unchanged"}, "This event did not change the state.");
  else if (diff.kind === "json") {
    body = h("table", {class: "diff", id: "state-diff"},
      h("tr", {}, h("th", {}, "path"), h("th", {}, "change"), h("th", {}, "before"), h("th", {}, "after")),
      diff.entries.map((entry) => h("tr", {class: `op-${entry.op}`},
        h("td", {}, h("code", {}, entry.path)), h("td", {}, entry.op),
        h("td", {}, h("code", {}, entry.before === null ? "" : JSON.stringify(entry.before))),
        h("td", {}, h("code", {}, entry.after === null ? "" : JSON.stringify(entry.after))))));
  } else if (diff.kind === "text") {
    body = h("pre", {class: "diff", id: "state-diff"}, diff.entries.map((line) =>
      h("span", {class: line.startsWith("+") ? "op-added" : line.startsWith("-") ? "op-removed" : ""}, line + "\n")));
  } else {
    body = h("p", {id: "state-diff"}, `The state changed (binary: ${diff.sizes?.[0] ?? "?"} → ${diff.sizes?.[1] ?? "?"} bytes).`);
  }
  return h("section", {class: "state"}, h("h2", {}, `State at #${seq}`), body,
    h("div", {class: "columns"},
      h("div", {}, h("h3", {}, `Before${state.before && state.before.seq !== null ? ` (set at #${state.before.seq})` : ""}`),
        h("pre", {id: "state-before"}, stateText(state.before))),
      h("div", {}, h("h3", {}, `After${state.after && state.after.seq !== null ? ` (set at #${state.after.seq})` : ""}`),
        h("pre", {id: "state-after"}, stateText(state.after)))));
}

async function replayTo(actor, seq, into) {
  into.replaceChildren(h("p", {class: "muted"}, `re-executing up to #${seq}…`));
  try {
    into.replaceChildren(reportView(await api("/v1/explorer/replay", {json: {actor, seq}})));
  } catch (error) {
    into.replaceChildren(failure(error));
  }
}

function reportView(report) {
  const integrity = report.integrity;
  const replay = report.replay;
  const parts = [h("p", {class: report.ok ? "ok" : "error", id: "report-verdict"},
    report.ok ? `OK: the record re-executes exactly (${replay.calls} calls, ${replay.host_calls} host calls, ` +
      `#${replay.from_seq}–#${replay.to_seq})` : "DIVERGED: the re-execution does not match the record")];
  if (!integrity.ok && integrity.problem) {
    parts.push(h("p", {class: "error"}, `integrity: ${integrity.problem.kind} at #${integrity.problem.seq}: `,
      integrity.problem.detail));
  }
  const divergence = replay && replay.divergence;
  if (divergence) {
    parts.push(h("div", {class: "divergence", id: "divergence"},
      h("p", {}, `${divergence.kind} divergence at `,
        h("a", {href: `#/event/${enc(report.actor)}/${divergence.seq}`}, `#${divergence.seq}`), ": ", divergence.what),
      h("div", {class: "columns"},
        h("div", {}, h("h3", {}, "Recorded"), h("pre", {id: "divergence-expected"}, pretty(readable(divergence.expected)))),
        h("div", {}, h("h3", {}, "Re-executed"), h("pre", {id: "divergence-actual"}, pretty(readable(divergence.actual))))),
      divergence.hint ? h("p", {class: "muted"}, divergence.hint) : null));
  }
  if (replay && replay.interrupted.length) {
    parts.push(h("p", {class: "muted"}, `${replay.interrupted.length} interrupted call(s) resumed`));
  }
  return h("div", {class: "report"}, parts);
}

// ---- message flow: a sequence diagram --------------------------------------------------------------------------

async function flowView(query) {
  const params = new URLSearchParams();
  for (const actor of query.getAll("actor")) params.append("actor", actor);
  if (params.has("actor")) params.set("with_correspondents", "1");
  const [flow, all] = await Promise.all([api(`/v1/explorer/flow?${params}`), api("/v1/explorer/actors")]);
  const diagram = sequenceDiagram(flow);
  const shown = new Set(flow.actors.map((actor) => actor.id));
  const picker = h("form", {id: "flow-actors", class: "filters"}, "Actors: ",
    all.actors.slice(0, 200).map((actor) => h("label", {},
      h("input", {type: "checkbox", name: "actor", value: actor.id, checked: shown.has(actor.id)}), " ",
      actor.name || short(actor.id), " ")),
    h("button", {type: "submit"}, "Show"), h("a", {href: "#/flow"}, "all"));
  picker.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const id of new FormData(picker).getAll("actor")) chosen.append("actor", id);
    window.location.hash = `#/flow${chosen.toString() ? "?" + chosen : ""}`;
  });
  show(h("h1", {}, "Message flow"), picker,
    h("p", {class: "muted"}, "Who sent what to whom. Click either end of an arrow for its event: the sender's ",
      "(the host call) and the receiver's (its call). Solid: send or request; dashed: the reply. ",
      "“API” stands for messages from outside (the CLI, HTTP clients) or from chains not shown."),
    diagram);
}

function sequenceDiagram(flow) {
  const lanes = [{id: null, name: "API"}, ...flow.actors];
  const column = new Map(lanes.map((lane, i) => [lane.id, i]));
  const messages = flow.messages.filter((m) => m.from || m.to);
  if (!messages.length) return h("p", {class: "muted", id: "flow-empty"}, "No messages between these actors yet.");
  const laneWidth = 220;
  const top = 60;
  const step = 44;
  const width = lanes.length * laneWidth;
  const height = top + messages.length * step + 30;
  const x = (id) => (column.has(id) ? column.get(id) : 0) * laneWidth + laneWidth / 2;
  const svg = s("svg", {id: "flow", width, height, viewBox: `0 0 ${width} ${height}`, role: "img"},
    s("defs", {}, s("marker", {id: "arrowhead", markerWidth: 10, markerHeight: 8, refX: 9, refY: 4,
      orient: "auto"}, s("path", {d: "M0,0 L10,4 L0,8 z", class: "arrowhead"}))),
    lanes.map((lane) => s("g", {class: "lane"},
      s("line", {x1: x(lane.id), y1: top - 20, x2: x(lane.id), y2: height - 10, class: "lifeline"}),
      s("a", lane.id ? {href: `#/actor/${enc(lane.id)}`} : {},
        s("text", {x: x(lane.id), y: 22, class: "lane-name"}, lane.name || short(lane.id)),
        s("text", {x: x(lane.id), y: 38, class: "lane-id"}, lane.id ? short(lane.id) : "outside")))),
    messages.map((message, i) => arrow(message, x, top + i * step + 10)));
  return h("div", {class: "flow"}, svg);
}

function arrow(message, x, y) {
  const from = x(message.from ? message.from.actor : null);
  const to = x(message.to ? message.to.actor : null);
  const self = from === to;
  const end = self ? from + 40 : to + (to > from ? -6 : 6);
  const line = self
    ? s("path", {d: `M${from},${y} h40 v14 h-34`, class: `arrow ${message.kind}`, "marker-end": "url(#arrowhead)"})
    : s("line", {x1: from, y1: y, x2: end, y2: y, class: `arrow ${message.kind}`, "marker-end": "url(#arrowhead)"});
  const label = `${message.kind}: ${message.message}`;
  const link = (endpoint) => endpoint ? `#/event/${enc(endpoint.actor)}/${endpoint.seq}` : null;
  const mid = self ? from + 48 : (from + to) / 2;
  return s("g", {class: `message ${message.kind}`, "data-kind": message.kind},
    s("title", {}, `${label}${message.link ? ` (${message.link})` : ""}`),
    line,
    s("text", {x: mid, y: y - 6, class: "arrow-label", "text-anchor": self ? "start" : "middle"}, label),
    message.from ? s("a", {href: link(message.from), class: "end from"},
      s("circle", {cx: from, cy: y, r: 5}), s("title", {}, `sender's event #${message.from.seq}`)) : null,
    message.to ? s("a", {href: link(message.to), class: "end to"},
      s("circle", {cx: self ? from : to, cy: self ? y + 14 : y, r: 5}),
      s("title", {}, `receiver's event #${message.to.seq}`)) : null);
}

// ---- verify with progress --------------------------------------------------------------------------------------

async function verifyView(id) {
  const actor = await api(`/v1/actors/${enc(id)}`);
  const bar = h("progress", {id: "verify-progress", max: 1, value: 0});
  const step = h("span", {id: "verify-step", class: "muted"}, "");
  const result = h("div", {id: "verify-result"});
  const run = () => {
    result.replaceChildren();
    const stream = new EventSource(`/v1/explorer/verify?actor=${enc(actor.id)}`);
    leave.push(() => stream.close());
    stream.addEventListener("progress", (message) => {
      const p = JSON.parse(message.data);
      bar.max = Math.max(1, p.total);
      bar.value = p.done;
      step.textContent = `${p.step}: ${p.done} / ${p.total} events`;
    });
    stream.addEventListener("result", (message) => {
      stream.close();
      bar.value = bar.max;
      step.textContent = "done";
      result.replaceChildren(reportView(JSON.parse(message.data)));
    });
    stream.addEventListener("error", (message) => {
      stream.close();
      result.replaceChildren(failure(message.data ? JSON.parse(message.data).message : "the stream failed"));
    });
  };
  show(h("h1", {}, "Verify ", actor.name || "", " ", h("code", {class: "id"}, actor.id)),
    h("p", {}, "Checks every hash, link and blob of the chain, then re-executes it from the record."),
    h("button", {id: "verify-button", type: "button", onclick: run}, "Verify"), " ", bar, " ", step, result);
}

// ---- checkpoints -----------------------------------------------------------------------------------------------

// The witnesses that co-signed a checkpoint (each name as the server verified it against a key its operator
// listed), with the time each signed; every name is shown as text.
function cosignatures(list) {
  if (!list.length) return h("span", {class: "muted"}, "no witness yet");
  return h("ul", {class: "cosigners"}, list.map((c) => {
    const when = new Date(Number(c.timestamp) * 1000);  // the witness chose it: it may be out of any date's range
    const iso = Number.isNaN(when.getTime()) ? null : when.toISOString();
    return h("li", {class: "cosigner", "data-name": c.name}, h("span", {class: "name"}, c.name), " ",
      h("time", {class: "muted", datetime: iso}, iso ? iso.replace("T", " ").replace(/\.\d+Z$/, " UTC")
        : `at ${c.timestamp} s`));
  }));
}

async function checkpointsView() {
  const table = h("div", {id: "checkpoints"});
  const load = async () => {
    const body = await api("/v1/audit/checkpoints");
    table.replaceChildren(body.checkpoints.length ? h("table", {class: "checkpoints"},
      h("tr", {}, h("th", {}, "number"), h("th", {}, "events in the log"), h("th", {}, "root"),
        h("th", {}, "co-signed by")),
      body.checkpoints.slice().reverse().map((cp) => h("tr", {"data-number": cp.number},
        h("td", {}, cp.number), h("td", {}, cp.size), h("td", {}, h("code", {}, cp.root)),
        h("td", {class: "cosignatures"}, cosignatures(cp.cosignatures || [])))))
      : h("p", {class: "muted"}, "No checkpoint signed yet."));
  };
  const sign = h("button", {type: "button", id: "sign-checkpoint", onclick: async () => {
    try { await api("/v1/audit/checkpoints", {method: "POST"}); await load(); } catch (error) {
      table.prepend(failure(error));
    }
  }}, "Sign a checkpoint now");
  show(h("h1", {}, "Checkpoints"),
    h("p", {}, "Signed checkpoints of the home's Merkle log (", h("code", {}, "theater audit"), "). ",
      "Inclusion and consistency proofs: ", h("code", {}, "GET /v1/audit/proofs/…"), ". ",
      "Witnesses (", h("code", {}, "theater witness"), ") co-sign a checkpoint once they have re-executed what it ",
      "covers."), sign, table);
  await load();
}

// ---- start -----------------------------------------------------------------------------------------------------

async function boot() {
  try {
    session = await api("/v1/explorer/session");
    const info = await api("/v1/server");
    document.getElementById("server-info").textContent = `theater ${info.version} · ${info.home}`;
  } catch (error) {
    show(failure(error));
    return;
  }
  const logout = document.getElementById("logout");
  if (session.auth) {
    logout.hidden = false;
    logout.addEventListener("click", async () => {
      await api("/v1/explorer/logout", {method: "POST"}).catch(() => null);
      window.location.assign("/login");
    });
  }
  window.addEventListener("hashchange", route);
  route();
}

boot();
