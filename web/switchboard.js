// @ts-check
/**
 * Switchboard browser client: an ES module with no build step (docs/protocol.md).
 *
 *   import { SwitchboardClient } from "./switchboard.js";
 *   const sb = new SwitchboardClient({ url: "ws://127.0.0.1:8080/dev", token: () => fetchToken() });
 *   sb.on("client:message", (m) => render(m));    // de-duplicated, per-conversation seq order
 *   sb.on("typing", (t) => showTyping(t));        // a server push, by its wire type
 *   await sb.connect();                           // rejects if the handshake is refused
 *   await sb.sendMessage(conversationId, "hi");   // durable when it resolves
 *
 * What it does for you:
 * - request/reply with ids and timeouts (promises); failures are `SwitchboardError`s that
 *   carry the protocol's error `code` (plus "timeout" and "disconnected");
 * - reconnects with jittered exponential backoff, asking `token()` for a fresh token each
 *   time, and keeps the connection alive with `keepalive` (API Gateway answers it with a
 *   `pong`, no Lambda; nothing received within `pingTimeoutMs` after it = dead link);
 *   an authentication failure (an expired token the provider cannot replace, or a provider
 *   that throws an "unauthorized" SwitchboardError) stops reconnecting: `client:auth-failed`;
 * - server pushes are subscribed by their wire type (`PUSHES` in protocol.js); the client's
 *   own events are `client:*` (`ClientEvent`), so the two never collide;
 * - de-duplicates `message:new` by (conversationId, seq), acks what it received, and after
 *   a reconnect syncs every conversation from its cursor (`message:sync`), so a flaky
 *   network never loses or repeats a message;
 * - `message:send` is idempotent (`clientMessageId`): a send interrupted by a disconnect
 *   is sent again after the reconnect and never stored twice;
 * - edits, deletes, reactions, thread replies, quotes and mute (`editMessage`,
 *   `deleteMessage`, `react`, `sendMessage` with `parentSeq`/`replyToSeq`, `threadHistory`,
 *   `mute`); after a reconnect it reads what changed while it was away from each
 *   conversation's change cursor (`message:changes`, `client:message-changed` events),
 *   never the whole history;
 * - throttles `typing:start` to the server's limit and sends `typing:stop` when idle;
 * - `CallSession`: WebRTC with the "perfect negotiation" pattern over `call:*`, screen
 *   sharing and mute state (`MediaCall`, which web/calls.js's group calls share);
 * - `uploadFile()`: presigned PUT or multipart uploads with progress callbacks.
 *
 * Timers, the WebSocket class and randomness are injectable, so the reconnect/resume
 * logic is unit-tested under Node (web/tests/).
 */

import { LIMITS, PUSHES } from "./protocol.js";

/** @typedef {{type: string, data?: any, id?: string, ok?: boolean, error?: {code: string, message: string, details?: any}}} Frame */
/** @typedef {import("./protocol.js").Message} Message a stored message (the wire's `message:new` data) */
/**
 * @typedef {object} ClientOptions
 * @property {string} url WebSocket URL without the token (`ws://127.0.0.1:8080/dev`)
 * @property {string | (() => string | Promise<string>)} token a JWT, or a function giving a fresh one
 * @property {number} [requestTimeoutMs=10000]
 * @property {number} [pingIntervalMs=240000] a `keepalive` after this long without sending (API Gateway closes idle sockets after 10 min; NATs may sooner)
 * @property {number} [pingTimeoutMs=10000]
 * @property {number} [backoffInitialMs=500]
 * @property {number} [backoffMaxMs=30000]
 * @property {number} [ackDelayMs=100] acks are batched per conversation
 * @property {number} [typingIntervalMs=2500] server allows one `typing:start` per 2 s
 * @property {number} [typingIdleMs=4000] `typing:stop` after this long without a keystroke
 * @property {boolean} [autoAck=true]
 * @property {any} [WebSocket] the WebSocket class (default: globalThis.WebSocket)
 * @property {(fn: () => void, ms: number) => any} [setTimeout]
 * @property {(handle: any) => void} [clearTimeout]
 * @property {() => number} [random] in [0, 1), for the backoff jitter
 * @property {() => number} [now] epoch ms
 */

/** An error reply, a timeout or a lost connection; `code` says which. */
export class SwitchboardError extends Error {
  /**
   * @param {string} code protocol error code, or "timeout" / "disconnected" / "closed"
   * @param {string} message
   * @param {{action?: string, details?: any}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message);
    this.name = "SwitchboardError";
    this.code = code;
    this.action = extra.action;
    this.details = extra.details;
  }
}

/**
 * The client's own events (never server push types, which are `PUSHES` keys):
 * `client:message` a new, de-duplicated message ({...message, source}); `client:state`
 * ({state}); `client:open` ({reconnected}); `client:close` ({code, reason, opened});
 * `client:reconnecting` ({attempt, delayMs}); `client:synced` ({cursors});
 * `client:auth-failed` ({error}: reconnecting stopped); `client:error` (an Error).
 */
export const ClientEvent = Object.freeze({
  MESSAGE: "client:message",
  STATE: "client:state",
  OPEN: "client:open",
  CLOSE: "client:close",
  RECONNECTING: "client:reconnecting",
  SYNCED: "client:synced",
  /** A stored message changed while the client was away (read by `syncChanges`). */
  MESSAGE_CHANGED: "client:message-changed",
  AUTH_FAILED: "client:auth-failed",
  ERROR: "client:error",
});
/** @type {Set<string>} */
const CLIENT_EVENTS = new Set(Object.values(ClientEvent));

export const State = Object.freeze({
  IDLE: "idle",
  CONNECTING: "connecting",
  OPEN: "open",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
});

/**
 * Full-jitter exponential backoff: a random delay in [0, min(max, initial * 2^attempt)].
 * @param {number} attempt 0 for the first retry
 * @param {number} initialMs
 * @param {number} maxMs
 * @param {() => number} random
 */
export function backoffDelay(attempt, initialMs, maxMs, random) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/**
 * Per-conversation receive state: which seqs were seen, the contiguous cursor, gaps.
 * Pure logic (no I/O) so it is unit-tested on its own.
 */
export class ConversationLog {
  constructor() {
    /** @type {Map<string, {cursor: number, seen: Set<number>, floor?: number}>} */
    this.conversations = new Map();
  }

  /**
   * Start tracking a conversation at a cursor the server gave (e.g. `ackedSeq` from
   * `conversation:list`). A conversation already tracked keeps the larger cursor.
   * @param {string} conversationId
   * @param {number} seq
   */
  seed(conversationId, seq) {
    const state = this.conversations.get(conversationId);
    if (!state) {
      this.conversations.set(conversationId, { cursor: seq, seen: new Set() });
      return;
    }
    if (seq > state.cursor) {
      state.cursor = seq;
      this._advance(state);
    }
  }

  /**
   * Record a received message. Returns false for a duplicate (drop it).
   * @param {string} conversationId
   * @param {number} seq
   */
  accept(conversationId, seq) {
    let state = this.conversations.get(conversationId);
    if (!state) {
      // First sight of a conversation: what lies before this seq is history (fetched on
      // demand), not a gap to fill. Below this "floor" only the seen set tells duplicates
      // apart: a backlog push may still bring older messages after a live one.
      state = { cursor: seq - 1, seen: new Set(), floor: seq - 1 };
      this.conversations.set(conversationId, state);
    }
    if (state.seen.has(seq)) return false;
    if (seq <= state.cursor && (state.floor === undefined || seq > state.floor)) return false;
    state.seen.add(seq);
    this._advance(state);
    return true;
  }

  /** @param {{cursor: number, seen: Set<number>, floor?: number}} state */
  _advance(state) {
    while (state.seen.has(state.cursor + 1)) state.cursor += 1;
    // Keep the seen set small: above the floor, the cursor covers what is below it.
    if (state.seen.size > 2000) {
      const floor = state.floor ?? -Infinity;
      for (const s of state.seen) if (s > floor && s < state.cursor - 1000) state.seen.delete(s);
    }
  }

  /** The highest seq up to which every message was received. @param {string} conversationId */
  cursor(conversationId) {
    return this.conversations.get(conversationId)?.cursor ?? 0;
  }

  /** Whether messages after the cursor were seen, i.e. a gap needs filling. @param {string} conversationId */
  hasGap(conversationId) {
    const state = this.conversations.get(conversationId);
    if (!state) return false;
    for (const s of state.seen) if (s > state.cursor + 1) return true;
    return false;
  }

  /** @returns {Record<string, number>} every tracked conversation's cursor */
  cursors() {
    /** @type {Record<string, number>} */
    const out = {};
    for (const [id, state] of this.conversations) out[id] = state.cursor;
    return out;
  }
}

let clientIds = 0;

/** @param {number} [length] */
function randomId(length = 12) {
  const bytes = new Uint8Array(length);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => (b % 36).toString(36)).join("");
}

export class SwitchboardClient {
  /** @param {ClientOptions} options */
  constructor(options) {
    this.options = {
      requestTimeoutMs: 10_000,
      pingIntervalMs: 240_000,
      pingTimeoutMs: 10_000,
      backoffInitialMs: 500,
      backoffMaxMs: 30_000,
      ackDelayMs: 100,
      typingIntervalMs: 2_500,
      typingIdleMs: 4_000,
      autoAck: true,
      ...options,
    };
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._setTimeout = options.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
    this._clearTimeout = options.clearTimeout ?? ((h) => globalThis.clearTimeout(h));
    this._random = options.random ?? Math.random;
    this._now = options.now ?? Date.now;
    /** @type {string} one of `State` */
    this.state = State.IDLE;
    /** @type {any} */
    this.ws = null;
    this.userId = "";
    this.log = new ConversationLog();
    /** @type {Map<string, number>} per conversation: every change up to it is applied */
    this._changeCursors = new Map();
    /** @type {Map<string, number>} per conversation: the latest change number known */
    this._lastChange = new Map();
    /** Duplicated `message:new` frames dropped so far. */
    this.duplicates = 0;
    /** How many times the socket opened (1 = first connection). */
    this.connections = 0;
    this._prefix = `c${++clientIds}-${randomId(4)}`;
    this._nextId = 0;
    /** @type {Map<string, {action: string, data: any, frameId: string, resolve: (v: any) => void, reject: (e: any) => void, timer: any, resend: boolean, sent: boolean, authRetried?: boolean}>} */
    this._pending = new Map();
    /** @type {Map<string, Set<(data: any, frame: Frame) => void>>} */
    this._handlers = new Map();
    this._attempt = 0;
    this._reconnectTimer = null;
    this._pingTimer = null;
    this._framesReceived = 0;
    this._lastSentAt = -Infinity;
    /** @type {Map<string, number>} */
    this._acked = new Map();
    /** @type {Map<string, any>} */
    this._ackTimers = new Map();
    /** @type {Map<string, {lastStart: number, idle: any, held: any, active: boolean}>} */
    this._typing = new Map();
    /** @type {Promise<void> | null} */
    this._syncing = null;
    /** @type {Promise<void> | null} */
    this._refreshing = null;
    this._refreshTimer = null;
    this._lastToken = "";
    /** @type {{resolve: (v: any) => void, reject: (e: any) => void, initial: boolean}[]} */
    this._connectWaiters = [];
    /** A refused handshake with an expired token already asked the provider once. */
    this._authRetried = false;
  }

  // ------------------------------------------------------------------ events

  /**
   * Subscribe to a server push type (`message:new` raw frames, `typing`, `presence`,
   * `call:*`, `upload:*`: the keys of `PUSHES` in protocol.js) or to one of the client's
   * own events (`ClientEvent`: `client:message`, `client:state`, ...). `*` gets all. An
   * unknown name throws (a typo would otherwise never fire). Returns the unsubscribe
   * function.
   * @param {string} type
   * @param {(data: any, frame: Frame) => void} handler
   */
  on(type, handler) {
    if (type !== "*" && !CLIENT_EVENTS.has(type) && !Object.hasOwn(PUSHES, type)) {
      throw new TypeError(`no such event: ${type} (server pushes: PUSHES in protocol.js; client events: ClientEvent)`);
    }
    let set = this._handlers.get(type);
    if (!set) this._handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /**
   * A Promise of the data of the next `type` event for which `predicate` holds; rejects
   * with a "timeout" SwitchboardError after `timeoutMs`.
   * @param {string} type
   * @param {(data: any) => boolean} [predicate]
   * @param {number} [timeoutMs]
   * @returns {Promise<any>}
   */
  waitFor(type, predicate = () => true, timeoutMs = this.options.requestTimeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = this._setTimeout(() => {
        off();
        reject(new SwitchboardError("timeout", `no ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.on(type, (data) => {
        if (!predicate(data)) return;
        off();
        this._clearTimeout(timer);
        resolve(data);
      });
    });
  }

  /** @param {string} type @param {any} data @param {Frame} [frame] */
  _emit(type, data, frame = { type, data }) {
    for (const key of [type, "*"]) {
      for (const handler of this._handlers.get(key) ?? []) {
        try {
          handler(data, frame);
        } catch (error) {
          if (type !== ClientEvent.ERROR) this._emit(ClientEvent.ERROR, error);
          else console.error(error);
        }
      }
    }
  }

  /** @param {string} state */
  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit(ClientEvent.STATE, { state });
  }

  // ------------------------------------------------------------------ connection

  /**
   * Connects, then keeps reconnecting until `close()`. Resolves once the socket is open.
   * Called from idle or closed, it rejects (and the client closes) if that first handshake
   * fails or the token provider throws: the application decides whether to try again.
   * Called while reconnecting, it waits for the connection, or rejects if authentication
   * fails for good.
   * @returns {Promise<void>}
   */
  connect() {
    if (this.state === State.OPEN) return Promise.resolve();
    const initial = this.state === State.IDLE || this.state === State.CLOSED;
    const opened = new Promise((resolve, reject) => {
      this._connectWaiters.push({ resolve, reject, initial });
    });
    if (initial) {
      this._attempt = 0;
      this._authRetried = false;
      this._open();
    }
    return /** @type {Promise<void>} */ (opened);
  }

  /** Settles every waiting `connect()` (`initialOnly`: only those that started the client). @param {any} error @param {boolean} [initialOnly] */
  _rejectConnect(error, initialOnly = false) {
    const rejected = this._connectWaiters.filter((w) => w.initial || !initialOnly);
    this._connectWaiters = this._connectWaiters.filter((w) => !rejected.includes(w));
    for (const waiter of rejected) waiter.reject(error);
    return rejected.length > 0;
  }

  /** Stops for good after an authentication failure. @param {SwitchboardError} error */
  _authFailed(error) {
    this._rejectConnect(error);
    this._emit(ClientEvent.AUTH_FAILED, { error });
    this.close();
  }

  async _token() {
    const { token } = this.options;
    return typeof token === "function" ? await token() : token;
  }

  async _open() {
    this._setState(this.connections === 0 ? State.CONNECTING : State.RECONNECTING);
    let token;
    try {
      token = await this._token();
    } catch (cause) {
      const error =
        cause instanceof SwitchboardError ? cause : new SwitchboardError("token_provider", `the token provider failed: ${cause}`, { details: cause });
      if (error.code === "unauthorized") {
        this._authFailed(error);
        return;
      }
      this._emit(ClientEvent.ERROR, error);
      if (this._rejectConnect(error, true)) {
        this.close();
        return;
      }
      this._scheduleReconnect();
      return;
    }
    if (this.state === State.CLOSED) return;
    this.userId = userIdOf(token) ?? this.userId;
    this._lastToken = token;
    // backlog=batch: the reconnect backlog comes as `message:batch` frames (up to 32 KB).
    const url = `${this.options.url}${this.options.url.includes("?") ? "&" : "?"}backlog=batch&token=${encodeURIComponent(token)}`;
    const ws = new this._WebSocket(url);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this._onOpen();
    };
    ws.onmessage = (/** @type {{data: any}} */ event) => {
      if (this.ws === ws) this._onFrame(event.data);
    };
    ws.onclose = (/** @type {{code: number, reason: string}} */ event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!opened && this._handshakeRefused(token, event?.code ?? 1006)) return;
      this._onClose(opened, event?.code ?? 1006, event?.reason ?? "");
    };
    ws.onerror = () => {
      /* onclose follows and decides */
    };
  }

  /**
   * The socket closed before it opened: refused (401/403/429, which a browser does not
   * expose) or unreachable. True if that ends the client. A first `connect()` rejects; an
   * expired token is an authentication failure once the provider has had one chance to
   * replace it (the server refuses it, and it will not get younger).
   * @param {string} token
   * @param {number} code
   */
  _handshakeRefused(token, code) {
    const error = new SwitchboardError("handshake_refused", `the WebSocket handshake failed (close ${code})`);
    if (this._rejectConnect(error, true)) {
      this._emit(ClientEvent.CLOSE, { code, reason: "handshake refused", opened: false });
      this.close();
      return true;
    }
    const exp = claimsOf(token)?.exp;
    if (typeof exp === "number" && exp * 1000 <= this._now()) {
      if (typeof this.options.token === "function" && !this._authRetried) {
        this._authRetried = true;
        return false; // one more handshake, with the provider's next token
      }
      this._authFailed(new SwitchboardError("unauthorized", "the token has expired and no fresh one was given"));
      return true;
    }
    return false;
  }

  _onOpen() {
    const reconnected = this.connections > 0;
    this.connections += 1;
    this._attempt = 0;
    this._authRetried = false;
    this._setState(State.OPEN);
    this._schedulePing();
    this._scheduleRefresh(this._lastToken);
    // Requests issued while offline, and idempotent ones the lost socket never answered.
    for (const [id, pending] of this._pending) {
      if (!pending.sent) this._transmit(id, pending);
    }
    this._emit(ClientEvent.OPEN, { reconnected });
    const waiters = this._connectWaiters;
    this._connectWaiters = [];
    for (const waiter of waiters) waiter.resolve(undefined);
    if (reconnected) this.resume().catch((error) => this._emit(ClientEvent.ERROR, error));
  }

  /** @param {boolean} opened @param {number} code @param {string} reason */
  _onClose(opened, code, reason) {
    this._clearTimeout(this._pingTimer);
    this._pingTimer = null;
    this._clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    for (const [id, pending] of this._pending) {
      if (!pending.sent) continue;
      if (pending.resend) {
        pending.sent = false; // sent again on the next connection
      } else {
        this._pending.delete(id);
        this._clearTimeout(pending.timer);
        pending.reject(
          new SwitchboardError("disconnected", `connection lost before the reply to ${pending.action}`, {
            action: pending.action,
          }),
        );
      }
    }
    this._emit(ClientEvent.CLOSE, { code, reason, opened });
    if (this.state === State.CLOSED) return;
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    if (this.state === State.CLOSED) return;
    this._setState(State.RECONNECTING);
    const delay = backoffDelay(
      this._attempt,
      this.options.backoffInitialMs,
      this.options.backoffMaxMs,
      this._random,
    );
    this._attempt += 1;
    this._emit(ClientEvent.RECONNECTING, { attempt: this._attempt, delayMs: delay });
    this._clearTimeout(this._reconnectTimer);
    this._reconnectTimer = this._setTimeout(() => {
      this._reconnectTimer = null;
      if (this.state !== State.CLOSED) this._open();
    }, delay);
  }

  /**
   * Reconnects now instead of waiting for the backoff delay (e.g. on the browser's
   * `online` event). Does nothing while connected or connecting.
   */
  reconnect() {
    if (this.state !== State.RECONNECTING || this._reconnectTimer === null) return;
    this._clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this._open();
  }

  /** Drops the current socket (as a network failure would); the client reconnects. */
  dropConnection() {
    this.ws?.close(4000, "dropped by the client");
  }

  /** Closes for good: no reconnect; pending requests and `connect()`s fail with code "closed". */
  close() {
    this._setState(State.CLOSED);
    this._rejectConnect(new SwitchboardError("closed", "client closed"));
    this._clearTimeout(this._reconnectTimer);
    this._clearTimeout(this._pingTimer);
    this._clearTimeout(this._refreshTimer);
    for (const timer of this._ackTimers.values()) this._clearTimeout(timer);
    this._ackTimers.clear();
    for (const t of this._typing.values()) {
      this._clearTimeout(t.idle);
      this._clearTimeout(t.held);
    }
    this._typing.clear();
    for (const [id, pending] of this._pending) {
      this._pending.delete(id);
      this._clearTimeout(pending.timer);
      pending.reject(new SwitchboardError("closed", "client closed", { action: pending.action }));
    }
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, "bye");
  }

  _schedulePing(delayMs = this.options.pingIntervalMs) {
    this._clearTimeout(this._pingTimer);
    this._pingTimer = this._setTimeout(() => {
      const ws = this.ws;
      if (!ws) return;
      // Only after `pingIntervalMs` without sending: a busy connection needs no keep-alive.
      const quietFor = this._now() - this._lastSentAt;
      if (quietFor < this.options.pingIntervalMs) {
        this._schedulePing(this.options.pingIntervalMs - quietFor);
        return;
      }
      // `keepalive` is answered by API Gateway itself (a MOCK integration: no Lambda runs)
      // with a `pong` that names no request, so any frame after it proves the link.
      const seen = this._framesReceived;
      try {
        ws.send(JSON.stringify({ action: "keepalive" }));
        this._lastSentAt = this._now();
      } catch {
        return; // closing already: onclose decides
      }
      this._pingTimer = this._setTimeout(() => {
        if (this.ws !== ws) return;
        // No pong: the link is dead even if the socket has not noticed yet.
        if (this._framesReceived === seen) ws.close(4001, "keep-alive timeout");
        else this._schedulePing();
      }, this.options.pingTimeoutMs);
    }, delayMs);
  }

  // ------------------------------------------------------------------ requests

  /**
   * Sends `{action, id, data}` and resolves with the reply's `data`; rejects with a
   * SwitchboardError carrying the error code. Requests made while disconnected wait for
   * the connection (within the timeout). `resend: true` (idempotent actions only) sends the
   * request again on the next connection if the socket is lost before the reply.
   * @param {string} action
   * @param {Record<string, any>} [data]
   * @param {{timeoutMs?: number, resend?: boolean}} [options]
   * @returns {Promise<any>}
   */
  request(action, data = {}, options = {}) {
    if (this.state === State.CLOSED) {
      return Promise.reject(new SwitchboardError("closed", "client closed", { action }));
    }
    const size = new TextEncoder().encode(JSON.stringify({ action, id: "", data })).length;
    if (size > LIMITS.MAX_MESSAGE_BYTES) {
      // API Gateway would close the socket (1009) and every request on it would be lost.
      return Promise.reject(
        new SwitchboardError("payload_too_large", `the frame is ${size} bytes; the limit is ${LIMITS.MAX_MESSAGE_BYTES}`, { action }),
      );
    }
    const timeoutMs = options.timeoutMs ?? this.options.requestTimeoutMs;
    const id = `${this._prefix}-${++this._nextId}`;
    return new Promise((resolve, reject) => {
      const pending = {
        action,
        data,
        frameId: id,
        resolve,
        reject,
        resend: Boolean(options.resend),
        sent: false,
        timer: this._setTimeout(() => {
          this._pending.delete(id);
          reject(new SwitchboardError("timeout", `no reply to ${action} within ${timeoutMs} ms`, { action }));
        }, timeoutMs),
      };
      this._pending.set(id, pending);
      if (this.state === State.OPEN) this._transmit(id, pending);
    });
  }

  /** @param {string} id @param {{action: string, data: any, sent: boolean}} pending */
  _transmit(id, pending) {
    try {
      this.ws.send(JSON.stringify({ action: pending.action, id, data: pending.data }));
      pending.sent = true;
      this._lastSentAt = this._now(); // the keep-alive waits for this much silence
    } catch {
      pending.sent = false; // the socket is closing: onclose handles it
    }
  }

  /** @param {{action: string, authRetried?: boolean}} pending */
  _canRefresh(pending) {
    return typeof this.options.token === "function" && !pending.authRetried && pending.action !== "auth:refresh";
  }

  /**
   * Gets a fresh token and hands it to the live connection (`auth:refresh`), so an expired
   * token does not cost a reconnect. Runs by itself shortly before the token expires and
   * on a `token_expired` reply.
   */
  refreshToken() {
    if (this._refreshing) return this._refreshing;
    this._refreshing = (async () => {
      try {
        const token = await this._token();
        await this.request("auth:refresh", { token });
        this._scheduleRefresh(token);
      } finally {
        this._refreshing = null;
      }
    })();
    return this._refreshing;
  }

  /** @param {string} token */
  _scheduleRefresh(token) {
    this._clearTimeout(this._refreshTimer);
    this._refreshTimer = null;
    const exp = claimsOf(token)?.exp;
    if (typeof this.options.token !== "function" || typeof exp !== "number") return;
    const delay = Math.max(5_000, exp * 1000 - this._now() - 60_000);
    this._refreshTimer = this._setTimeout(() => {
      if (this.state === State.OPEN) this.refreshToken().catch((error) => this._emit(ClientEvent.ERROR, error));
    }, delay);
  }

  /** @param {string} raw */
  _onFrame(raw) {
    this._framesReceived += 1; // the keep-alive's proof of life, whatever the frame
    /** @type {Frame} */
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      this._emit(ClientEvent.ERROR, new SwitchboardError("bad_frame", "the server sent a frame that is not JSON"));
      return;
    }
    if (frame.type === "reply") {
      const pending = this._pending.get(String(frame.id));
      if (!pending) return; // timed out already
      if (frame.error?.code === "token_expired" && this._canRefresh(pending)) {
        // The connection's token expired: refresh it on this connection, then ask again.
        pending.authRetried = true;
        this.refreshToken().then(
          () => this._pending.has(String(frame.id)) && this._transmit(String(frame.id), pending),
          () => undefined, // the timeout (or close) rejects the request
        );
        return;
      }
      this._pending.delete(String(frame.id));
      this._clearTimeout(pending.timer);
      if (frame.ok) pending.resolve(frame.data);
      else {
        const error = frame.error ?? { code: "internal", message: "error reply without error" };
        pending.reject(new SwitchboardError(error.code, error.message, { action: pending.action, details: error.details }));
      }
      return;
    }
    if (frame.type === "message:new") this._receive(frame.data, "push");
    if (frame.type === "message:updated" || frame.type === "message:deleted" || frame.type === "message:reactions") {
      this._onChangePush(frame.data);
    }
    if (frame.type === "message:batch") {
      // Each message of a batch is handled (and seen by `message:new` subscribers) as if
      // it had come alone, in the batch's (seq) order.
      for (const message of frame.data?.messages ?? []) {
        this._receive(message, "push");
        this._emit("message:new", message, { type: "message:new", data: message });
      }
    }
    this._emit(frame.type, frame.data, frame);
  }

  // ------------------------------------------------------------------ messages

  /**
   * @param {Message} message
   * @param {"push" | "sync" | "self"} source
   */
  _receive(message, source) {
    if (!message || typeof message.seq !== "number") return false;
    const before = this.log.cursor(message.conversationId);
    if (!this.log.accept(message.conversationId, message.seq)) {
      this.duplicates += 1;
      return false;
    }
    // A conversation first seen by its messages (it started while connected): its changes
    // are read from the start on resume (at worst more than needed, never less).
    if (!this._changeCursors.has(message.conversationId)) this._changeCursors.set(message.conversationId, 0);
    this._emit(ClientEvent.MESSAGE, { ...message, source });
    const after = this.log.cursor(message.conversationId);
    if (source !== "self" && this.options.autoAck && after > before) this._scheduleAck(message.conversationId);
    if (source === "push" && this.log.hasGap(message.conversationId)) {
      // A seq arrived ahead of the cursor: fetch what lies between (a lost push).
      this.resume().catch((error) => this._emit(ClientEvent.ERROR, error));
    }
    return true;
  }

  /** Track a conversation from a cursor (e.g. `ackedSeq` of `conversation:list`). @param {string} conversationId @param {number} seq */
  seedCursor(conversationId, seq) {
    this.log.seed(conversationId, seq);
  }

  /** @param {string} conversationId */
  _scheduleAck(conversationId) {
    if (this._ackTimers.has(conversationId)) return;
    this._ackTimers.set(
      conversationId,
      this._setTimeout(() => {
        this._ackTimers.delete(conversationId);
        const seq = this.log.cursor(conversationId);
        if (seq <= (this._acked.get(conversationId) ?? 0)) return;
        this._acked.set(conversationId, seq);
        this.request("message:ack", { conversationId, seq }, { resend: true }).catch((error) => {
          this._acked.delete(conversationId);
          this._emit(ClientEvent.ERROR, error);
        });
      }, this.options.ackDelayMs),
    );
  }

  /**
   * Fetches everything after each tracked conversation's cursor (`message:sync`, paged
   * while `hasMore`), emitting each new message once. Runs after every reconnect.
   */
  resume() {
    if (this._syncing) return this._syncing;
    this._syncing = (async () => {
      try {
        for (let round = 0; round < 50; round++) {
          const cursors = this.log.cursors();
          if (Object.keys(cursors).length === 0) break;
          const reply = await this.request("message:sync", { cursors });
          let more = false;
          for (const [conversationId, page] of Object.entries(reply.conversations ?? {})) {
            for (const message of page.messages ?? []) this._receive({ ...message, conversationId }, "sync");
            if (page.hasMore) more = true;
            this._lastChange.set(conversationId, page.lastChange ?? 0);
          }
          if (!more) break;
        }
        await this.syncChanges();
        this._emit(ClientEvent.SYNCED, { cursors: this.log.cursors() });
      } finally {
        this._syncing = null;
      }
    })();
    return this._syncing;
  }

  // ------------------------------------------------------------------ changes

  /**
   * Track a conversation's change cursor (the `lastChange` of `conversation:list` or of
   * a history page you rendered): changes after it are read on the next resume.
   * @param {string} conversationId
   * @param {number} change
   */
  seedChangeCursor(conversationId, change) {
    if (!this._changeCursors.has(conversationId)) this._changeCursors.set(conversationId, change);
    this._lastChange.set(conversationId, Math.max(change, this._lastChange.get(conversationId) ?? 0));
  }

  /** @param {string} conversationId @returns {number | undefined} */
  changeCursor(conversationId) {
    return this._changeCursors.get(conversationId);
  }

  /**
   * A change push (`message:updated`, `message:deleted`, `message:reactions`): the cursor
   * moves only over consecutive changes, so a lost push is read on the next resume.
   * @param {{conversationId: string, change: number}} data
   */
  _onChangePush(data) {
    const cursor = this._changeCursors.get(data.conversationId);
    if (cursor !== undefined && data.change === cursor + 1) this._changeCursors.set(data.conversationId, data.change);
    this._lastChange.set(data.conversationId, Math.max(data.change, this._lastChange.get(data.conversationId) ?? 0));
  }

  /**
   * Reads, for every tracked conversation whose `lastChange` is past its change cursor,
   * the messages changed since (`message:changes`, paged), emitting `client:message-changed`
   * for each (the message as it is now; apply it if its `version` is above yours). A
   * `reset` (the changes expired) is emitted as `client:message-changed` with `reset: true`:
   * re-read that conversation's history. Runs after every resume.
   * @returns {Promise<number>} how many changed messages were read
   */
  async syncChanges() {
    let read = 0;
    for (const [conversationId, cursor] of [...this._changeCursors]) {
      let after = cursor;
      for (let round = 0; round < 20 && after < (this._lastChange.get(conversationId) ?? 0); round++) {
        /** @type {import("./protocol.js").ChangesPage} */
        let page;
        try {
          page = await this.request("message:changes", { conversationId, afterChange: after });
        } catch (error) {
          // A conversation the user left or was removed from: nothing more to follow there
          // (the others' changes still go on).
          if (error instanceof SwitchboardError && (error.code === "forbidden" || error.code === "not_found")) {
            this._changeCursors.delete(conversationId);
            after = -1;
            break;
          }
          throw error;
        }
        if (page.reset) this._emit(ClientEvent.MESSAGE_CHANGED, { conversationId, reset: true, message: null });
        for (const message of page.messages) {
          read += 1;
          this._emit(ClientEvent.MESSAGE_CHANGED, { conversationId, reset: false, message });
        }
        after = page.cursor;
        this._lastChange.set(conversationId, page.lastChange);
        if (!page.hasMore) break;
      }
      if (after >= 0) this._changeCursors.set(conversationId, after);
    }
    return read;
  }

  /**
   * Edits your message (within the edit window, `LIMITS.EDIT_WINDOW_SECONDS`).
   * @param {string} conversationId
   * @param {number} seq
   * @param {string} body
   * @returns {Promise<import("./protocol.js").MessageUpdated>}
   */
  editMessage(conversationId, seq, body) {
    // Idempotent (the same body again changes nothing): safe to send again after a drop.
    return this.request("message:edit", { conversationId, seq, body }, { resend: true });
  }

  /**
   * Deletes your message for everyone (a tombstone keeps its seq).
   * @param {string} conversationId
   * @param {number} seq
   * @returns {Promise<import("./protocol.js").MessageDeleted>}
   */
  deleteMessage(conversationId, seq) {
    return this.request("message:delete", { conversationId, seq }, { resend: true });
  }

  /**
   * Reacts with one emoji (`on` false: takes it back). Idempotent.
   * @param {string} conversationId
   * @param {number} seq
   * @param {string} emoji
   * @param {boolean} [on]
   * @returns {Promise<import("./protocol.js").MessageReactions>}
   */
  react(conversationId, seq, emoji, on = true) {
    return this.request("message:react", { conversationId, seq, emoji, on }, { resend: true });
  }

  /**
   * A thread's parent and its replies after `afterSeq`, oldest first.
   * @param {string} conversationId
   * @param {number} parentSeq
   * @param {{afterSeq?: number, limit?: number}} [options]
   * @returns {Promise<import("./protocol.js").ThreadPage>}
   */
  threadHistory(conversationId, parentSeq, options = {}) {
    return this.request("thread:history", {
      conversationId,
      parentSeq,
      afterSeq: options.afterSeq ?? 0,
      limit: options.limit ?? 50,
    });
  }

  /**
   * A thread's parent and its replies, following `hasMore` from the last seq read (a page
   * may hold fewer than asked: the server stops one before 100 KB), at most `maxPages`
   * pages (`hasMore` still true if there were more).
   * @param {string} conversationId
   * @param {number} parentSeq
   * @param {number} [maxPages]
   * @returns {Promise<import("./protocol.js").ThreadPage>}
   */
  async wholeThread(conversationId, parentSeq, maxPages = 20) {
    let page = await this.threadHistory(conversationId, parentSeq);
    const messages = [...page.messages];
    for (let n = 1; n < maxPages && page.hasMore && page.messages.length; n++) {
      const afterSeq = messages[messages.length - 1].seq;
      page = await this.threadHistory(conversationId, parentSeq, { afterSeq });
      messages.push(...page.messages);
    }
    return { ...page, messages };
  }

  /**
   * Mutes a conversation's notifications and e-mail until `until` (epoch ms), or until
   * unmuted if omitted.
   * @param {string} conversationId
   * @param {number} [until]
   * @returns {Promise<import("./protocol.js").MuteState>}
   */
  mute(conversationId, until) {
    /** @type {Record<string, any>} */
    const data = { conversationId, muted: true };
    if (until !== undefined) data.until = until;
    return this.request("conversation:mute", data, { resend: true });
  }

  /**
   * @param {string} conversationId
   * @returns {Promise<import("./protocol.js").MuteState>}
   */
  unmute(conversationId) {
    return this.request("conversation:mute", { conversationId, muted: false }, { resend: true });
  }

  /**
   * Sends a message; resolves with the stored message once it is durable. Safe to retry:
   * the same `clientMessageId` is used across reconnects. `parentSeq`: a reply in that
   * message's thread; `replyToSeq`: a quote of that message.
   * @param {string} conversationId
   * @param {string} body
   * @param {{attachments?: Message["attachments"], clientMessageId?: string, timeoutMs?: number, parentSeq?: number, replyToSeq?: number}} [options]
   * @returns {Promise<Message>}
   */
  async sendMessage(conversationId, body, options = {}) {
    const clientMessageId = options.clientMessageId ?? `m-${randomId(16)}`;
    /** @type {Record<string, any>} */
    const data = { conversationId, clientMessageId, body };
    if (options.attachments?.length) data.attachments = options.attachments;
    if (options.parentSeq !== undefined) data.parentSeq = options.parentSeq;
    if (options.replyToSeq !== undefined) data.replyToSeq = options.replyToSeq;
    this.stopTyping(conversationId);
    const reply = await this.request("message:send", data, { resend: true, timeoutMs: options.timeoutMs ?? 30_000 });
    /** @type {Message} */
    const message = {
      conversationId,
      seq: reply.seq,
      messageId: reply.messageId,
      senderId: this.userId,
      body,
      createdAt: reply.createdAt,
      clientMessageId,
      ...(data.attachments ? { attachments: data.attachments } : {}),
      ...(data.parentSeq !== undefined ? { parentSeq: data.parentSeq } : {}),
      // Your own echo names the quoted seq (the server's `replyTo` preview comes with pushes
      // to the others, history and sync).
      ...(data.replyToSeq !== undefined ? { replyToSeq: data.replyToSeq } : {}),
    };
    this._receive(message, "self");
    return message;
  }

  /**
   * Marks read up to `seq` (also acks).
   * @param {string} conversationId
   * @param {number} seq
   * @returns {Promise<import("./protocol.js").CursorMoved>}
   */
  markRead(conversationId, seq) {
    // Idempotent (the read cursor only moves forward): safe to send again after a drop.
    return this.request("message:read", { conversationId, seq }, { resend: true });
  }

  /**
   * Older messages, oldest first (scroll-back). They are history, not news: no `message`
   * events and no acks.
   * @param {string} conversationId
   * @param {number | undefined} beforeSeq
   * @param {number} [limit]
   * @returns {Promise<import("./protocol.js").HistoryPage>}
   */
  history(conversationId, beforeSeq, limit = 50) {
    /** @type {Record<string, any>} */
    const data = { conversationId, limit };
    if (beforeSeq !== undefined) data.beforeSeq = beforeSeq;
    return this.request("message:history", data);
  }

  /**
   * A page of about `limit` messages around `seq` (half older, the rest from it on): open
   * a conversation at a search hit. History, not news: no events, no acks.
   * @param {string} conversationId
   * @param {number} seq
   * @param {number} [limit]
   * @returns {Promise<import("./protocol.js").HistoryPage>}
   */
  historyAround(conversationId, seq, limit = 50) {
    return this.request("message:history", { conversationId, aroundSeq: seq, limit });
  }

  /**
   * Full-text search over the user's conversations (or one, with `conversationId`): every
   * word must match, the last word also as a prefix unless followed by a space, `"quoted
   * words"` as a phrase. Best hits first; pass `cursor` back for the next page.
   * @param {string} query
   * @param {{conversationId?: string, limit?: number, cursor?: string}} [options]
   * @returns {Promise<import("./protocol.js").SearchResult>}
   */
  search(query, options = {}) {
    /** @type {Record<string, any>} */
    const data = { query, limit: options.limit ?? 20 };
    if (options.conversationId) data.conversationId = options.conversationId;
    if (options.cursor) data.cursor = options.cursor;
    return this.request("message:search", data);
  }

  /**
   * Your conversations, newest activity first (and their cursors seeded for resume).
   * @param {number} [limit]
   * @returns {Promise<import("./protocol.js").ConversationSummary[]>}
   */
  async listConversations(limit = 50) {
    const conversations = await this._listPages({ limit }, limit);
    for (const c of conversations) {
      this.seedCursor(c.conversationId, c.ackedSeq ?? 0);
      this.seedChangeCursor(c.conversationId, c.lastChange ?? 0);
    }
    return conversations;
  }

  /**
   * Up to `limit` summaries of `conversation:list`, following its cursor: a page may hold
   * fewer than asked (the server stops one before 100 KB), so one page is not the list.
   * @param {Record<string, unknown>} data
   * @param {number} limit
   * @returns {Promise<import("./protocol.js").ConversationSummary[]>}
   */
  async _listPages(data, limit) {
    /** @type {import("./protocol.js").ConversationSummary[]} */
    const found = [];
    /** @type {string | null} */
    let cursor = null;
    // Bounded: each page but the last holds one summary at least.
    for (let page = 0; page < limit && found.length < limit; page++) {
      /** @type {Record<string, unknown>} */
      const ask = { ...data, limit: limit - found.length };
      if (cursor) ask.cursor = cursor;
      const reply = await this.request("conversation:list", ask);
      found.push(...(reply.conversations ?? []));
      cursor = reply.cursor ?? null;
      if (!cursor) break;
    }
    return found;
  }

  /**
   * @param {string[]} members
   * @param {{title?: string, listingId?: string}} [extra]
   * @returns {Promise<import("./protocol.js").ConversationCreated>}
   */
  createConversation(members, extra = {}) {
    return this.request("conversation:create", { members, ...extra });
  }

  /**
   * @param {string[]} userIds
   * @returns {Promise<import("./protocol.js").Presence[]>}
   */
  async presence(userIds) {
    return (await this.request("presence:query", { userIds })).presence;
  }

  // ------------------------------------------------------------------ consent & membership
  // Message requests, leaving, blocks, group members and roles (docs/protocol.md,
  // "Consent and membership"). Their pushes: `conversation:request`,
  // `conversation:accepted`; changes arrive as `message:new` with a `system` object.

  /**
   * The conversations strangers started with you (`request: true` on each).
   * @param {number} [limit]
   * @returns {Promise<import("./protocol.js").ConversationSummary[]>}
   */
  async listRequests(limit = 50) {
    const conversations = await this._listPages({ folder: "requests" }, limit);
    for (const c of conversations) this.seedCursor(c.conversationId, c.ackedSeq ?? 0);
    return conversations;
  }

  /**
   * @param {string} conversationId
   * @returns {Promise<import("./protocol.js").ConsentChanged>}
   */
  acceptConversation(conversationId) {
    return this.request("conversation:accept", { conversationId });
  }

  /**
   * @param {string} conversationId
   * @returns {Promise<import("./protocol.js").ConsentChanged>}
   */
  declineConversation(conversationId) {
    return this.request("conversation:decline", { conversationId });
  }

  /**
   * @param {string} conversationId
   * @returns {Promise<import("./protocol.js").MembershipChanged>}
   */
  leaveConversation(conversationId) {
    return this.request("conversation:leave", { conversationId });
  }

  /**
   * @param {string} conversationId
   * @param {string[]} members
   * @returns {Promise<import("./protocol.js").MembershipChanged>}
   */
  addMembers(conversationId, members) {
    return this.request("conversation:add-members", { conversationId, members });
  }

  /**
   * @param {string} conversationId
   * @param {string} userId
   * @returns {Promise<import("./protocol.js").MembershipChanged>}
   */
  removeMember(conversationId, userId) {
    return this.request("conversation:remove-member", { conversationId, userId });
  }

  /**
   * @param {string} conversationId
   * @param {string} userId
   * @param {"admin" | "member"} role
   * @returns {Promise<import("./protocol.js").MembershipChanged>}
   */
  setRole(conversationId, userId, role) {
    return this.request("conversation:set-role", { conversationId, userId, role });
  }

  /**
   * @param {string} conversationId
   * @param {string} title
   * @returns {Promise<import("./protocol.js").MembershipChanged>}
   */
  setTitle(conversationId, title) {
    return this.request("conversation:set-title", { conversationId, title });
  }

  /**
   * @param {string} userId
   * @returns {Promise<import("./protocol.js").BlockChanged>}
   */
  block(userId) {
    return this.request("user:block", { userId });
  }

  /**
   * @param {string} userId
   * @returns {Promise<import("./protocol.js").BlockChanged>}
   */
  unblock(userId) {
    return this.request("user:unblock", { userId });
  }

  /** @returns {Promise<string[]>} whom you blocked */
  async blocks() {
    return (await this.request("user:blocks", {})).userIds;
  }

  /**
   * False: nobody new may start a conversation with you.
   * @param {boolean} accept
   * @returns {Promise<import("./protocol.js").PreferencesView>}
   */
  setAcceptRequests(accept) {
    return this.request("preferences:set", { acceptRequests: accept });
  }

  // ------------------------------------------------------------------ typing

  /**
   * Call on every keystroke: sends `typing:start` at most every `typingIntervalMs` (the
   * server refuses more), and `typing:stop` after `typingIdleMs` without keystrokes. A start
   * that the interval holds back (typing again right after a stop or a send) goes out as
   * soon as the interval allows, if the user is still typing.
   * @param {string} conversationId
   */
  typing(conversationId) {
    const now = this._now();
    let state = this._typing.get(conversationId);
    if (!state) {
      state = { lastStart: -Infinity, idle: null, held: null, active: false };
      this._typing.set(conversationId, state);
    }
    const typingState = state;
    const start = () => {
      typingState.held = null;
      typingState.lastStart = this._now();
      typingState.active = true;
      this.request("typing:start", { conversationId }).catch(ignoreRateLimit);
    };
    const wait = this.options.typingIntervalMs - (now - state.lastStart);
    if (wait <= 0) start();
    else if (!state.active && state.held === null) state.held = this._setTimeout(start, wait);
    this._clearTimeout(state.idle);
    state.idle = this._setTimeout(() => this.stopTyping(conversationId), this.options.typingIdleMs);
  }

  /** @param {string} conversationId */
  stopTyping(conversationId) {
    const state = this._typing.get(conversationId);
    if (!state) return;
    this._clearTimeout(state.idle);
    this._clearTimeout(state.held);
    state.idle = state.held = null;
    // lastStart is kept: the server's interval counts from the last start, stop or not.
    if (!state.active) return;
    state.active = false;
    if (this.state === State.OPEN) this.request("typing:stop", { conversationId }).catch(ignoreRateLimit);
  }

  /**
   * Enters the 6-digit code a new e-mail address was sent (double opt-in): until then no
   * notification mail goes there (`emailVerified: false` in the preferences).
   * @param {string} code
   */
  verifyEmail(code) {
    return this.request("preferences:verify-email", { code });
  }

  // ------------------------------------------------------------------ calls & uploads

  /**
   * STUN/TURN servers for `new RTCPeerConnection`. TURN credentials (short-lived) come only
   * for a call: `{callId}` of a ringing or active call you are in, or `{calleeId}` of the
   * call you are about to place; with neither, STUN only.
   * @param {{callId?: string, calleeId?: string}} [purpose]
   * @returns {Promise<import("./protocol.js").IceServer[]>}
   */
  async iceServers(purpose = {}) {
    return (await this.request("call:ice-servers", purpose)).iceServers;
  }
}

/** @param {any} error */
function ignoreRateLimit(error) {
  if (!(error instanceof SwitchboardError) || !["rate_limited", "disconnected", "closed", "timeout"].includes(error.code)) {
    throw error;
  }
}

/** The claims of a JWT (not verified: the server does that). @param {string} token */
function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(globalThis.atob(payload));
  } catch {
    return undefined;
  }
}

/** The `sub` of a JWT. @param {string} token */
export function userIdOf(token) {
  return claimsOf(token)?.sub;
}

// ====================================================================== calls

/**
 * A screen or window shared into a call: its video track goes to each of the call's peer
 * connections as a stream of its own, so the peer gets it as a new track (`ontrack` with
 * that stream) once the renegotiation that `negotiationneeded` starts is done; taking it
 * off ends that track on the peer's side (`removetrack`).
 */
export class ScreenShare {
  /** @param {MediaStream} stream */
  constructor(stream) {
    this.stream = stream;
    this.track = stream.getVideoTracks()[0];
    /** @type {Map<RTCPeerConnection, RTCRtpSender>} */
    this._senders = new Map();
  }

  /**
   * The screen or window the user picks (`getDisplayMedia`), or `stream` as given.
   * @param {MediaStream} [stream]
   */
  static async capture(stream) {
    const screen = stream ?? (await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false }));
    if (!screen.getVideoTracks().length) throw new SwitchboardError("bad_request", "nothing to share: the stream has no video track");
    return new ScreenShare(screen);
  }

  /**
   * Sends the screen on `pc`. A negotiated video transceiver that sends nothing (one an
   * earlier share left, or the one bringing the peer's screen) is used again: Chromium
   * adds an m-section (~5 KB of SDP) per `addTrack` and never recycles one `removeTrack`
   * left, so a fourth share would push the offer past the server's `MAX_SDP_CHARS` and be
   * refused. The SDP changes (stream, direction) happen before this returns.
   * @param {RTCPeerConnection} pc
   */
  async addTo(pc) {
    if (this._senders.has(pc) || pc.signalingState === "closed") return;
    const idle = pc
      .getTransceivers()
      .find((t) => t.receiver.track.kind === "video" && !t.sender.track && t.mid !== null && t.direction !== "stopped");
    if (!idle) {
      this._senders.set(pc, pc.addTrack(this.track, this.stream));
      return;
    }
    this._senders.set(pc, idle.sender);
    idle.sender.setStreams?.(this.stream); // the peer sees a new stream (else the last share's id)
    idle.direction = idle.direction.includes("recv") ? "sendrecv" : "sendonly";
    await idle.sender.replaceTrack(this.track);
  }

  /** Takes the screen off `pc` (a renegotiation follows by itself). @param {RTCPeerConnection} pc */
  removeFrom(pc) {
    const sender = this._senders.get(pc);
    this._senders.delete(pc);
    if (sender && pc.signalingState !== "closed") pc.removeTrack(sender);
  }

  /** Off every connection; the capture ends (the browser's sharing indicator goes away). */
  stop() {
    for (const pc of [...this._senders.keys()]) this.removeFrom(pc);
    for (const track of this.stream.getTracks()) track.stop();
  }
}

/**
 * What one peer sends on one connection, told apart: its first stream is its camera and
 * microphone, any other a screen it shares (`ScreenShare`); a track without a stream joins
 * the first. `onEnded` is told when a stream lost its last track (sharing stopped).
 */
export class RemoteStreams {
  /** @param {(ended: {stream: MediaStream, screen: boolean}) => void} onEnded */
  constructor(onEnded) {
    /** @type {MediaStream | null} */
    this.camera = null;
    /** @type {Map<string, {stream: MediaStream, screen: boolean}>} the streams with tracks now, by id */
    this.streams = new Map();
    this._onEnded = onEnded;
    /** @type {WeakSet<MediaStream>} */
    this._watched = new WeakSet();
  }

  /**
   * From `ontrack`: which stream the track belongs to, and whether it is a screen.
   * @param {MediaStreamTrack} track @param {readonly MediaStream[]} streams
   */
  add(track, streams) {
    let stream = streams[0];
    if (!stream) {
      stream = this.camera ?? new MediaStream();
      stream.addTrack(track);
    }
    this.camera ??= stream;
    const entry = { stream, screen: stream !== this.camera };
    this.streams.set(stream.id, entry);
    if (!this._watched.has(stream)) {
      this._watched.add(stream);
      stream.addEventListener("removetrack", () => {
        if (stream.getTracks().length || !this.streams.delete(stream.id)) return;
        this._onEnded(entry);
      });
    }
    return entry;
  }
}

/**
 * What a 1:1 `CallSession` and a group call (`GroupCall`, web/calls.js) share: events,
 * everyone's microphone / camera / screen state (`call:media`, `mediaState` by user, self
 * included) and screen sharing. A subclass says which peer connections it has.
 */
export class MediaCall {
  /**
   * @param {SwitchboardClient} client
   * @param {{callId?: string, media?: "audio" | "video", localStream?: MediaStream}} options
   */
  constructor(client, options) {
    this.client = client;
    this.callId = options.callId ?? "";
    this.media = options.media ?? "video";
    /** @type {MediaStream | null} */
    this.localStream = options.localStream ?? null;
    this.state = "new";
    /** @type {ScreenShare | null} the screen this side shares now */
    this.screen = null;
    /** @type {Map<string, {audio: boolean, video: boolean, screen: boolean}>} */
    this.mediaState = new Map();
    /** @type {Map<string, Set<(data: any) => void>>} */
    this._handlers = new Map();
    /** @type {Array<() => void>} */
    this._unsubscribe = [];
  }

  /** The stream this side shares now, if any. */
  get screenStream() {
    return this.screen?.stream ?? null;
  }

  /** @param {string} type @param {(data: any) => void} handler */
  on(type, handler) {
    let set = this._handlers.get(type);
    if (!set) this._handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  /** @param {string} type @param {any} data */
  _emit(type, data) {
    for (const handler of this._handlers.get(type) ?? []) handler(data);
  }

  /** @param {string} state */
  _setState(state) {
    this.state = state;
    this._emit("state", { state });
  }

  /** @param {unknown} error */
  _report(error) {
    if (this.state !== "ended") this.client._emit(ClientEvent.ERROR, error);
  }

  /** The peer connections a screen goes to. @returns {RTCPeerConnection[]} */
  _connections() {
    return [];
  }

  /** Someone joined, answered or is us: what they send at first. @param {string} userId */
  _mediaJoined(userId) {
    this.mediaState.set(userId, { audio: true, video: this.media === "video", screen: false });
  }

  /** A `call:media` push. @param {{userId: string, audio: boolean, video: boolean, screen: boolean}} d */
  _onMedia(d) {
    const state = { audio: d.audio, video: d.video, screen: d.screen };
    this.mediaState.set(d.userId, state);
    this._emit("media", { userId: d.userId, ...state });
  }

  /**
   * Microphone / camera on or off: the local track is enabled or disabled (the peer
   * connections stay as they are) and the others are told (`call:media`).
   * @param {{audio?: boolean, video?: boolean}} change
   */
  async setMedia(change) {
    for (const track of this.localStream?.getTracks() ?? []) {
      const wanted = /** @type {Record<string, boolean | undefined>} */ (change)[track.kind];
      if (wanted !== undefined) track.enabled = wanted;
    }
    return this._sendMedia(change);
  }

  /** @param {{audio?: boolean, video?: boolean, screen?: boolean}} change */
  async _sendMedia(change) {
    const reply = await this.client.request("call:media", { callId: this.callId, ...change });
    this.mediaState.set(this.client.userId, reply.media);
    this._emit("media", { userId: this.client.userId, ...reply.media });
    return reply.media;
  }

  /**
   * Shares a screen or window (`getDisplayMedia`): a video track of its own to every peer,
   * renegotiated; the others see it as a new stream (their screen tile) and are told
   * (`call:media` with `screen: true`). Ends by itself when the browser's "Stop sharing"
   * is pressed.
   * @param {MediaStream} [stream] a stream to share instead of asking for a screen
   */
  async shareScreen(stream) {
    if (this.screen) return this.screen.stream;
    const share = await ScreenShare.capture(stream);
    if (this.state === "ended") {
      share.stop();
      throw new SwitchboardError("conflict", "the call is over");
    }
    this.screen = share;
    share.track.addEventListener("ended", () => this.stopScreen().catch((e) => this._report(e)));
    await Promise.all(this._connections().map((pc) => share.addTo(pc)));
    await this._sendMedia({ screen: true });
    return share.stream;
  }

  /** Stops sharing: the screen track leaves every peer connection (the camera stays). */
  async stopScreen() {
    const share = this.screen;
    if (!share) return;
    this.screen = null;
    share.stop();
    if (this.state !== "ended") await this._sendMedia({ screen: false });
  }

  /** The camera, microphone and any shared screen stop (the call is over). */
  _stopMedia() {
    this.screen?.stop();
    this.screen = null;
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
  }
}

/**
 * One WebRTC call over Switchboard's `call:*` signaling, with the "perfect negotiation"
 * pattern (MDN): the callee is the polite peer, so an offer collision during a
 * renegotiation (both sides changing tracks at once) resolves without glare.
 *
 * Events (`call.on(type, fn)`): `state` ({state}), `track` ({track, stream, screen}: the
 * peer's camera stream, or with `screen` the screen it shares), `trackended` ({stream,
 * screen}: it stopped sharing), `media` ({userId, audio, video, screen}: the peer's
 * `call:media`), `connectionstate` ({state}), `datachannel` ({channel}), `error` (a
 * `call:error` push), `ended` ({reason}). `shareScreen()` / `stopScreen()` share a screen;
 * `setMedia()` mutes. Group calls and recording: `GroupCall` in web/calls.js.
 */
export class CallSession extends MediaCall {
  /**
   * @param {SwitchboardClient} client
   * @param {{peerId: string, media?: "audio" | "video", polite: boolean, callId?: string,
   *   iceTransportPolicy?: RTCIceTransportPolicy, localStream?: MediaStream}} options
   */
  constructor(client, options) {
    super(client, options);
    this.peerId = options.peerId;
    this.polite = options.polite;
    this.iceTransportPolicy = options.iceTransportPolicy ?? "all";
    this.remote = new RemoteStreams((ended) => this._emit("trackended", ended));
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {RTCDataChannel | null} */
    this.dataChannel = null;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.signalingReady = false; // our connection is the in-call one: ICE may be sent
    /** @type {RTCIceCandidateInit[]} */
    this._outbox = [];
    /** @type {Promise<any>} the last offer/answer sent (candidates follow it) */
    this._outgoing = Promise.resolve();
    /** @type {Promise<any>} signaling pushes, handled in order */
    this._inbox = Promise.resolve();
    /** Candidates the server refused because the call had ended meanwhile. */
    this.refusedCandidates = 0;
  }

  /** The peer's camera and microphone. */
  get remoteStream() {
    return this.remote.camera;
  }

  _connections() {
    return this.pc ? [this.pc] : [];
  }

  /**
   * Calls `peerId`: local media, the offer, `call:initiate`. Resolves once ringing.
   * @param {SwitchboardClient} client
   * @param {string} peerId
   * @param {{media?: "audio" | "video", conversationId?: string, iceTransportPolicy?: RTCIceTransportPolicy, localStream?: MediaStream}} [options]
   */
  static async start(client, peerId, options = {}) {
    const call = new CallSession(client, { peerId, polite: false, ...options });
    await call._setup();
    call.dataChannel = call.pc.createDataChannel("switchboard");
    call._emit("datachannel", { channel: call.dataChannel });
    await call.pc.setLocalDescription();
    /** @type {Record<string, any>} */
    const data = { calleeId: peerId, media: call.media, offer: descriptionJSON(call.pc.localDescription) };
    if (options.conversationId) data.conversationId = options.conversationId;
    try {
      const reply = await client.request("call:initiate", data);
      call.callId = reply.callId;
    } catch (error) {
      call._close("failed");
      throw error;
    }
    call.signalingReady = true; // the caller's connection is in the call from the start
    call._flushCandidates();
    call._setState("ringing");
    return call;
  }

  /**
   * Answers a `call:incoming` push.
   * @param {SwitchboardClient} client
   * @param {{callId: string, callerId: string, media: "audio" | "video", offer: RTCSessionDescriptionInit}} incoming
   * @param {{iceTransportPolicy?: RTCIceTransportPolicy, localStream?: MediaStream}} [options]
   */
  static async answer(client, incoming, options = {}) {
    const call = new CallSession(client, {
      peerId: incoming.callerId,
      media: incoming.media,
      polite: true,
      callId: incoming.callId,
      ...options,
    });
    await call._setup();
    await call.pc.setRemoteDescription(incoming.offer);
    await call.pc.setLocalDescription();
    try {
      await client.request("call:answer", { callId: call.callId, answer: descriptionJSON(call.pc.localDescription) });
    } catch (error) {
      call._close("failed");
      throw error;
    }
    call.signalingReady = true;
    call._flushCandidates();
    call._setState("active");
    return call;
  }

  /** Declines a `call:incoming`. @param {SwitchboardClient} client @param {string} callId */
  static reject(client, callId, reason = "declined") {
    return client.request("call:reject", { callId, reason });
  }

  async _setup() {
    const iceServers = await this.client.iceServers(this.callId ? { callId: this.callId } : { calleeId: this.peerId });
    this.pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: this.iceTransportPolicy });
    const pc = this.pc;
    if (!this.localStream) {
      this.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: this.media === "video" });
    }
    for (const track of this.localStream.getTracks()) pc.addTrack(track, this.localStream);
    this._mediaJoined(this.client.userId);
    this._mediaJoined(this.peerId);
    // The peer's first stream is its camera; a screen it shares later comes as another.
    pc.ontrack = ({ track, streams }) => this._emit("track", { track, ...this.remote.add(track, streams) });
    pc.ondatachannel = ({ channel }) => {
      this.dataChannel = channel;
      this._emit("datachannel", { channel });
    };
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) this._sendCandidate(candidate.toJSON());
    };
    pc.onconnectionstatechange = () => this._emit("connectionstate", { state: pc.connectionState });
    pc.oniceconnectionstatechange = () => this._emit("iceconnectionstate", { state: pc.iceConnectionState });
    // Perfect negotiation: later changes (a track added, ICE restart) renegotiate by
    // themselves; the initial offer/answer went through call:initiate / call:answer.
    pc.onnegotiationneeded = async () => {
      if (this.state !== "active") return;
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        await this._signal("call:offer", { offer: descriptionJSON(pc.localDescription) });
      } catch (error) {
        this.client._emit(ClientEvent.ERROR, error);
      } finally {
        this.makingOffer = false;
      }
    };
    // Signaling pushes are handled one at a time, in arrival order: a description's
    // handling awaits, and a candidate must not overtake the description it belongs to.
    const on = (/** @type {string} */ type, /** @type {(d: any) => any} */ fn) =>
      this._unsubscribe.push(
        this.client.on(type, (data) => {
          if (data?.callId !== this.callId || !this.callId) return;
          this._inbox = this._inbox
            .then(() => fn(data))
            .catch((error) => this._report(error));
        }),
      );
    on("call:answered", (d) => this._onDescription(d.answer));
    on("call:offer", (d) => this._onDescription(d.offer));
    on("call:ice-candidate", (d) => this._onCandidate(d.candidate));
    on("call:ended", (d) => this._close(d.reason ?? "ended"));
    on("call:rejected", (d) => this._close(d.reason ?? "rejected"));
    on("call:answered-elsewhere", () => this._close("answered_elsewhere"));
    on("call:media", (d) => this._onMedia(d));
    // A failure no reply could report (the peer's connection gone: call:ended follows).
    on("call:error", (d) => this._emit("error", d));
  }

  /** @param {RTCSessionDescriptionInit} description */
  async _onDescription(description) {
    const pc = this.pc;
    if (!pc) return;
    if (description.type === "answer" && this.state === "ringing") this._setState("active");
    if (description.type === "answer" && pc.signalingState !== "have-local-offer") {
      // The answer to an offer we rolled back (polite side of a collision): stale. The
      // signaling path (parallel Lambda invocations) does not keep one sender's frames in
      // order, so the peer may have answered it before it saw our answer to its own offer.
      return;
    }
    const collision = description.type === "offer" && (this.makingOffer || pc.signalingState !== "stable");
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    await pc.setRemoteDescription(description); // rolls back our offer when polite
    if (description.type === "offer") {
      await pc.setLocalDescription();
      await this._signal("call:answer", { answer: descriptionJSON(pc.localDescription) });
    }
  }

  /**
   * Sends an offer or answer after the previous one was delivered (its reply means the
   * push went out), so the peer gets this side's descriptions in order.
   * @param {string} action
   * @param {Record<string, any>} data
   */
  _signal(action, data) {
    const sent = this._outgoing.then(() =>
      this.client.request(action, { callId: this.callId, ...data, toUserId: this.peerId }),
    );
    this._outgoing = sent.catch(() => undefined);
    return sent;
  }

  /** @param {RTCIceCandidateInit} candidate */
  async _onCandidate(candidate) {
    try {
      await this.pc?.addIceCandidate(candidate.candidate === "" ? null : candidate);
    } catch (error) {
      if (!this.ignoreOffer) throw error;
    }
  }

  /** @param {RTCIceCandidateInit} candidate */
  _sendCandidate(candidate) {
    if (!this.signalingReady) {
      this._outbox.push(candidate);
      return;
    }
    // After the description it belongs to (in flight now, if any); candidates go in parallel.
    this._outgoing
      .then(() =>
        this.client.request("call:ice-candidate", {
          callId: this.callId,
          candidate: candidateJSON(candidate),
          toUserId: this.peerId,
        }),
      )
      .catch((error) => {
        // Refused because the call ended or moved on (its own push says so): nothing lost.
        if (error instanceof SwitchboardError && ["forbidden", "conflict", "not_found"].includes(error.code)) {
          this.refusedCandidates += 1;
        } else if (this.state !== "ended") this.client._emit(ClientEvent.ERROR, error);
      });
  }

  _flushCandidates() {
    const queued = this._outbox.splice(0);
    for (const candidate of queued) this._sendCandidate(candidate);
  }

  /** Hangs up (cancels while ringing). */
  async hangup() {
    if (this.state === "ended") return;
    const callId = this.callId;
    this._close("hangup");
    if (callId) await this.client.request("call:end", { callId }).catch(() => undefined);
  }

  /** @param {string} reason */
  _close(reason) {
    if (this.state === "ended") return;
    for (const off of this._unsubscribe.splice(0)) off();
    this.pc?.close();
    this._stopMedia();
    this._setState("ended");
    this._emit("ended", { reason });
  }

  /** `getStats()` summed up: inbound video frames decoded, the selected candidate pair's types. */
  async stats() {
    const report = await this.pc?.getStats();
    let framesDecoded = 0;
    /** @type {Map<string, any>} */
    const byId = new Map();
    let pairId = "";
    report?.forEach((s) => {
      byId.set(s.id, s);
      if (s.type === "inbound-rtp" && s.kind === "video") framesDecoded += s.framesDecoded ?? 0;
      if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
    });
    const pair = byId.get(pairId);
    return {
      framesDecoded,
      localCandidateType: byId.get(pair?.localCandidateId)?.candidateType ?? null,
      remoteCandidateType: byId.get(pair?.remoteCandidateId)?.candidateType ?? null,
    };
  }
}

/** @param {RTCSessionDescription | null} d */
export function descriptionJSON(d) {
  if (!d) throw new SwitchboardError("bad_request", "no local description");
  return { type: d.type, sdp: d.sdp };
}

/** @param {RTCIceCandidateInit} c */
export function candidateJSON(c) {
  /** @type {Record<string, any>} */
  const out = { candidate: c.candidate ?? "" };
  if (c.sdpMid != null) out.sdpMid = c.sdpMid;
  if (c.sdpMLineIndex != null) out.sdpMLineIndex = c.sdpMLineIndex;
  if (c.usernameFragment != null) out.usernameFragment = c.usernameFragment;
  return out;
}

// ====================================================================== uploads

/**
 * @typedef {object} UploadProgress
 * @property {string} uploadId
 * @property {"uploading" | "processing" | "complete"} phase
 * @property {number} sentBytes bytes this browser has sent to S3
 * @property {number} confirmedPercent what the server confirmed (upload:progress)
 * @property {number} size
 */

/**
 * Uploads a File/Blob through presigned URLs (`upload:start` → PUT or multipart parts,
 * `upload:part-done` per part, `upload:complete`), reporting progress; resolves with the
 * `upload:complete` push (`url`, `thumbnailUrl`...), rejects on `upload:error`.
 * @param {SwitchboardClient} client
 * @param {Blob & {name?: string}} file
 * `purpose` "voice" (with `conversationId`) or "recording" (with `callId`): a voice
 * message or call recording; the `upload:complete` push then carries its `durationMs`.
 * @param {{fileName?: string, contentType?: string, purpose?: string, conversationId?: string, callId?: string, onProgress?: (p: UploadProgress) => void, timeoutMs?: number}} [options]
 */
export async function uploadFile(client, file, options = {}) {
  const contentType = options.contentType ?? (file.type || "application/octet-stream");
  const fileName = options.fileName ?? file.name ?? "file";
  /** @type {Record<string, any>} */
  const data = { fileName, contentType, size: file.size };
  if (options.purpose) data.purpose = options.purpose;
  if (options.conversationId) data.conversationId = options.conversationId;
  if (options.callId) data.callId = options.callId;
  const start = await client.request("upload:start", data);
  const uploadId = start.uploadId;
  const progress = { uploadId, phase: /** @type {UploadProgress["phase"]} */ ("uploading"), sentBytes: 0, confirmedPercent: 0, size: file.size };
  const report = () => options.onProgress?.({ ...progress });
  const timeoutMs = options.timeoutMs ?? 120_000;
  // Subscribe before the bytes go: a small PUT can be processed before upload:complete replies.
  const offs = [
    client.on("upload:progress", (d) => {
      if (d.uploadId !== uploadId) return;
      progress.confirmedPercent = Math.max(progress.confirmedPercent, d.percent);
      report();
    }),
    client.on("upload:processing", (d) => {
      if (d.uploadId !== uploadId) return;
      progress.phase = "processing";
      report();
    }),
  ];
  const finished = new Promise((resolve, reject) => {
    offs.push(
      client.on("upload:complete", (d) => {
        if (d.uploadId === uploadId) resolve(d);
      }),
      client.on("upload:error", (d) => {
        if (d.uploadId === uploadId) reject(new SwitchboardError(d.code, d.message, { action: "upload", details: d }));
      }),
    );
    client._setTimeout(() => reject(new SwitchboardError("timeout", `upload ${uploadId} not processed in ${timeoutMs} ms`)), timeoutMs);
  });
  finished.catch(() => undefined); // observed below; avoid an unhandled rejection meanwhile
  try {
    if (start.method === "put") {
      await putBytes(start.url, file, start.headers ?? {}, (sent) => {
        progress.sentBytes = sent;
        report();
      });
      await client.request("upload:complete", { uploadId });
    } else {
      const sentPerPart = new Map();
      /** @type {Array<{partNumber: number, etag: string}>} */
      const parts = [];
      // Two parts in flight: parallel enough for a browser, gentle on the link.
      const queue = [...start.parts];
      const worker = async () => {
        for (let part = queue.shift(); part; part = queue.shift()) {
          const begin = (part.partNumber - 1) * start.partSize;
          const blob = file.slice(begin, Math.min(begin + start.partSize, file.size));
          const etag = await putBytes(part.url, blob, {}, (sent) => {
            sentPerPart.set(part.partNumber, sent);
            progress.sentBytes = [...sentPerPart.values()].reduce((a, b) => a + b, 0);
            report();
          });
          await client.request("upload:part-done", { uploadId, partNumber: part.partNumber, etag });
          parts.push({ partNumber: part.partNumber, etag });
        }
      };
      await Promise.all([worker(), worker()]);
      parts.sort((a, b) => a.partNumber - b.partNumber);
      await client.request("upload:complete", { uploadId, parts });
    }
    const result = await finished;
    progress.phase = "complete";
    progress.confirmedPercent = 100;
    report();
    return result;
  } catch (error) {
    if (!(error instanceof SwitchboardError && error.action === "upload")) {
      client.request("upload:abort", { uploadId }).catch(() => undefined);
    }
    throw error;
  } finally {
    for (const off of offs) off();
  }
}

/**
 * PUT a blob with XMLHttpRequest (fetch has no upload progress); resolves with the ETag.
 * @param {string} url
 * @param {Blob} body
 * @param {Record<string, string>} headers
 * @param {(sentBytes: number) => void} onProgress
 * @returns {Promise<string>}
 */
function putBytes(url, body, headers, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(body.size);
        resolve(xhr.getResponseHeader("ETag") ?? "");
      } else reject(new SwitchboardError("upload_failed", `S3 answered ${xhr.status}`, { details: xhr.responseText }));
    };
    xhr.onerror = () => reject(new SwitchboardError("upload_failed", "network error while uploading"));
    xhr.send(body);
  });
}

/**
 * A snippet cut into plain and highlighted parts (render each as text, never as HTML).
 * The server counts offsets in code points; JavaScript strings index UTF-16 units, so the
 * snippet is split into code points first (an emoji before a match would shift it).
 * @param {string} snippet
 * @param {Array<[number, number]>} highlights
 * @returns {Array<{text: string, hit: boolean}>}
 */
export function highlightParts(snippet, highlights) {
  const points = Array.from(snippet);
  /** @type {Array<{text: string, hit: boolean}>} */
  const parts = [];
  let at = 0;
  for (const [start, end] of [...highlights].sort((a, b) => a[0] - b[0])) {
    if (start < at || end > points.length || start >= end) continue;
    if (start > at) parts.push({ text: points.slice(at, start).join(""), hit: false });
    parts.push({ text: points.slice(start, end).join(""), hit: true });
    at = end;
  }
  if (at < points.length) parts.push({ text: points.slice(at).join(""), hit: false });
  return parts;
}
