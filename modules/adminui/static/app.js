// Sentinel admin UI: plain ES module, no dependencies, no build step.
// Everything shown is built with DOM calls and textContent (never
// HTML parsing of data), so values from the API cannot inject markup.
// The token lives in sessionStorage (this tab) and memory only; it is
// sent as a bearer token and never put in a URL.

const TOKEN_KEY = "sentinel-ui-token";
const POLL_MS = 2000;
const HISTORY = 90;
const SCOPES = { read: 1, operate: 2, admin: 3 };

const state = {
  token: null,
  who: null,
  page: "overview",
  upstreams: [],
  routes: [],
  agents: [],
  history: new Map(), // upstream id -> [{t, requests, failures}]
  routeHistory: new Map(), // route id -> [{t, requests, errors, buckets}]
  upstreamHistory: new Map(), // upstream id -> [{t, attempts, buckets}]
  agentHistory: new Map(), // agent id -> [{t, decisions, failures, calls, buckets}]
  timer: null,
  dirty: new Map(), // input id -> value typed and not yet applied
  config: null, // {file, content, sha256} of the running file
  draft: null,
  errors: [],
  logs: { access: [], audit: [], last: { access: 0, audit: 0 } },
  filter: { log: "access", text: "", status: "", route: "", decision: "", agent: "" },
};
const LOG_KEEP = 500;
// LATENCY_WINDOW is how many polls (of POLL_MS) each point of a latency
// chart covers: percentiles of the last 10 s, not of one 2 s poll.
const LATENCY_WINDOW = 5;
const DECISIONS = ["allow", "block", "redirect", "challenge"];

const $ = (id) => document.getElementById(id);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const can = (scope) => state.who && SCOPES[state.who.scope] >= SCOPES[scope];

function toast(msg) {
  const t = $("toast");
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 3000);
}

class APIError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body, headers) {
  const opts = { method, headers: { Authorization: `Bearer ${state.token}`, ...headers }, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (res.status === 401) {
    logout("The token was refused (401): sign in again.");
    throw new APIError(401, data);
  }
  if (!res.ok && res.status !== 422) throw new APIError(res.status, data);
  return { status: res.status, data };
}

// ---- session

async function login(token) {
  state.token = token;
  const { data } = await api("GET", "/api/v1/whoami");
  state.who = data;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login").hidden = true;
  $("page").hidden = false;
  $("nav").hidden = false;
  $("logout").hidden = false;
  $("nav-config").hidden = !can("admin");
  $("nav-logs").hidden = !can("operate");
  $("who").textContent = `${data.name} · ${data.scope}${data.namespace ? ` · ${data.namespace}` : ""}${can("operate") ? "" : " (read-only)"}`;
  document.body.dataset.scope = data.scope;
  if (!location.hash) location.hash = "#/overview";
  route();
  poll();
}

function logout(msg) {
  state.token = null;
  state.who = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(state.timer);
  $("page").hidden = true;
  $("page").replaceChildren();
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = msg || "";
  $("token").value = "";
  $("token").focus();
}

// ---- data

async function poll() {
  clearTimeout(state.timer);
  if (!state.token) return;
  try {
    const [u, r, a, m] = await Promise.all([
      api("GET", "/api/v1/upstreams"),
      api("GET", "/api/v1/routes"),
      api("GET", "/api/v1/agents").catch(() => ({ data: [] })),
      api("GET", "/api/v1/metrics/summary").catch(() => ({ data: null })),
    ]);
    recordRoutes(m.data);
    state.upstreams = u.data || [];
    state.routes = r.data || [];
    state.agents = a.data || [];
    record();
    if (state.page === "logs" && can("operate")) await fetchLogs();
    if (state.page !== "config") render();
  } catch (e) {
    if (e.status !== 401) toast(`Refresh failed: ${e.message}`);
  }
  // A hidden tab stops polling; it polls at once when shown again.
  if (state.token && !document.hidden) state.timer = setTimeout(poll, POLL_MS);
}

document.addEventListener("visibilitychange", () => { if (!document.hidden && state.token) poll(); });

function record() {
  const now = Date.now() / 1000;
  for (const u of state.upstreams) {
    let req = 0, fail = 0;
    for (const t of u.targets || []) { req += t.requests; fail += t.failures; }
    const hist = state.history.get(u.id) || [];
    hist.push({ t: now, requests: req, failures: fail });
    while (hist.length > HISTORY) hist.shift();
    state.history.set(u.id, hist);
  }
}

// keep appends a cumulative sample to a history, starting it again when
// a counter went back (a reload or a restart starts them at zero).
function keep(map, id, sample, total) {
  const hist = map.get(id) || [];
  if (hist.length && total(hist.at(-1)) > total(sample)) hist.length = 0;
  hist.push(sample);
  while (hist.length > HISTORY) hist.shift();
  map.set(id, hist);
}

function recordRoutes(summary) {
  if (!summary) return;
  const now = Date.now() / 1000;
  for (const u of summary.upstreams || []) {
    keep(state.upstreamHistory, u.upstream, { t: now, attempts: u.attempts, buckets: u.buckets || [] }, (x) => x.attempts);
  }
  for (const a of summary.agents || []) {
    const calls = Object.values(a.calls || {}).reduce((x, y) => x + y, 0);
    keep(state.agentHistory, a.agent, { t: now, decisions: a.decisions || {}, failures: a.failures, skipped: a.skipped, calls, buckets: a.buckets || [] }, (x) => x.calls);
  }
  for (const r of summary.routes || []) {
    const hist = state.routeHistory.get(r.route) || [];
    // A reload starts the counters again: so does the history.
    if (hist.length && hist.at(-1).requests > r.requests) hist.length = 0;
    hist.push({ t: now, requests: r.requests, errors: r.errors, buckets: r.buckets || [] });
    while (hist.length > HISTORY) hist.shift();
    state.routeHistory.set(r.route, hist);
  }
}

// percentile estimates the q quantile of the durations observed between
// two cumulative histograms, interpolating inside the bucket (seconds).
function percentile(from, to, q) {
  const delta = to.map((b, i) => ({ le: b.le, n: b.count - ((from[i] && from[i].count) || 0) }));
  const total = delta.length ? delta.at(-1).n : 0;
  if (!total) return null;
  const want = q * total;
  let prevLE = 0, prevN = 0;
  for (const b of delta) {
    if (b.n >= want) {
      if (b.le === null) return { over: prevLE };
      const frac = b.n === prevN ? 1 : (want - prevN) / (b.n - prevN);
      return { v: prevLE + (b.le - prevLE) * frac };
    }
    if (b.le !== null) { prevLE = b.le; prevN = b.n; }
  }
  return null;
}

function fmtDur(p) {
  if (!p) return "–";
  if (p.over !== undefined) return `> ${(p.over * 1000).toFixed(0)} ms`;
  return p.v < 1 ? `${(p.v * 1000).toFixed(1)} ms` : `${p.v.toFixed(2)} s`;
}

function routeRates(id) {
  const hist = state.routeHistory.get(id) || [];
  const out = [];
  for (let i = 1; i < hist.length; i++) {
    const dt = hist[i].t - hist[i - 1].t || 1;
    out.push({ rps: Math.max(0, (hist[i].requests - hist[i - 1].requests) / dt), eps: Math.max(0, (hist[i].errors - hist[i - 1].errors) / dt) });
  }
  return out;
}

function rates(id) {
  const hist = state.history.get(id) || [];
  const out = [];
  for (let i = 1; i < hist.length; i++) {
    const dt = hist[i].t - hist[i - 1].t || 1;
    out.push({
      rps: Math.max(0, (hist[i].requests - hist[i - 1].requests) / dt),
      eps: Math.max(0, (hist[i].failures - hist[i - 1].failures) / dt),
    });
  }
  return out;
}

// ---- charts

// lineChart draws series of values (null: no data, a gap) over the
// history's span; fmt formats a value with its unit (default: per
// second) and floor is the least top of the scale.
function lineChart(label, series, fmt = (v) => `${v.toFixed(2)}/s`, floor = 1) {
  const w = 300, hgt = 90, pad = 4;
  const max = Math.max(floor, ...series.flatMap((s) => s.values.filter((v) => v !== null)));
  const top = max;
  // The x axis spans the history kept, at least the last minute: a
  // fresh tab's charts fill within a minute rather than three.
  const n = Math.max(30, ...series.map((s) => s.values.length));
  const lines = series.flatMap((s) => {
    const segs = [[]];
    s.values.forEach((v, i) => {
      if (v === null) { if (segs.at(-1).length) segs.push([]); return; }
      segs.at(-1).push([pad + (i + (n - s.values.length)) * (w - 2 * pad) / (n - 1), hgt - pad - v / top * (hgt - 2 * pad - 10)]);
    });
    // A lone point (a gap on both sides) is drawn as a short dash.
    return segs.filter((p) => p.length).map((p) => svg("polyline", { class: `line ${s.cls || ""}`, "data-series": s.name,
      points: (p.length === 1 ? [[p[0][0] - 2, p[0][1]], [p[0][0] + 2, p[0][1]]] : p).map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ") }));
  });
  const lastOf = (s) => s.values.filter((v) => v !== null).at(-1);
  const last = series.map((s) => `${s.name} ${lastOf(s) === undefined ? "–" : fmt(lastOf(s))}`).join(", ");
  return svg("svg", { class: "chart", viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: "none", role: "img", "aria-label": `${label}: ${last}` },
    svg("title", {}, `${label}: ${last}`),
    svg("line", { class: "axis", x1: 0, y1: hgt - pad, x2: w, y2: hgt - pad }),
    svg("text", { x: pad, y: 10 }, `max ${fmt(max)}`),
    ...lines);
}

// legend names a chart's series with their colours.
function legend(series) {
  return h("p", { class: "legend", "aria-hidden": "true" }, series.map((s) => h("span", { class: `key ${s.cls || ""}`, text: s.name })));
}

const ms = (v) => `${(v * 1000).toFixed(v < 0.01 ? 2 : 1)} ms`;

// latencySeries are the p50, p90 and p99 (seconds, null without traffic)
// of each poll's last LATENCY_WINDOW polls of a history of cumulative
// histograms.
function latencySeries(hist) {
  const qs = [[0.5, "p50", "p50"], [0.9, "p90", "p90"], [0.99, "p99", "p99"]];
  return qs.map(([q, name, cls]) => ({ name, cls, values: hist.slice(1).map((x, i) => {
    const p = percentile(hist[Math.max(0, i + 1 - LATENCY_WINDOW)].buckets, x.buckets, q);
    return p ? (p.v ?? p.over) : null;
  }) }));
}

// windowPercentiles are the p50, p90 and p99 over a whole history.
function windowPercentiles(hist) {
  if (!hist || hist.length < 2) return null;
  const first = hist[0], last = hist.at(-1);
  return { window: Math.round(last.t - first.t), ps: [0.5, 0.9, 0.99].map((q) => percentile(first.buckets, last.buckets, q)) };
}

function barChart(label, items) {
  const w = 300, rowH = 16, hgt = Math.max(rowH, items.length * rowH);
  const max = Math.max(1e-9, ...items.map((i) => i.value));
  return svg("svg", { class: "chart", viewBox: `0 0 ${w} ${hgt}`, role: "img", "aria-label": label },
    svg("title", {}, label),
    ...items.flatMap((it, i) => [
      svg("rect", { class: "bar", x: 110, y: i * rowH + 2, height: rowH - 4, width: Math.max(1, (w - 170) * it.value / max) }),
      svg("text", { x: 0, y: i * rowH + 12 }, it.name),
      svg("text", { x: w - 56, y: i * rowH + 12 }, it.text),
    ]));
}

// ---- pages

const badge = (text, cls) => h("span", { class: `state ${cls || text}`, text });
const enc = encodeURIComponent;

async function act(what, fn) {
  try {
    await fn();
    toast(what);
    await poll();
  } catch (e) {
    if (e.status !== 401) toast(`${what} failed: ${e.message}`);
  }
}

function pageOverview() {
  const charts = state.upstreams.map((u) => {
    const r = rates(u.id);
    const uh = state.upstreamHistory.get(u.id) || [];
    const wp = windowPercentiles(uh);
    const lat = latencySeries(uh);
    return h("div", { class: "card", "data-upstream": u.id },
      h("h2", { text: `Upstream ${u.id}` }),
      h("p", { class: "muted", text: `${u.healthy_targets}/${(u.targets || []).length} targets healthy` }),
      h("h3", { text: "Requests and failures per second" }),
      lineChart(`Requests and errors per second of ${u.id}`, [
        { name: "requests", values: r.map((x) => x.rps) },
        { name: "errors", values: r.map((x) => x.eps), cls: "err" },
      ]),
      h("h3", { text: "Latency (time to response headers)" }),
      lineChart(`Latency percentiles of upstream ${u.id} over ${LATENCY_WINDOW * POLL_MS / 1000} s windows`, lat, ms, 0.001),
      legend(lat),
      h("p", { class: "latency", "data-upstream-latency": u.id, text: wp && wp.ps[0] ? `Over the last ${wp.window} s: p50 ${fmtDur(wp.ps[0])} · p90 ${fmtDur(wp.ps[1])} · p99 ${fmtDur(wp.ps[2])}` : "No attempt in the window." }),
      (u.targets || []).every((t) => !(t.balancing || []).length) ? h("p", { class: "muted", text: "No load-balancing estimates (this policy keeps none)." }) : barChart(`Load-balancing latency estimate per target of ${u.id}`, (u.targets || []).map((t) => {
        const est = (t.balancing || [])[0];
        const ms = est ? est.latency_seconds * 1000 : 0;
        return { name: t.address, value: ms, text: est ? `${ms.toFixed(1)} ms` : "n/a" };
      })));
  });
  const routeCards = [...state.routeHistory.keys()].sort().map((id) => {
    const hist = state.routeHistory.get(id);
    const r = routeRates(id);
    const first = hist[0], last = hist.at(-1);
    const window = Math.round(last.t - first.t);
    const ps = [0.5, 0.9, 0.99].map((q) => percentile(first.buckets, last.buckets, q));
    const lat = latencySeries(hist);
    return h("div", { class: "card", "data-route": id },
      h("h2", { text: `Route ${id}` }),
      h("h3", { text: "Requests and 5xx per second" }),
      lineChart(`Requests and 5xx errors per second of route ${id}`, [
        { name: "requests", values: r.map((x) => x.rps) },
        { name: "5xx", values: r.map((x) => x.eps), cls: "err" },
      ]),
      h("h3", { text: "Latency (until the response is written)" }),
      lineChart(`Latency percentiles of route ${id} over ${LATENCY_WINDOW * POLL_MS / 1000} s windows`, lat, ms, 0.001),
      legend(lat),
      h("p", { class: "latency", text: `Latency over the last ${window} s: p50 ${fmtDur(ps[0])} · p90 ${fmtDur(ps[1])} · p99 ${fmtDur(ps[2])}` }));
  });
  const rows = state.upstreams.flatMap((u) => (u.targets || []).map((t) => {
    const est = (t.balancing || [])[0];
    return h("tr", {},
      h("td", { text: u.id }), h("td", { text: t.address }),
      h("td", {}, badge(t.healthy ? "up" : "down")), h("td", {}, badge(t.state)),
      h("td", { text: t.in_flight }), h("td", { text: t.requests }), h("td", { text: t.failures }),
      h("td", { text: est ? `${est.policy} ${est.score !== undefined ? est.score.toFixed(3) : ""}` : "" }),
      h("td", { text: est ? `${(est.error_ratio * 100).toFixed(1)} %` : "" }));
  }));
  const on = state.routes.filter((r) => r.enabled).length;
  return [
    h("h1", { text: "Overview" }),
    h("p", { class: "muted", text: `${state.routes.length} routes (${on} enabled) · ${state.upstreams.length} upstreams · ${state.agents.length} agents · refreshed every ${POLL_MS / 1000} s` }),
    h("h2", { text: "Routes" }),
    routeCards.length ? h("div", { class: "grid" }, routeCards) : h("p", { class: "muted", text: "No route metrics yet (metrics off, or no request)." }),
    h("h2", { text: "Upstreams" }),
    h("div", { class: "grid" }, charts),
    h("div", { class: "card" }, h("h2", { text: "Targets" }),
      h("table", {}, h("thead", {}, h("tr", {}, ["Upstream", "Target", "Health", "State", "In flight", "Requests", "Failures", "LB score", "Error ratio"].map((c) => h("th", { scope: "col", text: c })))),
        h("tbody", {}, rows))),
  ];
}

function pageUpstreams() {
  const cards = state.upstreams.map((u) => {
    const path = `/api/v1/upstreams/${enc(u.id)}`;
    const rows = (u.targets || []).map((t) => {
      const tp = `${path}/targets/${enc(t.address)}`;
      const wid = `w-${u.id}-${t.address}`;
      const actions = [];
      if (can("operate")) {
        actions.push(
          h("label", { class: "sr-only", for: wid, text: `Weight of ${t.address}` }),
          h("input", { id: wid, class: "weight", type: "number", min: 1, max: 10000, value: state.dirty.get(wid) ?? t.weight,
            oninput: (e) => state.dirty.set(wid, e.target.value) }),
          h("button", { type: "button", id: `setw-${u.id}-${t.address}`, class: "secondary", "aria-label": `Set weight of ${t.address}`, text: "Set weight",
            onclick: () => act(`Weight of ${t.address} set`, async () => {
              const v = Number($(wid).value);
              state.dirty.delete(wid);
              await api("PATCH", tp, { weight: v });
            }) }));
        if (t.state === "active") {
          actions.push(h("button", { type: "button", id: `act-${u.id}-${t.address}`, class: "secondary", "data-action": "drain", "aria-label": `Drain ${t.address}`, text: "Drain",
            onclick: () => act(`Draining ${t.address}`, () => api("POST", `${tp}/drain`)) }));
        } else {
          actions.push(h("button", { type: "button", id: `act-${u.id}-${t.address}`, class: "secondary", "data-action": "activate", "aria-label": `Activate ${t.address}`, text: "Activate",
            onclick: () => act(`${t.address} active`, () => api("PATCH", tp, { state: "active" })) }));
        }
      }
      if (can("admin")) {
        actions.push(h("button", { type: "button", id: `rm-${u.id}-${t.address}`, class: "danger", "aria-label": `Remove ${t.address}`, text: "Remove",
          onclick: () => confirm(`Remove target ${t.address} from ${u.id}?`) && act(`${t.address} removed`, () => api("DELETE", tp)) }));
      }
      return h("tr", { "data-target": t.address },
        h("td", { text: t.address }),
        h("td", { class: "target-state" }, badge(t.state)),
        h("td", {}, badge(t.healthy ? "up" : "down")),
        h("td", { class: "in-flight", text: t.in_flight }),
        h("td", { text: can("operate") ? "" : t.weight }, ),
        h("td", { text: t.origin }),
        h("td", {}, h("div", { class: "row-actions" }, actions)));
    });
    let add = null;
    if (can("admin")) {
      const aid = `add-${u.id}`;
      add = h("form", { class: "row-actions", onsubmit: (e) => {
        e.preventDefault();
        const addr = $(aid).value.trim();
        act(`${addr} added to ${u.id}`, () => api("POST", `${path}/targets`, { address: addr }));
      } },
      h("label", { for: aid, text: "Add target" }),
      h("input", { id: aid, placeholder: "host:port", required: true }),
      h("button", { type: "submit", text: "Add" }));
    }
    return h("div", { class: "card", "data-upstream": u.id },
      h("h2", { text: `${u.id} ` }, h("span", { class: "muted", text: `${u.origin} · version ${u.version}` })),
      h("table", {},
        h("thead", {}, h("tr", {}, ["Target", "State", "Health", "In flight", can("operate") ? "" : "Weight", "Origin", can("operate") ? "Weight and actions" : ""].map((c) => h("th", { scope: "col", text: c })))),
        h("tbody", {}, rows)),
      add);
  });
  return [h("h1", { text: "Upstreams" }),
    can("operate") ? null : h("p", { class: "muted", id: "readonly-note", text: "Read-only view: this token has the read scope." }),
    cards];
}

function pageRoutes() {
  const rows = state.routes.map((r) => h("tr", { "data-route": r.id },
    h("td", { text: r.id }),
    h("td", {}, badge(r.enabled ? "enabled" : "disabled", r.enabled ? "on" : "off")),
    h("td", {}, can("operate") ? h("button", { type: "button", id: `toggle-${r.id}`, class: r.enabled ? "danger" : "secondary", "data-action": "toggle",
      "aria-label": `${r.enabled ? "Disable" : "Enable"} route ${r.id}`, "aria-pressed": String(!r.enabled),
      text: r.enabled ? "Disable" : "Enable",
      onclick: () => act(`Route ${r.id} ${r.enabled ? "disabled" : "enabled"}`, () => api("PUT", `/api/v1/routes/${enc(r.id)}/enabled`, { enabled: !r.enabled })) }) : null)));
  return [h("h1", { text: "Routes" }),
    h("p", { class: "muted", text: "A disabled route answers 503, or falls through to the next route (when-disabled \"next-route\")." }),
    h("div", { class: "card" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Route", "State", can("operate") ? "Switch" : ""].map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, rows)))];
}

// agentRates are an agent's decisions and failures per second between
// consecutive polls.
function agentRates(hist) {
  const out = [];
  for (let i = 1; i < hist.length; i++) {
    const dt = hist[i].t - hist[i - 1].t || 1;
    const d = (k) => Math.max(0, ((hist[i].decisions[k] || 0) - (hist[i - 1].decisions[k] || 0)) / dt);
    const r = { failures: Math.max(0, (hist[i].failures - hist[i - 1].failures) / dt) };
    for (const k of DECISIONS) r[k] = d(k);
    out.push(r);
  }
  return out;
}

function pageAgents() {
  if (!state.agents.length) return [h("h1", { text: "Agents" }), h("p", { class: "muted", text: "No agent is configured or registered." })];
  const cols = ["Agent", "Transport", "Connected", "Breaker", "In flight", "Queue", "Latency p50 / p99", "Failure mode", "Events", "Last error"];
  const rows = state.agents.map((a) => {
    const wp = windowPercentiles(state.agentHistory.get(a.id));
    return h("tr", { "data-agent": a.id },
      h("td", { text: a.id }), h("td", { text: `${a.transport}${a.address ? ` ${a.address}` : ""}` }),
      h("td", {}, badge(a.connected ? "up" : "down")), h("td", {}, badge(a.breaker)),
      h("td", { class: "in-flight", text: a.in_flight }), h("td", { class: "queue", text: a.queue }),
      h("td", { class: "agent-latency", text: wp && wp.ps[0] ? `${fmtDur(wp.ps[0])} / ${fmtDur(wp.ps[2])}` : "–" }),
      h("td", { text: a.failure_mode }),
      h("td", { text: (a.events || []).join(", ") }), h("td", { class: "error", text: a.last_error ? `${a.last_error} (${a.last_error_at})` : "" }));
  });
  const cards = state.agents.map((a) => {
    const hist = state.agentHistory.get(a.id) || [];
    const last = hist.at(-1) || { decisions: {}, failures: 0, skipped: 0 };
    const r = agentRates(hist);
    const series = [...DECISIONS.map((k) => ({ name: k, cls: `d-${k}`, values: r.map((x) => x[k]) })),
      { name: "failures", cls: "err", values: r.map((x) => x.failures) }];
    const lat = latencySeries(hist);
    return h("div", { class: "card", "data-agent-card": a.id },
      h("h2", { text: `Agent ${a.id}` }),
      h("table", { class: "counts", "aria-label": `Decisions of agent ${a.id} since the start` },
        h("thead", {}, h("tr", {}, [...DECISIONS, "failures", "skipped"].map((k) => h("th", { scope: "col", text: k })))),
        h("tbody", {}, h("tr", {},
          DECISIONS.map((k) => h("td", { "data-decision": k, text: last.decisions[k] || 0 })),
          h("td", { "data-decision": "failures", text: last.failures || 0 }),
          h("td", { "data-decision": "skipped", text: last.skipped || 0 })))),
      h("h3", { text: "Decisions and failures per second" }),
      lineChart(`Decisions and failures per second of agent ${a.id}`, series, undefined, 0.5),
      legend(series),
      h("h3", { text: "Call latency" }),
      lineChart(`Call latency percentiles of agent ${a.id} over ${LATENCY_WINDOW * POLL_MS / 1000} s windows`, lat, ms, 0.001),
      legend(lat));
  });
  return [h("h1", { text: "Agents" }),
    h("p", { class: "muted", text: "Breaker, queue and in-flight are live; decisions count since the proxy started (every route's filters), latency is over the charts' window." }),
    h("div", { class: "card" }, h("table", {},
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", text: c })))), h("tbody", {}, rows))),
    h("div", { class: "grid wide" }, cards)];
}

// ---- logs

async function fetchLogs() {
  for (const log of can("admin") ? ["access", "audit"] : ["access"]) {
    const { data } = await api("GET", `/api/v1/logs/${log}?after=${state.logs.last[log]}`);
    // A restarted process numbers from 1 again: start over.
    if (data.last < state.logs.last[log]) state.logs[log] = [];
    state.logs.last[log] = data.last;
    const parsed = (data.lines || []).map((l) => {
      let f = null;
      try { f = JSON.parse(l.text); } catch { /* a combined-style line */ }
      return { seq: l.seq, text: l.text, f, n: entry(log, f || {}) };
    });
    state.logs[log] = state.logs[log].concat(parsed).slice(-LOG_KEEP);
  }
}

// AGENT_KINDS are the audit event kinds of agent decisions (modules/audit).
const AGENT_KINDS = new Set(["agent_decision", "waf"]);

// entry is a log line's fields the view shows and filters on, from
// either shape of the audit ring's entries: the control-plane API's
// ({ts, who, msg, method, path, status, route, error}) and modules/audit's
// events ({time, kind, action, actor, route, status, method, path,
// reason, request_id}); and from the access log's lines.
function entry(log, f) {
  if (log === "access") {
    return { route: f.route_id || "", status: f.status, id: f.trace_id || "" };
  }
  if (f.kind) {
    const decision = AGENT_KINDS.has(f.kind) ? f.action || "" : "";
    return { time: f.time || "", kind: f.kind, who: f.actor || "", what: f.action || "", route: f.route || "", status: f.status,
      call: `${f.method || ""} ${f.path || ""}`.trim(), detail: f.reason || (f.rule_ids || []).join(", "),
      decision, agent: decision ? f.actor || "" : "", id: f.request_id || "" };
  }
  return { time: f.ts ? new Date(f.ts * 1000).toISOString() : "", kind: "control_plane", who: f.who || "", what: f.msg || "",
    route: f.route || "", status: f.status, call: `${f.method || ""} ${f.path || ""}`.trim(), detail: f.error || "", decision: "", agent: "" };
}

// decisionsByRequest maps request ids to the agent decisions the audit
// ring holds for them, so that the access log's lines can show (and be
// filtered by) the decision that answered them.
function decisionsByRequest() {
  const m = new Map();
  for (const l of state.logs.audit) if (l.n.decision && l.n.id) m.set(l.n.id, l.n);
  return m;
}

function logMatches(l, byReq) {
  const { text, status, route, decision, agent } = state.filter;
  if (text && !l.text.toLowerCase().includes(text.toLowerCase())) return false;
  const n = l.n;
  if (status) {
    const s = String(n.status ?? "");
    if (/^[1-5]xx$/i.test(status) ? s[0] !== status[0] : s !== status) return false;
  }
  if (route && n.route !== route) return false;
  const d = state.filter.log === "access" ? (byReq.get(n.id) || {}) : n;
  if (decision && (decision === "any" ? !d.decision : d.decision !== decision)) return false;
  if (agent && d.agent !== agent) return false;
  return true;
}

function pageLogs() {
  if (!can("operate")) return [h("h1", { text: "Logs" }), h("p", { class: "muted", text: "The logs need an operate or admin token." })];
  const flt = state.filter;
  const field = (id, label, key, attrs = {}) => [h("label", { for: id, text: label }),
    h("input", { id, value: flt[key], ...attrs, oninput: (e) => { flt[key] = e.target.value; render(); } })];
  const choice = (id, label, key, options) => [h("label", { for: id, text: label }),
    h("select", { id, onchange: (e) => { flt[key] = e.target.value; render(); } },
      options.map(([v, t]) => h("option", { value: v, selected: v === flt[key], text: t })))];
  const logs = can("admin") ? ["access", "audit"] : ["access"];
  const byReq = decisionsByRequest();
  const lines = state.logs[flt.log].filter((l) => logMatches(l, byReq)).slice(-200);
  const routes = [...new Set([...state.routes.map((r) => r.id), ...state.logs[flt.log].map((l) => l.n.route).filter(Boolean)])].sort();
  const decisionBadge = (d) => d && d.decision ? badge(`${d.decision}${d.agent ? ` · ${d.agent}` : ""}`, d.decision === "allow" ? "up" : d.decision === "block" ? "down" : "draining") : "";
  const row = (l) => {
    const f = l.f || {};
    if (flt.log === "access") {
      return h("tr", { "data-seq": l.seq },
        h("td", { text: f.timestamp || "" }), h("td", { text: f.route_id || "" }), h("td", { text: f.method || "" }),
        h("td", { text: `${f.path || l.text}${f.query ? `?${f.query}` : ""}` }), h("td", {}, f.status ? badge(String(f.status), f.status >= 500 ? "down" : f.status >= 400 ? "draining" : "up") : ""),
        h("td", { text: f.duration_ms ?? "" }), h("td", { text: f.upstream_addr || "" }), h("td", { class: "decision" }, decisionBadge(byReq.get(l.n.id))));
    }
    const n = l.n;
    return h("tr", { "data-seq": l.seq, "data-kind": n.kind }, h("td", { text: n.time }), h("td", { text: n.kind }), h("td", { text: n.who }),
      h("td", { class: "decision" }, n.decision ? decisionBadge(n) : n.what), h("td", { text: n.route }),
      h("td", { text: n.call }), h("td", { text: n.status ?? "" }), h("td", { class: "error", text: n.detail }));
  };
  const cols = flt.log === "access" ? ["Time", "Route", "Method", "Path", "Status", "ms", "Upstream", can("admin") ? "Agent decision" : ""] : ["Time", "Kind", "Who", "What", "Route", "Call", "Status", "Detail"];
  const decisions = [["", "any or none"], ["any", "any decision"], ...["block", "redirect", "challenge", "allow"].map((d) => [d, d])];
  const note = flt.log === "access"
    ? (can("admin") ? "Agent decisions come from the audit log (matched by request id)." : "Agent decisions need the audit log (an admin token).")
    : "";
  return [h("h1", { text: "Logs" }),
    h("form", { class: "card row-actions", role: "search", "aria-label": "Log filters", onsubmit: (e) => e.preventDefault() },
      choice("log-select", "Log", "log", logs.map((l) => [l, l === "access" ? "Access log" : "Audit log"])),
      field("log-text", "Contains", "text", { type: "search" }),
      field("log-status", "Status", "status", { placeholder: "503 or 5xx", size: 8 }),
      choice("log-route", "Route", "route", [["", "any"], ...routes.map((r) => [r, r])]),
      // The access log's decisions come from the audit log (admin only).
      can("admin") ? choice("log-decision", "Agent decision", "decision", decisions) : null,
      can("admin") ? field("log-agent", "Agent", "agent", { size: 8 }) : null,
      h("span", { class: "muted", id: "log-count", text: `${lines.length} shown (newest first) of ${state.logs[flt.log].length} kept · live (every ${POLL_MS / 1000} s)` }),
      note ? h("span", { class: "muted", text: note }) : null),
    h("div", { class: "card" }, h("table", { id: "log-table", "aria-label": `${flt.log} log` },
      h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col", text: c })))),
      h("tbody", {}, lines.slice().reverse().map(row))),
    lines.length ? null : h("p", { class: "muted", text: flt.log === "access" ? "No line yet (is observability.logging.access-log enabled?)." : "No entry yet." }))];
}

// ---- config editor

function highlight(src) {
  const frag = document.createDocumentFragment();
  const re = /(\/\/[^\n]*|\/\*[\s\S]*?\*\/)|("(?:[^"\\\n]|\\.)*")|(#(?:true|false|null)\b)|(-?\b\d[\d_.]*\b)|((?:^|(?<=[{;]\s*))[A-Za-z][\w-]*)/gm;
  let last = 0;
  for (const m of src.matchAll(re)) {
    if (m.index > last) frag.append(src.slice(last, m.index));
    const cls = m[1] ? "tok-com" : m[2] ? "tok-str" : m[3] ? "tok-kw" : m[4] ? "tok-num" : "tok-node";
    frag.append(h("span", { class: cls, text: m[0] }));
    last = m.index + m[0].length;
  }
  frag.append(src.slice(last) + "\n");
  return frag;
}

function errorLines(file) {
  // "file:line:col: message" -> {line, col, message}
  const out = [];
  for (const e of state.errors) {
    const m = /^(.*?):(\d+):(\d+): (.*)$/.exec(e);
    if (m && (!file || m[1] === file)) out.push({ line: Number(m[2]), col: Number(m[3]), text: e });
    else out.push({ line: 0, col: 0, text: e });
  }
  return out;
}

function diffLines(a, b) {
  // Longest common subsequence on lines; fine for config-sized files.
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  if (n * m > 4e6) return [{ op: " ", text: "(file too large to diff here)" }];
  const dp = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { out.push({ op: " ", text: x[i] }); i++; j++; }
    // Removed lines before the added ones that replace them.
    else if (i < n && (j === m || dp[i + 1][j] >= dp[i][j + 1])) { out.push({ op: "-", text: x[i] }); i++; }
    else { out.push({ op: "+", text: y[j] }); j++; }
  }
  return out;
}

function renderEditor() {
  const src = state.draft ?? "";
  const bad = new Set(errorLines(state.config?.file).map((e) => e.line));
  const lines = src.split("\n");
  const gutter = $("gutter");
  gutter.replaceChildren(...lines.map((_, i) => h("div", { class: bad.has(i + 1) ? "bad" : null, "data-line": i + 1, text: i + 1 })));
  $("hl").replaceChildren(highlight(src));
  const ta = $("source");
  ta.rows = lines.length + 1;
  const list = $("errors");
  list.replaceChildren(...errorLines(state.config?.file).map((e) => h("li", {},
    h("button", { type: "button", class: "secondary", "data-line": e.line, text: e.line ? `line ${e.line}:${e.col}` : "file",
      onclick: () => gotoLine(e.line, e.col) }), " ", e.text)));
  $("status").textContent = state.errors.length ? `${state.errors.length} problem(s)` : (state.validated ? "Valid." : "");
  $("dirty").textContent = state.draft !== state.config?.content ? "Edited (not applied)" : "Same as the running file";
}

function gotoLine(line, col) {
  if (!line) return;
  const ta = $("source");
  const lines = ta.value.split("\n");
  let pos = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
  pos += Math.max(0, col - 1);
  ta.focus();
  ta.setSelectionRange(pos, pos);
}

async function loadConfig() {
  const { data } = await api("GET", "/api/v1/config/source");
  state.config = data;
  state.draft = data.content;
  state.errors = [];
  state.validated = false;
}

function pageConfig() {
  if (!can("admin")) return [h("h1", { text: "Config" }), h("p", { class: "muted", text: "The config editor needs an admin token." })];
  const ta = h("textarea", { id: "source", spellcheck: "false", "aria-label": "Config file (KDL)", wrap: "off",
    oninput: (e) => { state.draft = e.target.value; state.validated = false; renderEditor(); } });
  const view = [h("h1", { text: "Config" }),
    h("p", { class: "muted", id: "config-file", text: state.config ? `${state.config.file} · sha256 ${state.config.sha256.slice(0, 12)}…` : "Loading…" }),
    h("div", { class: "card" },
      h("div", { class: "row-actions" },
        h("button", { type: "button", id: "validate", text: "Validate", onclick: validateDraft }),
        h("button", { type: "button", id: "show-diff", class: "secondary", text: "Diff against running", onclick: showDiff }),
        h("button", { type: "button", id: "revert", class: "secondary", text: "Revert", onclick: () => { state.draft = state.config.content; state.errors = []; $("source").value = state.draft; renderEditor(); } }),
        h("button", { type: "button", id: "apply", class: "danger", text: "Apply…", hidden: true, title: "Write the edited text to the config file and reload it", onclick: applyStart }),
        h("button", { type: "button", id: "reload", class: "danger", text: "Reload the config file", onclick: reloadConfig }),
        h("span", { id: "dirty", class: "muted" }),
        h("span", { id: "status", role: "status" })),
      h("ul", { id: "errors", class: "errors error", "aria-label": "Validation problems" }),
      h("div", { class: "editor" }, h("div", { id: "gutter", class: "gutter", "aria-hidden": "true" }),
        h("div", { class: "editor-wrap" }, h("pre", { id: "hl", "aria-hidden": "true" }), ta))),
    h("div", { class: "card", id: "apply-card", hidden: true, role: "dialog", "aria-labelledby": "apply-title" },
      h("h2", { id: "apply-title", text: "Apply these changes to the config file?" }),
      h("p", { class: "muted", text: "The text is validated, written in place of the file and reloaded; if the reload fails, the previous file is put back." }),
      h("div", { id: "apply-diff", class: "diff" }),
      h("div", { class: "row-actions" },
        h("button", { type: "button", id: "apply-confirm", class: "danger", text: "Write and reload", onclick: applyConfirm }),
        h("button", { type: "button", id: "apply-cancel", class: "secondary", text: "Cancel", onclick: () => { $("apply-card").hidden = true; } }))),
    h("div", { class: "card", id: "diff-card", hidden: true }, h("h2", { text: "Diff (running → edited)" }), h("div", { id: "diff", class: "diff" }))];
  queueMicrotask(async () => {
    try {
      if (!state.config) await loadConfig();
      $("config-file").textContent = `${state.config.file} · sha256 ${state.config.sha256.slice(0, 12)}…`;
      $("source").value = state.draft;
      $("apply").hidden = !(state.config.editor && can("admin"));
      renderEditor();
    } catch (e) {
      $("config-file").textContent = `Cannot read the config file: ${e.message}`;
    }
  });
  return view;
}

async function validateDraft() {
  try {
    const { status, data } = await api("POST", "/api/v1/config/validate", { content: state.draft });
    state.errors = status === 422 ? (data.errors || [data.error]) : [];
    state.validated = status === 200;
    renderEditor();
    if (state.errors.length) toast(`${state.errors.length} problem(s) found`);
    else toast("The edited config is valid");
  } catch (e) {
    if (e.status !== 401) toast(`Validation failed: ${e.message}`);
  }
}

function diffView(target) {
  const d = diffLines(state.config.content, state.draft);
  const changed = d.filter((l) => l.op !== " ").length;
  $(target).replaceChildren(...(changed ? d : [{ op: " ", text: "No change." }]).map((l) =>
    h("div", { class: l.op === "+" ? "add" : l.op === "-" ? "del" : null, text: `${l.op} ${l.text}` })));
  return changed;
}

function showDiff() {
  diffView("diff");
  $("diff-card").hidden = false;
}

// applyStart shows the confirm step: the diff of what would be written.
function applyStart() {
  if (!diffView("apply-diff")) { toast("No change to apply"); return; }
  $("apply-card").hidden = false;
  $("apply-confirm").focus();
}

// applyConfirm writes the edited text (PUT /api/v1/config/source, If-Match
// the SHA-256 of the file as read) and reloads it.
async function applyConfirm() {
  $("apply-card").hidden = true;
  try {
    const { status, data } = await api("PUT", "/api/v1/config/source", { content: state.draft }, { "If-Match": `"${state.config.sha256}"` });
    if (status === 422) {
      state.errors = data.errors || [data.error];
      renderEditor();
      toast(data.error || "Apply refused");
      return;
    }
    const draft = state.draft;
    await loadConfig();
    $("source").value = state.draft;
    renderEditor();
    toast(state.draft === draft ? `Applied and reloaded ${data.config_file}` : "Applied; the file read back differs from the edit");
  } catch (e) {
    if (e.status === 412) toast("The config file changed on disk since it was loaded: reload the page, then edit again");
    else if (e.status !== 401) toast(`Apply failed: ${e.message}`);
  }
}

async function reloadConfig() {
  if (state.draft !== state.config.content && !confirm("The edits in the editor are not in the file: the file on disk is reloaded as it is. Go on?")) return;
  try {
    const { status, data } = await api("POST", "/api/v1/config/reload");
    if (status === 422) {
      state.errors = data.errors || [data.error];
      renderEditor();
      toast("Reload refused: the file is invalid");
      return;
    }
    toast(`Reloaded ${data.config_file}`);
    await loadConfig();
    $("source").value = state.draft;
    renderEditor();
  } catch (e) {
    if (e.status !== 401) toast(`Reload failed: ${e.message}`);
  }
}

// ---- routing and rendering

const pages = { overview: pageOverview, upstreams: pageUpstreams, routes: pageRoutes, agents: pageAgents, logs: pageLogs, config: pageConfig };

function route() {
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
  state.page = pages[name] ? name : "overview";
  for (const p of Object.keys(pages)) {
    const a = $(`nav-${p}`);
    if (p === state.page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  render(true);
  if (state.page === "logs") poll();
}

function render(force) {
  if (!state.who) return;
  if (state.page === "config" && !force) return;
  const active = document.activeElement;
  const focusID = active && active.id;
  const scroll = window.scrollY;
  $("page").replaceChildren(...[pages[state.page]()].flat(2).filter(Boolean));
  $("page").dataset.page = state.page;
  if (focusID && $(focusID) && !force) $(focusID).focus();
  window.scrollTo(0, scroll);
}

window.addEventListener("hashchange", () => state.who && route());
$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const tok = $("token").value.trim();
  $("token").value = "";
  $("login-error").textContent = "";
  try {
    await login(tok);
  } catch (err) {
    if (err.status !== 401) logout(`Sign-in failed: ${err.message}`);
  }
});
$("logout").addEventListener("click", () => logout("Signed out."));

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) login(saved).catch(() => logout(""));
else $("token").focus();
