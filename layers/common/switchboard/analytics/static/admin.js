// Switchboard operations dashboard: polls the analytics HTTP API (admin JWT) and draws
// plain SVG charts. No build step, no CDN. Served by the analytics API itself at
// /admin/index.html (switchboard/analytics/dashboard.py), so every URL here is relative:
// the same page works on the devserver, on an execute-api URL and under a custom domain.
const API = new URL("../api/analytics", location.href).pathname;
const CONFIG = new URL("config.json", location.href).pathname;
const SVG_NS = "http://www.w3.org/2000/svg";
const params = new URLSearchParams(location.search);
const REFRESH_SECONDS = Math.min(300, Math.max(1, Number(params.get("refresh")) || 5));
const HISTORY = 60; // queue samples kept by the page (GetQueueAttributes is point-in-time)
const COLORS = ["#2456d6", "#1f9d55", "#c77700", "#8e24aa", "#c62828", "#00838f"];
const TOKEN_KEY = "sb-admin-token";
const PKCE_KEY = "sb-admin-pkce";

const $ = (id) => document.getElementById(id);
const state = { token: params.get("token") || sessionStorage.getItem(TOKEN_KEY), timer: 0, queueHistory: [], oidc: null };

class AuthError extends Error {}

async function devToken() {
  // The devserver's developer endpoint (local stack only): a token for the demo admin.
  try {
    const response = await fetch("/__devserver/token?user=admin");
    if (!response.ok) return null;
    const body = await response.json();
    if (body.admin) $("demo-link").hidden = false;
    return body.admin ? body.token : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------- OpenID Connect
// Authorization code flow with PKCE (RFC 7636): the page is a public client, so it holds
// no secret; the verifier stays in this tab's sessionStorage until the IdP sends the
// browser back here with ?code=...&state=...
const base64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const randomString = () => base64url(crypto.getRandomValues(new Uint8Array(32)));
const redirectUri = () => location.origin + location.pathname;

async function signIn() {
  const verifier = randomString(), nonce = randomString();
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state: nonce }));
  const url = new URL(state.oidc.authorizeUrl);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: state.oidc.clientId,
    redirect_uri: redirectUri(),
    scope: state.oidc.scopes,
    state: nonce,
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

async function finishSignIn() {
  const code = params.get("code"), returned = params.get("state"), failure = params.get("error");
  if (!code && !failure) return;
  history.replaceState(null, "", location.pathname); // the code is single-use: drop it
  const pending = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  if (failure) throw new AuthError(`sign-in failed: ${failure}`);
  if (!pending || pending.state !== returned) throw new AuthError("sign-in failed: the answer does not match this tab's request");
  const response = await fetch(state.oidc.tokenUrl, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: state.oidc.clientId,
      code,
      redirect_uri: redirectUri(),
      code_verifier: pending.verifier,
    }),
  });
  const body = response.ok ? await response.json() : {};
  if (!body[state.oidc.token]) throw new AuthError(`sign-in failed: the identity provider answered ${response.status}`);
  state.token = body[state.oidc.token];
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  if (state.oidc?.logoutUrl) {
    const url = new URL(state.oidc.logoutUrl);
    url.searchParams.set("client_id", state.oidc.clientId);
    url.searchParams.set("logout_uri", redirectUri());
    location.assign(url.toString());
  } else {
    location.replace(location.pathname);
  }
}

async function api(path) {
  const response = await fetch(API + path, { headers: { Authorization: `Bearer ${state.token}` } });
  if (response.status === 401 || response.status === 403) {
    throw new AuthError(response.status === 401 ? "the token was refused" : "this token has no admin role");
  }
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.dataset.state = kind;
}

// ---------------------------------------------------------------------------- formats
const number = new Intl.NumberFormat("en");
function format(value, kind) {
  if (value === null || value === undefined) return "–";
  switch (kind) {
    case "percent": return `${(value * 100).toFixed(1)} %`;
    case "ms": return value < 1000 ? `${number.format(Math.round(value))} ms` : `${(value / 1000).toFixed(2)} s`;
    case "duration": return duration(value);
    case "bytes": return bytes(value);
    case "decimal": return value.toFixed(2);
    default: return number.format(value);
  }
}
function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}
const pick = (object, path) => path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), object);
const clock = (t) => new Date(t).toISOString().slice(11, 16);

// ---------------------------------------------------------------------------- cards, tables
function renderCards(overview) {
  for (const dd of document.querySelectorAll("dd[data-metric]")) {
    const values = dd.dataset.metric.split(",").map((path) => format(pick(overview, path), dd.dataset.format));
    dd.textContent = values.join(" / ");
  }
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const { text, className } of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    tr.append(td);
  }
  return tr;
}

function renderQueues(queues) {
  const body = $("queues").tBodies[0];
  body.replaceChildren(
    ...Object.entries(queues).map(([name, q]) =>
      row([
        { text: name },
        { text: q.depth === undefined ? "–" : format(q.depth), className: "num" },
        { text: q.inFlight === undefined ? "–" : format(q.inFlight), className: "num" },
        { text: q.dlqDepth === undefined ? "–" : format(q.dlqDepth), className: q.dlqDepth > 0 ? "num bad" : "num" },
        // Main queues: their consumers' records over the last hour (failed receives count).
        { text: q.processing?.available ? format(q.processing.processed + q.processing.failed) : "–", className: "num" },
        { text: q.processing?.available ? format(q.processing.failureRate, "percent") : "–", className: q.processing?.failureRate > 0 ? "num bad" : "num" },
        { text: q.processing?.available ? format(q.processing.processingTimeMs.average, "ms") : "–", className: "num" },
      ]),
    ),
  );
}

function renderSessions(active, recent) {
  $("active-sessions").tBodies[0].replaceChildren(
    ...active.sessions.map((s) => row([{ text: s.userId }, { text: s.device || "–" }, { text: duration(s.durationMs) }, { text: format(s.messages), className: "num" }, { text: format(s.typingEvents), className: "num" }])),
  );
  $("recent-sessions").tBodies[0].replaceChildren(
    ...recent.sessions.map((s) => row([{ text: s.userId }, { text: clock(s.endedAt) }, { text: duration(s.durationMs) }, { text: format(s.messages), className: "num" }, { text: format(s.typingEvents), className: "num" }])),
  );
}

// ---------------------------------------------------------------------------- charts
function el(name, attributes, parent) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  parent?.append(node);
  return node;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= value);
}

/** series: [{name, points: [{t, value}]}] (value null = no data). */
function drawChart(svg, title, series, unit = "") {
  const width = 480, height = 200, left = 44, right = 12, top = 26, bottom = 22;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const all = series.flatMap((s) => s.points);
  const known = all.filter((p) => p.value !== null && p.value !== undefined);
  const t0 = Math.min(...all.map((p) => p.t)), t1 = Math.max(...all.map((p) => p.t));
  const max = niceMax(Math.max(0, ...known.map((p) => p.value)));
  const x = (t) => left + (t1 > t0 ? ((t - t0) / (t1 - t0)) * (width - left - right) : 0);
  const y = (v) => height - bottom - (v / max) * (height - top - bottom);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    el("line", { class: "grid", x1: left, x2: width - right, y1: y(v), y2: y(v) }, svg);
    el("text", { class: "axis-label", x: left - 4, y: y(v) + 3, "text-anchor": "end" }, svg).textContent = number.format(v);
  }
  if (all.length) {
    el("text", { class: "axis-label", x: left, y: height - 6 }, svg).textContent = clock(t0);
    el("text", { class: "axis-label", x: width - right, y: height - 6, "text-anchor": "end" }, svg).textContent = clock(t1);
  }
  let drawn = 0, nonzero = 0, legendX = left;
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    // Split at missing values: a gap, not a fake zero.
    let segment = [];
    const flush = () => {
      if (segment.length === 1) el("circle", { cx: segment[0][0], cy: segment[0][1], r: 4, fill: color }, svg);
      if (segment.length > 1) {
        el("polyline", { points: segment.map((p) => p.join(",")).join(" "), fill: "none", stroke: color, "stroke-width": 2.5, "stroke-linejoin": "round", "data-series": s.name }, svg);
      }
      segment = [];
    };
    for (const p of s.points) {
      if (p.value === null || p.value === undefined) { flush(); continue; }
      segment.push([x(p.t).toFixed(1), y(p.value).toFixed(1)]);
      drawn++;
      if (p.value > 0) nonzero++;
    }
    flush();
    const legend = el("text", { class: "legend", x: legendX, y: 15, fill: color }, svg);
    const last = [...s.points].reverse().find((p) => p.value !== null && p.value !== undefined);
    // Counters: the window's total; gauges and percentiles: the latest value.
    const shown = s.total ? s.points.reduce((a, p) => a + (p.value || 0), 0) : last?.value;
    legend.textContent = `■ ${s.name}${shown === undefined ? "" : ` ${number.format(Math.round(shown))}${unit}`}`;
    legendX += legend.getComputedTextLength() + 12; // the next one starts after this one
  });
  if (!known.length) {
    el("text", { class: "empty", x: width / 2, y: height / 2, "text-anchor": "middle" }, svg).textContent = "no data yet";
  }
  svg.dataset.points = String(drawn);
  svg.dataset.nonzero = String(nonzero);
  const totals = series.map((s) => `${s.name} ${number.format(s.points.reduce((a, p) => a + (p.value || 0), 0))}`);
  svg.setAttribute("aria-label", `${title}: ${known.length ? totals.join(", ") : "no data yet"}`);
}

async function series(metric, from, to) {
  const query = new URLSearchParams({ metric, from: new Date(from).toISOString(), to: new Date(to).toISOString(), bucket: "minute" });
  return (await api(`/timeseries?${query}`)).points.map((p) => ({ t: p.t, value: p.value }));
}

// ---------------------------------------------------------------------------- refresh loop
async function refresh() {
  const to = Date.now(), from = to - 59 * 60_000;
  const metrics = ["messagesSent", "messagesDelivered", "offlineDeliveries", "connections", "disconnections", "peakOnline", "peakOnlineUsers", "deliveryP50", "deliveryP95", "deliveryP99"];
  const [overview, active, recent, ...points] = await Promise.all([
    api(""),
    api("/sessions/active?limit=50"),
    api("/sessions/recent?limit=20"),
    ...metrics.map((m) => series(m, from, to)),
  ]);
  const s = Object.fromEntries(metrics.map((m, i) => [m, points[i]]));
  renderCards(overview);
  renderQueues(overview.queues);
  renderSessions(active, recent);
  drawChart($("chart-messages"), "Messages per minute", [
    { name: "sent", total: true, points: s.messagesSent },
    { name: "delivered", total: true, points: s.messagesDelivered },
    { name: "offline", total: true, points: s.offlineDeliveries },
  ]);
  drawChart($("chart-connections"), "Connections per minute", [
    { name: "opened", total: true, points: s.connections },
    { name: "closed", total: true, points: s.disconnections },
    { name: "peak online", points: s.peakOnline },
    { name: "peak users", points: s.peakOnlineUsers },
  ]);
  drawChart($("chart-latency"), "Delivery latency", [
    { name: "p50", points: s.deliveryP50 },
    { name: "p95", points: s.deliveryP95 },
    { name: "p99", points: s.deliveryP99 },
  ], " ms");
  state.queueHistory.push({ t: to, queues: overview.queues });
  state.queueHistory = state.queueHistory.slice(-HISTORY);
  const names = Object.keys(overview.queues);
  drawChart($("chart-queues"), "Queue depth", [
    { name: "depth (all)", points: state.queueHistory.map((h) => ({ t: h.t, value: names.reduce((a, n) => a + (h.queues[n]?.depth || 0), 0) })) },
    { name: "in flight", points: state.queueHistory.map((h) => ({ t: h.t, value: names.reduce((a, n) => a + (h.queues[n]?.inFlight || 0), 0) })) },
    { name: "DLQs", points: state.queueHistory.map((h) => ({ t: h.t, value: names.reduce((a, n) => a + (h.queues[n]?.dlqDepth || 0), 0) })) },
  ]);
  $("dashboard").setAttribute("aria-busy", "false");
  document.body.dataset.refreshed = String((Number(document.body.dataset.refreshed) || 0) + 1);
}

async function tick() {
  clearTimeout(state.timer);
  try {
    if (!state.token && !state.oidc) state.token = await devToken();
    if (!state.token) throw new AuthError(state.oidc ? "" : "no admin token");
    await refresh();
    sessionStorage.setItem(TOKEN_KEY, state.token);
    $("sign-out").hidden = false;
    setStatus(`updated ${new Date().toLocaleTimeString()}`, "ok");
  } catch (error) {
    if (error instanceof AuthError) {
      askToSignIn(error.message);
      return;
    }
    setStatus(`refresh failed: ${error.message}`, "error");
  }
  if ($("live").checked) state.timer = setTimeout(tick, REFRESH_SECONDS * 1000);
}

function askToSignIn(message) {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("sign-out").hidden = true;
  $("sign-in").hidden = !state.oidc;
  $("token-form").hidden = false;
  $("token-error").textContent = message;
  setStatus("sign in with an admin token", "error");
}

async function start() {
  $("interval").textContent = String(REFRESH_SECONDS);
  $("live").addEventListener("change", () => ($("live").checked ? tick() : clearTimeout(state.timer)));
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value.trim();
    $("token-form").hidden = true;
    $("token-error").textContent = "";
    tick();
  });
  $("sign-in").addEventListener("click", () => signIn());
  $("sign-out").addEventListener("click", () => signOut());
  try {
    const response = await fetch(CONFIG);
    state.oidc = response.ok ? (await response.json()).oidc : null;
    if (state.oidc) $("sign-in").textContent = `Sign in with ${new URL(state.oidc.authorizeUrl).host}`;
    await finishSignIn();
  } catch (error) {
    askToSignIn(error instanceof AuthError ? error.message : `sign-in failed: ${error.message}`);
    return;
  }
  tick();
}

start();
