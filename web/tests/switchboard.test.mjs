// Unit tests of web/switchboard.js's connection logic: reconnect with backoff, resume by
// sync, de-duplication, acks, idempotent resends, keep-alive and typing throttling.
// Run: node --test web/tests/  (tests/unit/test_js_client.py runs it under pytest).
// The socket and the clock are fakes on purpose: this is the client's own logic, the
// real server path is covered by tests/browser/.
import assert from "node:assert/strict";
import { test } from "node:test";

import { LIMITS, PUSHES, REPLIES, SHAPES } from "../protocol.js";
import { backoffDelay, ClientEvent, ConversationLog, highlightParts, SwitchboardClient, SwitchboardError, userIdOf } from "../switchboard.js";

/**
 * Throws unless `data` has the shape of the typedef `name` (web/protocol.js, generated from
 * the server's models): every required field, no unknown one, nested types checked too.
 * The scripted server below sends nothing else, so these tests cannot drift from the wire.
 */
function conforms(name, data, where = name) {
  const shape = SHAPES[name];
  assert.ok(shape, `no typedef ${name}`);
  assert.equal(typeof data, "object", `${where}: an object`);
  for (const field of shape.required) assert.ok(field in data, `${where}.${field} is required`);
  for (const field of Object.keys(data)) {
    assert.ok(shape.required.includes(field) || shape.optional.includes(field), `${where}.${field} is not in ${name}`);
  }
  for (const [field, nested] of Object.entries(shape.nested)) {
    const value = data[field];
    if (value === undefined || value === null) continue;
    if (nested.endsWith("[]")) value.forEach((v, i) => conforms(nested.slice(0, -2), v, `${where}.${field}[${i}]`));
    else if (nested.startsWith("{")) for (const [k, v] of Object.entries(value)) conforms(nested.slice(1, -1), v, `${where}.${field}.${k}`);
    else conforms(nested, value, `${where}.${field}`);
  }
}

class Clock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.next = 1;
  }
  setTimeout = (fn, ms) => {
    const id = this.next++;
    this.timers.set(id, { at: this.now + Math.max(0, ms ?? 0), fn });
    return id;
  };
  clearTimeout = (id) => {
    this.timers.delete(id);
  };
  async advance(ms) {
    const end = this.now + ms;
    for (;;) {
      await flush();
      let due = null;
      for (const [id, t] of this.timers) if (t.at <= end && (!due || t.at < due[1].at)) due = [id, t];
      if (!due) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = end;
    await flush();
  }
}

async function flush() {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

function token(sub) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256" })}.${b64({ sub })}.sig`;
}

/** A scripted server: records frames, answers with `server.reply()`. */
function harness(options = {}) {
  const clock = new Clock();
  const sockets = [];
  class FakeSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      this.closed = false;
      sockets.push(this);
    }
    send(raw) {
      if (this.closed) throw new Error("closed");
      this.sent.push(JSON.parse(raw));
    }
    close(code = 1000, reason = "") {
      if (this.closed) return;
      this.closed = true;
      clock.setTimeout(() => this.onclose?.({ code, reason }), 0);
    }
    // server side
    open() {
      this.onopen?.();
    }
    push(frame) {
      if (frame.type !== "reply") conforms(PUSHES[frame.type], frame.data, frame.type);
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    reply(request, data, ok = true) {
      if (ok) conforms(REPLIES[request.action], data, request.action);
      this.push(ok ? { type: "reply", id: request.id, ok, data } : { type: "reply", id: request.id, ok, error: data });
    }
    drop() {
      this.closed = true;
      this.onclose?.({ code: 1006, reason: "" });
    }
    requests(action) {
      return this.sent.filter((f) => f.action === action);
    }
  }
  let tokens = 0;
  const client = new SwitchboardClient({
    url: "ws://test/dev",
    token: () => token("alice") + `#${++tokens}`,
    WebSocket: FakeSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    now: () => clock.now,
    ...options,
  });
  const messages = [];
  client.on(ClientEvent.MESSAGE, (m) => messages.push(m));
  const last = () => sockets[sockets.length - 1];
  return { clock, sockets, client, messages, last, tokenCalls: () => tokens };
}

async function connected(h) {
  const opened = h.client.connect();
  await flush();
  h.last().open();
  await opened;
  return h.last();
}

const msg = (conversationId, seq, body = `m${seq}`) => ({
  conversationId,
  seq,
  messageId: `${conversationId}-${seq}`,
  senderId: "bob",
  body,
  createdAt: seq,
  clientMessageId: `cm-${seq}`,
});
const PONG = { pong: true, serverTime: 0, pid: 1, connectionId: "scripted=" };

test("backoff is full-jitter exponential and capped", () => {
  assert.equal(backoffDelay(0, 500, 30_000, () => 0.999), 499);
  assert.equal(backoffDelay(3, 500, 30_000, () => 0.5), 2000);
  assert.equal(backoffDelay(20, 500, 30_000, () => 0.5), 15_000);
  assert.equal(backoffDelay(5, 500, 30_000, () => 0), 0);
});

test("conversation log: duplicates, cursor, gaps, first sight", () => {
  const log = new ConversationLog();
  log.seed("c1", 3);
  assert.equal(log.accept("c1", 3), false, "at or below a seeded cursor is old");
  assert.equal(log.accept("c1", 4), true);
  assert.equal(log.accept("c1", 4), false);
  assert.equal(log.accept("c1", 6), true);
  assert.equal(log.cursor("c1"), 4);
  assert.equal(log.hasGap("c1"), true);
  assert.equal(log.accept("c1", 5), true);
  assert.equal(log.cursor("c1"), 6);
  assert.equal(log.hasGap("c1"), false);
  // A live push (10) before the backlog (7..9) of a conversation not seen before.
  assert.equal(log.accept("c2", 10), true);
  assert.equal(log.accept("c2", 8), true, "older, never seen: kept");
  assert.equal(log.accept("c2", 8), false);
  assert.equal(log.accept("c2", 10), false);
  assert.deepEqual(log.cursors(), { c1: 6, c2: 10 });
});

test("userIdOf reads the JWT subject", () => {
  assert.equal(userIdOf(token("bob")), "bob");
  assert.equal(userIdOf("garbage"), undefined);
});

test("request/reply: data, typed error codes, timeouts", async () => {
  const h = harness();
  const ws = await connected(h);
  assert.match(ws.url, /^ws:\/\/test\/dev\?backlog=batch&token=/);
  const ok = h.client.request("ping");
  const bad = h.client.request("message:send", { conversationId: "x" });
  const slow = h.client.request("presence:query", { userIds: ["bob"] }, { timeoutMs: 1000 });
  await flush();
  const [ping, send] = ws.sent;
  assert.notEqual(ping.id, send.id);
  ws.reply(ping, PONG);
  ws.reply(send, { code: "not_found", message: "conversation not found" }, false);
  assert.deepEqual(await ok, PONG);
  await assert.rejects(bad, (e) => e instanceof SwitchboardError && e.code === "not_found" && e.action === "message:send");
  await h.clock.advance(1000);
  await assert.rejects(slow, (e) => e.code === "timeout");
  h.client.close();
});

test("verifyEmail and iceServers send what the server checks", async () => {
  const h = harness();
  const ws = await connected(h);
  const verified = h.client.verifyEmail("012345");
  const ice = h.client.iceServers({ callId: "call-1" });
  await flush();
  const [verify, servers] = ws.sent;
  assert.deepEqual([verify.action, verify.data], ["preferences:verify-email", { code: "012345" }]);
  assert.deepEqual([servers.action, servers.data], ["call:ice-servers", { callId: "call-1" }]);
  ws.reply(verify, { emailOnOffline: true, email: "b@example.com", emailVerified: true, digestMinutes: 15 });
  ws.reply(servers, { iceServers: [{ urls: ["stun:s"] }], ttl: 120, expiresAt: 1 });
  assert.equal((await verified).emailVerified, true);
  assert.deepEqual(await ice, [{ urls: ["stun:s"] }]);
  h.client.close();
});

test("consent and membership actions send what the server checks, replies are typed", async () => {
  const h = harness();
  const ws = await connected(h);
  const calls = [
    [h.client.listRequests(10), "conversation:list", { limit: 10, folder: "requests" }, { conversations: [], cursor: null }],
    [h.client.acceptConversation("c1"), "conversation:accept", { conversationId: "c1" }, { conversationId: "c1", changed: true }],
    [h.client.declineConversation("c1"), "conversation:decline", { conversationId: "c1" }, { conversationId: "c1", changed: false }],
    [h.client.leaveConversation("c2"), "conversation:leave", { conversationId: "c2" }, { conversationId: "c2", seq: 3, members: ["a"] }],
    [h.client.addMembers("c2", ["d"]), "conversation:add-members", { conversationId: "c2", members: ["d"] }, { conversationId: "c2", seq: 4, members: ["a", "d"] }],
    [h.client.removeMember("c2", "d"), "conversation:remove-member", { conversationId: "c2", userId: "d" }, { conversationId: "c2", seq: 5, members: ["a"] }],
    [h.client.setRole("c2", "d", "admin"), "conversation:set-role", { conversationId: "c2", userId: "d", role: "admin" }, { conversationId: "c2", seq: 6, members: ["a"] }],
    [h.client.setTitle("c2", "sofa"), "conversation:set-title", { conversationId: "c2", title: "sofa" }, { conversationId: "c2", seq: 7, members: ["a"] }],
    [h.client.block("m"), "user:block", { userId: "m" }, { userId: "m", blocked: true }],
    [h.client.unblock("m"), "user:unblock", { userId: "m" }, { userId: "m", blocked: false }],
    [h.client.blocks(), "user:blocks", {}, { userIds: ["m"] }],
    [h.client.setAcceptRequests(false), "preferences:set", { acceptRequests: false }, { emailOnOffline: false, email: null, emailVerified: false, digestMinutes: 15, acceptRequests: false }],
  ];
  await flush();
  assert.deepEqual(ws.sent.map((f) => [f.action, f.data]), calls.map(([, action, data]) => [action, data]));
  calls.forEach(([, , , reply], i) => ws.reply(ws.sent[i], reply));
  const results = await Promise.all(calls.map(([promise]) => promise));
  assert.deepEqual(results[1], { conversationId: "c1", changed: true });
  assert.deepEqual(results[10], ["m"]);
  assert.equal(results[11].acceptRequests, false);
  h.client.close();
});

test("duplicates are dropped and what arrived is acked, batched", async () => {
  const h = harness();
  const ws = await connected(h);
  ws.push({ type: "message:new", data: msg("c1", 1) });
  ws.push({ type: "message:new", data: msg("c1", 2) });
  ws.push({ type: "message:new", data: msg("c1", 1) });
  ws.push({ type: "message:new", data: msg("c1", 2) });
  assert.deepEqual(h.messages.map((m) => m.seq), [1, 2]);
  assert.equal(h.client.duplicates, 2);
  await h.clock.advance(100);
  assert.deepEqual(ws.requests("message:ack").map((f) => f.data), [{ conversationId: "c1", seq: 2 }]);
  h.client.close();
});

test("the backlog comes as message:batch frames: each message handled once, in order", async () => {
  const h = harness();
  const ws = await connected(h);
  assert.match(ws.url, /[?&]backlog=batch&token=/);
  const raw = [];
  h.client.on("message:new", (data) => raw.push(data.seq));
  ws.push({ type: "message:batch", data: { messages: [msg("c1", 1), msg("c1", 2), msg("c1", 3)] } });
  ws.push({ type: "message:batch", data: { messages: [msg("c1", 3), msg("c1", 4)] } });
  assert.deepEqual(h.messages.map((m) => m.seq), [1, 2, 3, 4]);
  assert.deepEqual(h.messages.map((m) => m.source), ["push", "push", "push", "push"]);
  assert.deepEqual(raw, [1, 2, 3, 3, 4]); // raw subscribers see every frame's messages
  assert.equal(h.client.duplicates, 1);
  await h.clock.advance(100);
  assert.deepEqual(ws.requests("message:ack").map((f) => f.data), [{ conversationId: "c1", seq: 4 }]);
  h.client.close();
});

test("reconnect: backoff, a fresh token, then a sync from the cursors", async () => {
  const h = harness();
  const first = await connected(h);
  const states = [];
  h.client.on(ClientEvent.STATE, (s) => states.push(s.state));
  first.push({ type: "message:new", data: msg("c1", 1) });
  first.push({ type: "message:new", data: msg("c1", 2) });
  first.drop();
  await flush();
  assert.equal(h.client.state, "reconnecting");
  assert.equal(h.sockets.length, 1, "waits for the backoff delay");
  await h.clock.advance(250); // random 0.5 * 500 ms
  assert.equal(h.sockets.length, 2);
  assert.equal(h.tokenCalls(), 2, "asks for a fresh token");
  const second = h.last();
  // Connection fails before opening: the next delay doubles.
  second.drop();
  await h.clock.advance(499);
  assert.equal(h.sockets.length, 2);
  await h.clock.advance(1);
  assert.equal(h.sockets.length, 3);
  const third = h.last();
  third.open();
  await flush();
  assert.deepEqual(states, ["reconnecting", "open"]);
  const [sync] = third.requests("message:sync");
  assert.deepEqual(sync.data, { cursors: { c1: 2 } });
  // The server's backlog push races the sync reply: every message once, in order.
  third.push({ type: "message:new", data: msg("c1", 3) });
  third.reply(sync, {
    conversations: { c1: { messages: [msg("c1", 2), msg("c1", 3), msg("c1", 4)], hasMore: true, lastSeq: 5 } },
  });
  await flush();
  const [, sync2] = third.requests("message:sync");
  assert.deepEqual(sync2.data, { cursors: { c1: 4 } }, "pages while hasMore");
  third.reply(sync2, { conversations: { c1: { messages: [msg("c1", 5)], hasMore: false, lastSeq: 5 } } });
  await flush();
  assert.deepEqual(h.messages.map((m) => m.seq), [1, 2, 3, 4, 5]);
  h.client.close();
});

test("a send cut by a disconnect is sent again with the same clientMessageId", async () => {
  const h = harness();
  const first = await connected(h);
  const sending = h.client.sendMessage("c1", "hello");
  const other = h.client.request("conversation:create", { members: ["bob"] });
  await flush();
  const [send] = first.requests("message:send");
  first.drop();
  await assert.rejects(other, (e) => e.code === "disconnected");
  await h.clock.advance(250);
  const second = h.last();
  second.open();
  await flush();
  const [again] = second.requests("message:send");
  assert.equal(again.data.clientMessageId, send.data.clientMessageId);
  second.reply(again, { seq: 7, messageId: "m7", createdAt: 1 });
  const message = await sending;
  assert.equal(message.seq, 7);
  assert.equal(message.senderId, "alice");
  assert.deepEqual(h.messages.map((m) => [m.seq, m.source]), [[7, "self"]]);
  h.client.close();
});

test("reconnect() skips the backoff wait", async () => {
  const h = harness({ backoffInitialMs: 60_000 });
  const first = await connected(h);
  first.drop();
  await flush();
  h.client.reconnect();
  await flush();
  assert.equal(h.sockets.length, 2, "reconnects at once");
  h.client.reconnect(); // already connecting: nothing more
  await h.clock.advance(60_000);
  assert.equal(h.sockets.length, 2);
  h.client.close();
});

test("requests made while offline wait for the connection", async () => {
  const h = harness();
  const first = await connected(h);
  first.drop();
  await flush();
  const asked = h.client.request("ping");
  await h.clock.advance(250);
  const second = h.last();
  assert.equal(second.sent.length, 0);
  second.open();
  await flush();
  const [ping] = second.requests("ping");
  second.reply(ping, PONG);
  assert.deepEqual(await asked, PONG);
  h.client.close();
});

test("keep-alive: a keepalive without a pong drops the link and reconnects", async () => {
  const h = harness({ pingIntervalMs: 60_000, pingTimeoutMs: 5_000 });
  const ws = await connected(h);
  await h.clock.advance(60_000);
  // API Gateway answers `keepalive` itself (MOCK integration): a pong that names no request
  const [keepalive] = ws.requests("keepalive");
  assert.equal(keepalive.id, undefined);
  assert.equal(ws.requests("ping").length, 0); // no Lambda-answered ping
  ws.push({ type: "pong", data: { serverTime: 1, connectionId: "c=" } });
  await h.clock.advance(5_000);
  assert.equal(ws.closed, false); // the pong proved the link
  await h.clock.advance(60_000);
  assert.equal(ws.requests("keepalive").length, 2);
  await h.clock.advance(5_000); // second keepalive unanswered
  assert.equal(ws.closed, true);
  await h.clock.advance(250);
  assert.equal(h.sockets.length, 2);
  h.client.close();
});

test("a gap in pushes is filled by a sync", async () => {
  const h = harness();
  const ws = await connected(h);
  ws.push({ type: "message:new", data: msg("c1", 1) });
  ws.push({ type: "message:new", data: msg("c1", 3) });
  await flush();
  const [sync] = ws.requests("message:sync");
  assert.deepEqual(sync.data, { cursors: { c1: 1 } });
  ws.reply(sync, { conversations: { c1: { messages: [msg("c1", 2), msg("c1", 3)], hasMore: false, lastSeq: 3 } } });
  await flush();
  assert.deepEqual(h.messages.map((m) => m.seq), [1, 3, 2]);
  assert.equal(h.client.log.cursor("c1"), 3);
  h.client.close();
});

test("typing is throttled to the server's limit and stops when idle", async () => {
  const h = harness({ typingIntervalMs: 2500, typingIdleMs: 4000 });
  const ws = await connected(h);
  for (let i = 0; i < 10; i++) {
    h.client.typing("c1");
    await h.clock.advance(200);
  }
  assert.equal(ws.requests("typing:start").length, 1);
  await h.clock.advance(600);
  h.client.typing("c1");
  assert.equal(ws.requests("typing:start").length, 2);
  await h.clock.advance(4000);
  assert.deepEqual(ws.requests("typing:stop").map((f) => f.data), [{ conversationId: "c1" }]);
  h.client.close();
});

test("typing right after a stop is held back to the interval, not dropped", async () => {
  const h = harness({ typingIntervalMs: 2500, typingIdleMs: 4000 });
  const ws = await connected(h);
  h.client.typing("c1");
  await h.clock.advance(500);
  h.client.stopTyping("c1"); // e.g. the message was sent
  assert.equal(ws.requests("typing:stop").length, 1);
  await h.clock.advance(500);
  h.client.typing("c1"); // typing the next message, 1 s after the last start
  h.client.typing("c1");
  assert.equal(ws.requests("typing:start").length, 1, "the server would refuse it now");
  await h.clock.advance(1500);
  assert.equal(ws.requests("typing:start").length, 2, "sent once the interval is over");
  // A stop before the held start cancels it.
  await h.clock.advance(4000);
  h.client.typing("c1");
  h.client.stopTyping("c1");
  assert.equal(ws.requests("typing:start").length, 3);
  await h.clock.advance(500);
  h.client.typing("c1"); // held
  h.client.stopTyping("c1"); // cancelled before it went out
  await h.clock.advance(3000);
  assert.equal(ws.requests("typing:start").length, 3);
  h.client.close();
});

test("token_expired: auth:refresh with a fresh token on the same socket, then the request again", async () => {
  const h = harness();
  const ws = await connected(h);
  const asked = h.client.request("conversation:list", {});
  await flush();
  const [list] = ws.requests("conversation:list");
  ws.reply(list, { code: "token_expired", message: "expired" }, false);
  await flush();
  const [refresh] = ws.requests("auth:refresh");
  assert.equal(refresh.data.token, token("alice") + "#2", "a fresh token from the provider");
  ws.reply(refresh, { expiresAt: 1 });
  await flush();
  const lists = ws.requests("conversation:list");
  assert.equal(lists.length, 2);
  ws.reply(lists[1], { conversations: [], cursor: null });
  assert.deepEqual(await asked, { conversations: [], cursor: null });
  assert.equal(h.sockets.length, 1, "no reconnect");
  // Expired again: refreshed once more, but a second token_expired for the same request fails.
  const again = h.client.request("ping");
  await flush();
  ws.reply(ws.requests("ping")[0], { code: "token_expired", message: "expired" }, false);
  await flush();
  ws.reply(ws.requests("auth:refresh")[1], { expiresAt: 2 });
  await flush();
  ws.reply(ws.requests("ping")[1], { code: "token_expired", message: "expired" }, false);
  await assert.rejects(again, (e) => e.code === "token_expired");
  h.client.close();
});

test("close() stops reconnecting and fails pending requests", async () => {
  const h = harness();
  await connected(h);
  const pending = h.client.request("ping");
  h.client.close();
  await assert.rejects(pending, (e) => e.code === "closed");
  await h.clock.advance(60_000);
  assert.equal(h.sockets.length, 1);
  assert.equal(h.client.state, "closed");
});

test("connect() rejects when the first handshake is refused, and the client stops", async () => {
  const h = harness();
  const opened = h.client.connect();
  await flush();
  h.last().drop(); // closed before it opened: what a 401 at the handshake looks like in a browser
  await assert.rejects(opened, (e) => e instanceof SwitchboardError && e.code === "handshake_refused");
  assert.equal(h.client.state, "closed");
  await h.clock.advance(60_000);
  assert.equal(h.sockets.length, 1, "no retry behind the application's back");
});

test("connect() rejects when the token provider throws", async () => {
  const h = harness({
    token: () => {
      throw new Error("the identity provider is down");
    },
  });
  await assert.rejects(h.client.connect(), (e) => e.code === "token_provider" && /identity provider/.test(e.message));
  assert.equal(h.client.state, "closed");
  assert.equal(h.sockets.length, 0);
});

test("an expired token that the provider cannot replace stops reconnecting", async () => {
  const expired = (sub) => {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
    return `${b64({ alg: "HS256" })}.${b64({ sub, exp: 1 })}.sig`;
  };
  let tokens = 0;
  const h = harness({ token: () => (++tokens === 1 ? token("alice") : expired("alice")) });
  const failures = [];
  h.client.on(ClientEvent.AUTH_FAILED, ({ error }) => failures.push(error.code));
  const waiting = [];
  await connected(h);
  h.clock.now = 10_000; // past the expiry of the provider's next tokens
  h.last().drop();
  await h.clock.advance(250);
  h.last().drop(); // refused: the token is expired; the provider gets one more chance
  await h.clock.advance(1_000);
  assert.equal(h.sockets.length, 3);
  const reconnecting = h.client.connect().catch((e) => waiting.push(e.code));
  h.last().drop(); // refused again with an expired token: authentication failed
  await flush();
  await reconnecting;
  assert.deepEqual(failures, ["unauthorized"]);
  assert.deepEqual(waiting, ["unauthorized"], "a connect() waiting for the reconnect learns it");
  assert.equal(h.client.state, "closed");
  await h.clock.advance(120_000);
  assert.equal(h.sockets.length, 3, "no more handshakes");
});

test("a token provider that says unauthorized stops reconnecting", async () => {
  let calls = 0;
  const h = harness({
    token: () => {
      if (++calls === 1) return token("alice");
      throw new SwitchboardError("unauthorized", "signed out");
    },
  });
  const failures = [];
  h.client.on(ClientEvent.AUTH_FAILED, ({ error }) => failures.push(error.message));
  await connected(h);
  h.last().drop();
  await h.clock.advance(60_000);
  assert.deepEqual(failures, ["signed out"]);
  assert.equal(h.client.state, "closed");
  assert.equal(h.sockets.length, 1);
});

test("client events and server pushes are apart; an unknown name is refused", async () => {
  const h = harness();
  assert.throws(() => h.client.on("message", () => {}), /no such event: message/);
  assert.throws(() => h.client.on("typnig", () => {}), TypeError);
  const pushes = [];
  h.client.on("message:new", (d) => pushes.push(d.seq)); // the raw push
  const ws = await connected(h);
  ws.push({ type: "message:new", data: msg("c1", 1) });
  assert.deepEqual(pushes, [1]);
  assert.deepEqual(h.messages.map((m) => m.source), ["push"], "client:message: the de-duplicated one");
  h.client.close();
});

test("waitFor() is a Promise of the next matching event, or a timeout", async () => {
  const h = harness();
  const ws = await connected(h);
  const typing = h.client.waitFor("typing", (d) => d.userId === "carol", 1_000);
  ws.push({ type: "typing", data: { conversationId: "c1", userId: "bob", state: "start" } });
  ws.push({ type: "typing", data: { conversationId: "c1", userId: "carol", state: "start" } });
  assert.equal((await typing).userId, "carol");
  const never = h.client.waitFor("presence", () => true, 1_000);
  await h.clock.advance(1_000);
  await assert.rejects(never, (e) => e.code === "timeout");
  h.client.close();
});

test("a frame over the protocol's message limit is refused before it is sent", async () => {
  const h = harness();
  const ws = await connected(h);
  const big = "x".repeat(LIMITS.MAX_MESSAGE_BYTES);
  await assert.rejects(h.client.request("message:send", { body: big }), (e) => e.code === "payload_too_large");
  assert.equal(ws.requests("message:send").length, 0, "the socket (and its other requests) survives");
  h.client.close();
});

test("search sends the query and options, and returns hits and the cursor", async () => {
  const h = harness();
  const ws = await connected(h);
  const found = h.client.search("red bik", { conversationId: "dm_1", limit: 5 });
  const around = h.client.historyAround("dm_1", 42, 10);
  await flush();
  const [search] = ws.requests("message:search");
  assert.deepEqual(search.data, { query: "red bik", limit: 5, conversationId: "dm_1" });
  const hit = { conversationId: "dm_1", seq: 42, messageId: "m42", senderId: "bob", createdAt: 42, snippet: "a red bike", highlights: [[2, 5], [6, 10]], field: "body" };
  ws.reply(search, { hits: [hit], cursor: null });
  assert.deepEqual(await found, { hits: [hit], cursor: null });
  const [history] = ws.requests("message:history");
  assert.deepEqual(history.data, { conversationId: "dm_1", aroundSeq: 42, limit: 10 });
  ws.reply(history, { conversationId: "dm_1", messages: [], hasMore: false, lastSeq: 42 });
  await around;
  h.client.close();
});

test("highlightParts splits by code points and ignores bad ranges", () => {
  assert.deepEqual(highlightParts("🚲🚲 bike!", [[3, 7]]), [
    { text: "🚲🚲 ", hit: false },
    { text: "bike", hit: true },
    { text: "!", hit: false },
  ]);
  assert.deepEqual(highlightParts("abc", [[2, 9], [1, 0]]), [{ text: "abc", hit: false }]);
});

test("after a reconnect, only what changed since the change cursor is read", async () => {
  const h = harness();
  const first = await connected(h);
  const changed = [];
  h.client.on(ClientEvent.MESSAGE_CHANGED, (c) => changed.push(c));
  // conversation:list seeds the change cursor (c1 at change 2)
  const list = h.client.listConversations();
  await flush();
  first.reply(first.requests("conversation:list")[0], {
    conversations: [
      {
        conversationId: "c1", title: null, listingId: null, members: ["alice", "bob"], lastSeq: 2,
        lastMessage: null, lastActivityAt: 1, ackedSeq: 2, readSeq: 2, unread: 0, lastChange: 2,
      },
    ],
    cursor: null,
  });
  await list;
  assert.equal(h.client.changeCursor("c1"), 2);
  // A consecutive change push moves the cursor; one after a gap does not
  first.push({ type: "message:updated", data: { conversationId: "c1", seq: 1, body: "x", editedAt: 5, version: 1, change: 3 } });
  assert.equal(h.client.changeCursor("c1"), 3);
  first.push({ type: "message:deleted", data: { conversationId: "c1", seq: 2, deletedAt: 6, version: 1, change: 5 } });
  assert.equal(h.client.changeCursor("c1"), 3, "change 4 was not seen: read it on resume");
  first.drop();
  await h.clock.advance(250);
  const second = h.last();
  second.open();
  await flush();
  const [sync] = second.requests("message:sync");
  second.reply(sync, { conversations: { c1: { messages: [], hasMore: false, lastSeq: 2, lastChange: 6 } } });
  await flush();
  const [changes] = second.requests("message:changes");
  assert.deepEqual(changes.data, { conversationId: "c1", afterChange: 3 });
  const edited = { ...msg("c1", 1, "edited"), version: 2, editedAt: 9 };
  second.reply(changes, { conversationId: "c1", messages: [edited], cursor: 5, lastChange: 6, hasMore: true, reset: false });
  await flush();
  const [, more] = second.requests("message:changes");
  assert.deepEqual(more.data, { conversationId: "c1", afterChange: 5 }, "pages while hasMore");
  const tombstone = { ...msg("c1", 2, ""), version: 1, deletedAt: 6 };
  second.reply(more, { conversationId: "c1", messages: [tombstone], cursor: 6, lastChange: 6, hasMore: false, reset: false });
  await flush();
  assert.deepEqual(changed.map((c) => c.message.seq), [1, 2]);
  assert.equal(h.client.changeCursor("c1"), 6);
  assert.equal(second.requests("message:changes").length, 2, "caught up: no more reads");
  h.client.close();
});

test("edit, delete, react, thread replies, quotes and mute send what the server checks", async () => {
  const h = harness();
  const ws = await connected(h);
  const calls = [
    h.client.editMessage("c1", 3, "fixed"),
    h.client.deleteMessage("c1", 4),
    h.client.react("c1", 3, "👍"),
    h.client.react("c1", 3, "👍", false),
    h.client.threadHistory("c1", 3, { afterSeq: 5 }),
    h.client.mute("c1"),
    h.client.mute("c1", 1_900_000_000_000),
    h.client.unmute("c1"),
    h.client.sendMessage("c1", "in thread", { parentSeq: 3, replyToSeq: 2, clientMessageId: "t1" }),
  ];
  await flush();
  assert.deepEqual(
    ws.sent.map((f) => [f.action, f.data]),
    [
      ["message:edit", { conversationId: "c1", seq: 3, body: "fixed" }],
      ["message:delete", { conversationId: "c1", seq: 4 }],
      ["message:react", { conversationId: "c1", seq: 3, emoji: "👍", on: true }],
      ["message:react", { conversationId: "c1", seq: 3, emoji: "👍", on: false }],
      ["thread:history", { conversationId: "c1", parentSeq: 3, afterSeq: 5, limit: 50 }],
      ["conversation:mute", { conversationId: "c1", muted: true }],
      ["conversation:mute", { conversationId: "c1", muted: true, until: 1_900_000_000_000 }],
      ["conversation:mute", { conversationId: "c1", muted: false }],
      ["message:send", { conversationId: "c1", clientMessageId: "t1", body: "in thread", parentSeq: 3, replyToSeq: 2 }],
    ],
  );
  const replies = [
    { conversationId: "c1", seq: 3, body: "fixed", editedAt: 7, version: 1, change: 1 },
    { conversationId: "c1", seq: 4, deletedAt: 8, version: 1, change: 2 },
    { conversationId: "c1", seq: 3, reactions: [{ emoji: "👍", count: 1, userIds: ["alice"] }], userId: "alice", emoji: "👍", on: true, version: 2, change: 3 },
    { conversationId: "c1", seq: 3, reactions: [], userId: "alice", emoji: "👍", on: false, version: 3, change: 4 },
    { conversationId: "c1", parent: msg("c1", 3), messages: [msg("c1", 6)], hasMore: false },
    { conversationId: "c1", mutedUntil: 2 ** 53 },
    { conversationId: "c1", mutedUntil: 1_900_000_000_000 },
    { conversationId: "c1", mutedUntil: null },
    { seq: 9, messageId: "m9", createdAt: 9 },
  ];
  ws.sent.forEach((request, i) => ws.reply(request, replies[i]));
  const results = await Promise.all(calls);
  assert.equal(results[0].body, "fixed");
  assert.equal(results[4].messages[0].seq, 6);
  assert.equal(results[8].parentSeq, 3);
  h.client.close();
});

test("a conversation the user left stops being followed; the others' changes are still read", async () => {
  const h = harness();
  const ws = await connected(h);
  h.client.seedChangeCursor("left", 1);
  h.client.seedChangeCursor("c2", 0);
  h.client._onChangePush({ conversationId: "left", change: 4 });
  h.client._onChangePush({ conversationId: "c2", change: 2 });
  const done = h.client.syncChanges();
  await flush();
  const [first] = ws.requests("message:changes");
  assert.deepEqual(first.data, { conversationId: "left", afterChange: 1 });
  // what the server answers a former member (as anyone not in the conversation)
  ws.reply(first, { code: "not_found", message: "conversation not found" }, false);
  await flush();
  const [, second] = ws.requests("message:changes");
  assert.deepEqual(second.data, { conversationId: "c2", afterChange: 0 });
  ws.reply(second, { conversationId: "c2", messages: [msg("c2", 1)], cursor: 2, lastChange: 2, hasMore: false, reset: false });
  assert.equal(await done, 1);
  assert.equal(h.client.changeCursor("left"), undefined);
  assert.equal(h.client.changeCursor("c2"), 2);
  h.client.close();
});

test("keep-alive: only after pingIntervalMs without sending; a busy connection sends none", async () => {
  const h = harness({ pingIntervalMs: 60_000, pingTimeoutMs: 5_000 });
  const ws = await connected(h);
  // the user is busy: a request every 10 s for 120 s (each answered)
  for (let i = 0; i < 12; i++) {
    const asked = h.client.request("conversation:list", {});
    await flush();
    const [req] = ws.requests("conversation:list").slice(-1);
    ws.reply(req, { conversations: [], cursor: null });
    await asked.catch(() => {});
    await h.clock.advance(10_000);
  }
  assert.equal(ws.requests("keepalive").length, 0, "a keepalive on a busy connection");
  // then silence: one keepalive 60 s after the last request
  await h.clock.advance(49_000);
  assert.equal(ws.requests("keepalive").length, 0);
  await h.clock.advance(1_000);
  assert.equal(ws.requests("keepalive").length, 1);
  h.client.close();
});

test("conversation lists and threads follow cursors and hasMore: a page may be cut at 100 KB", async () => {
  const h = harness();
  const ws = await connected(h);
  const summary = (conversationId) => ({
    conversationId, title: null, listingId: null, members: ["alice", "bob"], lastSeq: 1,
    lastMessage: null, lastActivityAt: 1, ackedSeq: 1, readSeq: 1, unread: 0, lastChange: 0,
  });
  // A page stopped early (its summaries near 100 KB): the rest is asked from its cursor
  const listed = h.client.listConversations(5);
  await flush();
  const [first] = ws.requests("conversation:list");
  assert.deepEqual(first.data, { limit: 5 });
  ws.reply(first, { conversations: [summary("c1"), summary("c2")], cursor: "k2" });
  await flush();
  const [, second] = ws.requests("conversation:list");
  assert.deepEqual(second.data, { limit: 3, cursor: "k2" });
  ws.reply(second, { conversations: [summary("c3")], cursor: null });
  assert.deepEqual((await listed).map((c) => c.conversationId), ["c1", "c2", "c3"]);
  assert.equal(ws.requests("conversation:list").length, 2, "no cursor: no more reads");
  // The requests folder alike
  const requested = h.client.listRequests(2);
  await flush();
  const [, , third] = ws.requests("conversation:list");
  assert.deepEqual(third.data, { limit: 2, folder: "requests" });
  ws.reply(third, { conversations: [{ ...summary("r1"), request: true }], cursor: "k3" });
  await flush();
  const [, , , fourth] = ws.requests("conversation:list");
  assert.deepEqual(fourth.data, { limit: 1, folder: "requests", cursor: "k3" });
  ws.reply(fourth, { conversations: [{ ...summary("r2"), request: true }], cursor: "k4" });
  assert.deepEqual((await requested).map((c) => c.conversationId), ["r1", "r2"]);
  assert.equal(ws.requests("conversation:list").length, 4, "the limit reached: no more reads");
  // A thread: its replies after the last seq while hasMore
  const thread = h.client.wholeThread("c1", 3);
  await flush();
  const [t1] = ws.requests("thread:history");
  assert.deepEqual(t1.data, { conversationId: "c1", parentSeq: 3, afterSeq: 0, limit: 50 });
  ws.reply(t1, { conversationId: "c1", parent: msg("c1", 3), messages: [msg("c1", 4)], hasMore: true });
  await flush();
  const [, t2] = ws.requests("thread:history");
  assert.deepEqual(t2.data, { conversationId: "c1", parentSeq: 3, afterSeq: 4, limit: 50 });
  ws.reply(t2, { conversationId: "c1", parent: msg("c1", 3), messages: [msg("c1", 6)], hasMore: false });
  const whole = await thread;
  assert.deepEqual([whole.parent.seq, whole.messages.map((m) => m.seq), whole.hasMore], [3, [4, 6], false]);
  h.client.close();
});
