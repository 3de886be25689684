// @ts-check
// The demo app: every Switchboard feature on one page, built on web/switchboard.js.
// `?user=alice` signs in directly; `?ice=relay` forces calls through TURN.
import { initMessageOps } from "./app-messages.js";
import { CallSession, ClientEvent, highlightParts, SwitchboardClient, SwitchboardError, uploadFile } from "./switchboard.js";
import { contactsOf, hiddenSender, loadMembership, onSystemEntry, renderMembers, setupMembership, systemText } from "./app-membership.js";
import { attachCallScreen, initCalls, renderCallButtons, renderMediaAttachment } from "./app-calls.js";

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const params = new URLSearchParams(location.search);
const TYPING_SHOWN_MS = 6000;

/**
 * @typedef {object} Conversation
 * @property {string} conversationId
 * @property {string | null} title
 * @property {string[]} members
 * @property {number} lastSeq
 * @property {number} readSeq
 * @property {number} unread
 * @property {any} lastMessage
 * @property {number} lastActivityAt
 */

const app = {
  /** @type {SwitchboardClient | null} */
  client: null,
  userId: "",
  admin: false,
  /** @type {Map<string, Conversation>} */
  conversations: new Map(),
  /** @type {Map<string, Map<number, any>>} conversationId -> seq -> message */
  messages: new Map(),
  /** @type {Map<string, {delivered: number, read: number}>} what the others got / read */
  receipts: new Map(),
  /** @type {Map<string, boolean>} */
  presence: new Map(),
  /** @type {Map<string, Map<string, number>>} conversationId -> userId -> timer */
  typing: new Map(),
  /** @type {Map<string, boolean>} conversations whose oldest message is loaded */
  historyDone: new Map(),
  active: "",
  /** @type {CallSession | null} */
  call: null,
  /** @type {any} */
  incoming: null,
  /** @type {any} the last upload:complete result, for tests and the composer */
  lastUpload: null,
};
// @ts-ignore -- for the browser tests and the curious developer
window.switchboardApp = app;
// Edit, delete, reactions, threads, quotes, mute (web/app-messages.js).
const ops = initMessageOps({ app, $, store, renderMessage, renderConversationList, showError });

// ---------------------------------------------------------------------------- sign in

async function showSignIn() {
  $("sign-in").hidden = false;
  $("workspace").hidden = true;
  const list = $("user-list");
  list.replaceChildren();
  try {
    const { users } = await (await fetch("/__devserver/users")).json();
    for (const { userId, admin } of users) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = admin ? `${userId} (admin)` : userId;
      button.addEventListener("click", () => {
        history.replaceState(null, "", `?user=${encodeURIComponent(userId)}${params.has("ice") ? `&ice=${params.get("ice")}` : ""}`);
        signIn(userId);
      });
      li.append(button);
      list.append(li);
    }
    /** @type {HTMLButtonElement | null} */ (list.querySelector("button"))?.focus();
  } catch {
    $("sign-in-error").textContent = "The devserver's sign-in endpoint did not answer: is `make dev` running?";
  }
}

/** @param {string} userId */
async function fetchToken(userId) {
  const response = await fetch(`/__devserver/token?user=${encodeURIComponent(userId)}`, { cache: "no-store" });
  if (!response.ok) throw new Error((await response.json()).message);
  return response.json();
}

/** @param {string} userId */
async function signIn(userId) {
  let first;
  try {
    first = await fetchToken(userId);
  } catch (error) {
    $("sign-in-error").textContent = `Could not sign in: ${error}`;
    return;
  }
  app.userId = first.userId;
  app.admin = first.admin;
  let cached = first.token;
  const client = new SwitchboardClient({
    url: first.ws,
    // The first connection uses the token we have; reconnects ask for a fresh one.
    token: async () => {
      const token = cached ?? (await fetchToken(userId)).token;
      cached = null;
      return token;
    },
  });
  app.client = client;
  $("sign-in").hidden = true;
  $("workspace").hidden = false;
  $("whoami").hidden = false;
  $("whoami").textContent = `Signed in as ${app.userId}`;
  $("admin-link").hidden = !app.admin;
  $("sign-out").hidden = false;
  document.title = `${app.userId} · Switchboard demo`;
  wire(client);
  setupMembership({
    app,
    reload: loadConversations,
    rerender: () => {
      renderConversationList();
      renderChatHead();
      if (app.active) reopenMessages();
      else $("messages").replaceChildren();
    },
    open: openConversation,
    showError,
    receipt: onReceipt,
  });
  initCalls(app, { showError, toast, iceOptions });
  await client.connect();
  await loadMembership();
  await loadConversations();
}

/** Re-renders the open conversation's messages (after a block changes what is hidden). */
function reopenMessages() {
  $("messages").replaceChildren();
  for (const message of sortedMessages(app.active)) renderMessage(message);
}

// ---------------------------------------------------------------------------- client events

/** @param {SwitchboardClient} client */
function wire(client) {
  client.on(ClientEvent.STATE, ({ state }) => {
    const el = $("connection");
    el.dataset.state = state;
    el.textContent = { open: "online", connecting: "connecting…", reconnecting: "reconnecting…", closed: "offline", idle: "offline" }[state] ?? state;
  });
  client.on(ClientEvent.OPEN, ({ reconnected }) => {
    if (reconnected) loadConversations().then(markRead).catch(showError);
  });
  client.on(ClientEvent.MESSAGE, (message) => onMessage(message));
  ops.wire(client);
  client.on("message:delivered", (d) => onReceipt(d, "delivered"));
  client.on("message:read", (d) => onReceipt(d, "read"));
  client.on("typing", onTyping);
  client.on("presence", ({ userId, online }) => {
    app.presence.set(userId, online);
    renderConversationList();
    renderChatHead();
  });
  client.on("call:incoming", onIncomingCall);
  client.on("call:answered-elsewhere", ({ callId }) => {
    if (app.incoming?.callId === callId) hideIncoming();
  });
  client.on("call:ended", ({ callId }) => {
    if (app.incoming?.callId === callId) hideIncoming();
  });
  client.on(ClientEvent.ERROR, (error) => console.warn("switchboard:", error));
  client.on(ClientEvent.AUTH_FAILED, ({ error }) => showError(error));
}

/** @type {Promise<void> | null} */
let loading = null;
let loadAgain = false;

/** Loads the conversation list (one load at a time; a request during a load runs once after). */
function loadConversations() {
  if (loading) {
    loadAgain = true;
    return loading;
  }
  loading = (async () => {
    try {
      do {
        loadAgain = false;
        await loadConversationsOnce();
      } while (loadAgain);
    } finally {
      loading = null;
    }
  })();
  return loading;
}

async function loadConversationsOnce() {
  const client = /** @type {SwitchboardClient} */ (app.client);
  const list = await client.listConversations(100);
  for (const c of list) app.conversations.set(c.conversationId, c);
  // Presence is for contacts: members who accepted (app-membership.js).
  const others = contactsOf(list, app.userId);
  if (others.size) {
    for (const p of await client.presence([...others].slice(0, 100))) app.presence.set(p.userId, p.online);
  }
  renderConversationList();
  if (app.active) renderChatHead();
}

/** @param {any} message */
function onMessage(message) {
  message = ops.withQuote(message);
  const id = message.conversationId;
  if (onSystemEntry(message)) {
    // This user was removed: the entry is the last thing the conversation sends them.
    store(message);
    app.conversations.delete(id);
    if (app.active === id) renderMessage(message);
    renderConversationList();
    return;
  }
  store(message);
  ops.onMessage(message);
  let conversation = app.conversations.get(id);
  if (!conversation) {
    // Someone started a conversation with us: fetch its details.
    loadConversations().catch(showError);
    return;
  }
  conversation.lastSeq = Math.max(conversation.lastSeq, message.seq);
  conversation.lastMessage = message;
  conversation.lastActivityAt = message.createdAt;
  if (message.senderId !== app.userId) clearTyping(id, message.senderId);
  if (id === app.active) {
    renderMessage(message);
  } else if (message.senderId !== app.userId && message.seq > conversation.readSeq) {
    conversation.unread = Math.max(0, conversation.lastSeq - conversation.readSeq);
  }
  afterMessages(id === app.active);
}

// A `message:batch` frame (the reconnect backlog, up to 32 KB) and a sync page hand their
// messages over one by one, in one go: the list is drawn and the read receipt sent once
// for all of them, when the frame has been handled, not once per message (a 1,000-message
// catch-up in the open conversation sent 1,000 `message:read` requests).
const burst = { scheduled: false, read: false };

/** @param {boolean} read a message of the open conversation arrived */
function afterMessages(read) {
  burst.read ||= read;
  if (burst.scheduled) return;
  burst.scheduled = true;
  queueMicrotask(() => {
    const readNow = burst.read;
    burst.scheduled = false;
    burst.read = false;
    if (readNow) markRead();
    renderConversationList();
  });
}

/** @param {any} message */
function store(message) {
  let byseq = app.messages.get(message.conversationId);
  if (!byseq) app.messages.set(message.conversationId, (byseq = new Map()));
  byseq.set(message.seq, message);
}

/** @param {{conversationId: string, seq: number, userId: string}} d @param {"delivered" | "read"} kind */
function onReceipt(d, kind) {
  if (d.userId === app.userId) return;
  let r = app.receipts.get(d.conversationId);
  if (!r) app.receipts.set(d.conversationId, (r = { delivered: 0, read: 0 }));
  r.delivered = Math.max(r.delivered, d.seq);
  if (kind === "read") r.read = Math.max(r.read, d.seq);
  if (d.conversationId === app.active) renderTicks();
}

/** @param {{conversationId: string, userId: string, state: string}} d */
function onTyping(d) {
  if (d.state === "stop") clearTyping(d.conversationId, d.userId);
  else {
    let users = app.typing.get(d.conversationId);
    if (!users) app.typing.set(d.conversationId, (users = new Map()));
    clearTimeout(users.get(d.userId));
    users.set(d.userId, window.setTimeout(() => clearTyping(d.conversationId, d.userId), TYPING_SHOWN_MS));
  }
  renderTyping();
}

/** @param {string} conversationId @param {string} userId */
function clearTyping(conversationId, userId) {
  const users = app.typing.get(conversationId);
  if (!users?.has(userId)) return;
  clearTimeout(users.get(userId));
  users.delete(userId);
  renderTyping();
}

// ---------------------------------------------------------------------------- rendering

/** @param {Conversation} c */
function titleOf(c) {
  if (c.title) return c.title;
  const others = c.members.filter((m) => m !== app.userId);
  return others.length ? others.join(", ") : "Just you";
}

/** @param {Conversation} c */
function peerOf(c) {
  const others = c.members.filter((m) => m !== app.userId);
  return others.length === 1 ? others[0] : null;
}

function renderConversationList() {
  const list = $("conversation-list");
  // Requests are listed in their own section (app-membership.js) until accepted.
  const sorted = [...app.conversations.values()].filter((c) => !c.request).sort((a, b) => (b.lastActivityAt ?? 0) - (a.lastActivityAt ?? 0));
  $("no-conversations").hidden = sorted.length > 0;
  list.replaceChildren(
    ...sorted.map((c) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "conversation";
      button.dataset.conversationId = c.conversationId;
      if (c.conversationId === app.active) button.setAttribute("aria-current", "true");
      const others = c.members.filter((m) => m !== app.userId);
      const online = others.some((m) => app.presence.get(m));
      const dot = document.createElement("span");
      dot.className = `presence-dot ${online ? "online" : "offline"}`;
      dot.setAttribute("role", "img");
      dot.setAttribute("aria-label", online ? "online" : "offline");
      const text = document.createElement("span");
      text.className = "conversation-text";
      const name = document.createElement("span");
      name.className = "conversation-title";
      name.textContent = titleOf(c);
      const preview = document.createElement("span");
      preview.className = "conversation-preview";
      const last = c.lastMessage;
      const said = last?.deleted || last?.deletedAt ? "message deleted" : last?.body || "(attachment)";
      preview.textContent = last ? `${last.senderId === app.userId ? "You" : last.senderId}: ${said}` : "No messages yet";
      text.append(name, preview);
      button.append(dot, text);
      ops.decorateConversation(button, c);
      const unread = c.conversationId === app.active ? 0 : c.unread;
      if (unread > 0) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = String(unread);
        badge.setAttribute("aria-label", `${unread} unread`);
        button.append(badge);
      }
      button.addEventListener("click", () => openConversation(c.conversationId));
      li.append(button);
      return li;
    }),
  );
}

/**
 * @param {string} conversationId
 * @param {number} [focusSeq] a search hit: load the page around it, scroll to it, mark it
 */
async function openConversation(conversationId, focusSeq) {
  const client = /** @type {SwitchboardClient} */ (app.client);
  if (app.active !== conversationId) ops.onOpen();
  app.active = conversationId;
  if (focusSeq !== undefined && !app.messages.get(conversationId)?.has(focusSeq)) {
    const page = await client.historyAround(conversationId, focusSeq, 30);
    for (const message of page.messages) store({ ...message, conversationId });
    if (page.messages[0]?.seq === 1) app.historyDone.set(conversationId, true);
  }
  document.body.classList.add("chat-open");
  $("messages").replaceChildren();
  for (const id of ["composer-input", "send", "attach"]) /** @type {HTMLInputElement} */ ($(id)).disabled = false;
  renderChatHead();
  renderTyping();
  const conversation = app.conversations.get(conversationId);
  if (conversation) conversation.unread = 0;
  renderConversationList();
  if (!app.historyDone.has(conversationId) && (app.messages.get(conversationId)?.size ?? 0) < 30) {
    await loadOlder(true);
  }
  for (const message of sortedMessages(conversationId)) renderMessage(message);
  $("messages-wrap").scrollTop = $("messages-wrap").scrollHeight;
  const found = focusSeq === undefined ? null : $("messages").querySelector(`[data-seq="${focusSeq}"]`);
  if (found) {
    for (const el of $("messages").querySelectorAll(".found")) el.classList.remove("found");
    found.classList.add("found");
    found.scrollIntoView({ block: "center" });
  }
  markRead();
  /** @type {HTMLElement} */ ($("composer-input")).focus();
  void client;
}

/** @param {string} conversationId */
function sortedMessages(conversationId) {
  return [...(app.messages.get(conversationId)?.values() ?? [])].sort((a, b) => a.seq - b.seq);
}

/** @type {Map<string, Promise<void>>} the history page being fetched, per conversation */
const olderPages = new Map();

/**
 * History scroll-back: the page of messages before the oldest one shown. Scrolling to the
 * top and the "Load earlier messages" button both ask for it; one request at a time.
 */
function loadOlder(initial = false) {
  const id = /** @type {string} */ (app.active);
  let pending = olderPages.get(id);
  if (!pending) {
    pending = fetchOlder(id, initial).finally(() => olderPages.delete(id));
    olderPages.set(id, pending);
  }
  return pending;
}

/** @param {string} id @param {boolean} initial */
async function fetchOlder(id, initial) {
  const client = /** @type {SwitchboardClient} */ (app.client);
  const known = sortedMessages(id);
  const before = known.length ? known[0].seq : undefined;
  if (before === 1) {
    app.historyDone.set(id, true);
    $("load-older").hidden = true;
    return;
  }
  const wrap = $("messages-wrap");
  const fromBottom = wrap.scrollHeight - wrap.scrollTop;
  const page = await client.history(id, before, 30);
  for (const message of page.messages) store({ ...message, conversationId: id });
  if (!page.hasMore) app.historyDone.set(id, true);
  $("load-older").hidden = Boolean(app.historyDone.get(id));
  if (!initial && id === app.active) {
    for (const message of page.messages) renderMessage({ ...message, conversationId: id });
    wrap.scrollTop = wrap.scrollHeight - fromBottom; // keep the reader's place
  }
}

function renderChatHead() {
  const c = app.conversations.get(app.active);
  if (!c) return;
  $("chat-title").textContent = titleOf(c);
  const others = c.members.filter((m) => m !== app.userId);
  $("chat-presence").textContent = others
    .map((m) => `${m} ${app.presence.get(m) ? "online" : "offline"}`)
    .join(" · ");
  const peer = peerOf(c);
  renderMembers();
  /** @type {HTMLButtonElement} */ ($("call-button")).disabled = !peer || Boolean(app.call);
  ops.renderHead(c);
  $("call-button").setAttribute("aria-label", peer ? `Video call ${peer}` : "Calls need a one-to-one conversation");
  $("load-older").hidden = Boolean(app.historyDone.get(app.active));
  renderCallButtons();
}

/** @param {any} message */
function renderMessage(message) {
  if (message.conversationId !== app.active || ops.hidden(message)) return;
  const list = $("messages");
  if (list.querySelector(`[data-seq="${message.seq}"]`)) return;
  const own = message.senderId === app.userId && !message.system;
  const li = document.createElement("li");
  li.className = `message ${own ? "own" : "theirs"}`;
  li.dataset.seq = String(message.seq);
  li.dataset.sender = message.senderId;
  if (message.system?.kind || hiddenSender(message)) {
    // A membership change ("bob left"), or a message of someone this user blocked.
    li.className = `message ${message.system ? "system" : "hidden-message"}`;
    li.textContent = message.system ? systemText(message.system, app.userId) : `Message from ${message.senderId} hidden (blocked)`;
    const next = [...list.children].find((el) => Number(/** @type {HTMLElement} */ (el).dataset.seq) > message.seq);
    list.insertBefore(li, next ?? null);
    return;
  }
  if (message.system) li.classList.add("system"); // e.g. a call's recording started/stopped
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `${own ? "You" : message.senderId} · ${new Date(message.createdAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
  const body = document.createElement("p");
  body.className = "body";
  body.textContent = message.body;
  li.append(meta, body);
  ops.decorate(li, message, body);
  for (const attachment of message.attachments ?? []) {
    const a = document.createElement("p");
    a.className = "attachment";
    a.textContent = `Attachment: ${attachment.fileName ?? attachment.uploadId}`;
    if (attachment.kind === "voice" || attachment.kind === "recording") {
      renderMediaAttachment(a, attachment, message.conversationId);
    } else if (own && app.lastUpload?.uploadId === attachment.uploadId && app.lastUpload.thumbnailUrl) {
      const img = document.createElement("img");
      img.src = app.lastUpload.thumbnailUrl;
      img.alt = `Thumbnail of ${attachment.fileName ?? "the attachment"}`;
      a.append(img);
    } else {
      showSharedAttachment(a, attachment, message.conversationId);
    }
    li.append(a);
  }
  if (own) {
    const ticks = document.createElement("span");
    ticks.className = "ticks";
    li.append(ticks);
  }
  // Keep seq order whatever the arrival order (history pages, backlog, live pushes).
  const after = [...list.children].find((el) => Number(/** @type {HTMLElement} */ (el).dataset.seq) > message.seq);
  list.insertBefore(li, after ?? null);
  renderTicks();
  const wrap = $("messages-wrap");
  if (!after && wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 200) wrap.scrollTop = wrap.scrollHeight;
}

function renderTicks() {
  const r = app.receipts.get(app.active) ?? { delivered: 0, read: 0 };
  for (const li of $("messages").querySelectorAll(".message.own")) {
    const seq = Number(/** @type {HTMLElement} */ (li).dataset.seq);
    const ticks = /** @type {HTMLElement} */ (li.querySelector(".ticks"));
    const state = seq <= r.read ? "read" : seq <= r.delivered ? "delivered" : "sent";
    if (ticks.dataset.state === state) continue;
    ticks.dataset.state = state;
    ticks.textContent = state === "sent" ? "✓" : "✓✓";
    ticks.setAttribute("aria-label", state);
    ticks.title = state;
  }
}

function renderTyping() {
  const users = [...(app.typing.get(app.active)?.keys() ?? [])];
  $("typing").textContent = users.length ? `${users.join(", ")} ${users.length > 1 ? "are" : "is"} typing…` : "";
}

function markRead() {
  const client = app.client;
  const id = app.active;
  if (!client || !id || document.visibilityState === "hidden") return;
  const last = sortedMessages(id).at(-1);
  const conversation = app.conversations.get(id);
  if (!last || !conversation || last.seq <= conversation.readSeq) return;
  const previous = conversation.readSeq;
  conversation.readSeq = last.seq;
  client.markRead(id, last.seq).catch((error) => {
    if (conversation.readSeq === last.seq) conversation.readSeq = previous; // the next one retries
    // A receipt lost to a dropped connection is sent again once it is back (see OPEN).
    if (!(error instanceof SwitchboardError && ["disconnected", "closed", "timeout"].includes(error.code))) showError(error);
  });
}

// ---------------------------------------------------------------------------- composer

async function send(/** @type {SubmitEvent} */ event) {
  event.preventDefault();
  const client = /** @type {SwitchboardClient} */ (app.client);
  const input = /** @type {HTMLTextAreaElement} */ ($("composer-input"));
  const body = input.value.trim();
  const attachment = pendingAttachment;
  if (!body && !attachment) return;
  input.value = "";
  try {
    if (await ops.beforeSend(body)) return; // an edit, saved
    pendingAttachment = null;
    await client.sendMessage(app.active, body, { ...(attachment ? { attachments: [attachment] } : {}), ...ops.sendOptions() });
    if (attachment) $("upload").hidden = true;
  } catch (error) {
    input.value = body;
    showError(error);
  }
}

/** @type {{uploadId: string, fileName: string, contentType: string, size: number} | null} */
let pendingAttachment = null;

async function attach() {
  const client = /** @type {SwitchboardClient} */ (app.client);
  const input = /** @type {HTMLInputElement} */ ($("attach"));
  const file = input.files?.[0];
  input.value = "";
  if (!file) return;
  const progress = /** @type {HTMLProgressElement} */ ($("upload-progress"));
  const status = $("upload-status");
  const thumb = /** @type {HTMLImageElement} */ ($("upload-thumb"));
  $("upload").hidden = false;
  $("upload-name").textContent = file.name;
  thumb.hidden = true;
  progress.value = 0;
  status.textContent = "uploading…";
  try {
    const result = await uploadFile(client, file, {
      onProgress: (p) => {
        // Bytes sent by the browser, then what the server confirmed.
        const percent = Math.floor(Math.max(p.confirmedPercent, (100 * p.sentBytes) / Math.max(p.size, 1)));
        progress.value = percent;
        progress.setAttribute("aria-valuenow", String(percent));
        status.textContent = p.phase === "processing" ? `processing… (${percent} %)` : `${percent} %`;
      },
    });
    app.lastUpload = result;
    progress.value = 100;
    progress.setAttribute("aria-valuenow", "100");
    status.textContent = "100 % · ready to send";
    if (result.thumbnailUrl) {
      thumb.src = result.thumbnailUrl;
      thumb.alt = `Thumbnail of ${file.name}`;
      thumb.hidden = false;
    }
    pendingAttachment = { uploadId: result.uploadId, fileName: file.name, contentType: result.contentType, size: result.size };
  } catch (error) {
    status.textContent = `failed: ${error instanceof SwitchboardError ? error.code : error}`;
    showError(error);
  }
}

// ---------------------------------------------------------------------------- calls

function iceOptions() {
  return params.get("ice") === "relay" ? { iceTransportPolicy: /** @type {RTCIceTransportPolicy} */ ("relay") } : {};
}

async function startCall() {
  const client = /** @type {SwitchboardClient} */ (app.client);
  const conversation = app.conversations.get(app.active);
  const peer = conversation && peerOf(conversation);
  if (!peer || app.call) return;
  showCall(peer, "calling…");
  try {
    const call = await CallSession.start(client, peer, { media: "video", conversationId: app.active, ...iceOptions() });
    attachCall(call);
  } catch (error) {
    hideCall();
    showError(error);
  }
}

/** @param {any} incoming */
function onIncomingCall(incoming) {
  if (app.call || !incoming.offer) {
    return; // busy here, or a group call this demo does not join
  }
  app.incoming = incoming;
  $("incoming-text").textContent = `${incoming.callerId} is calling (${incoming.media})`;
  $("incoming").hidden = false;
  $("accept").focus();
}

function hideIncoming() {
  app.incoming = null;
  $("incoming").hidden = true;
}

async function acceptCall() {
  const client = /** @type {SwitchboardClient} */ (app.client);
  const incoming = app.incoming;
  hideIncoming();
  if (!incoming) return;
  showCall(incoming.callerId, "connecting…");
  try {
    attachCall(await CallSession.answer(client, incoming, iceOptions()));
  } catch (error) {
    hideCall();
    showError(error);
  }
}

async function declineCall() {
  const incoming = app.incoming;
  hideIncoming();
  if (incoming && app.client) await CallSession.reject(app.client, incoming.callId).catch(showError);
}

/** @param {CallSession} call */
function attachCall(call) {
  app.call = call;
  /** @type {HTMLVideoElement} */ ($("local-video")).srcObject = call.localStream;
  const remote = /** @type {HTMLVideoElement} */ ($("remote-video"));
  if (call.remoteStream) remote.srcObject = call.remoteStream;
  call.on("track", () => {
    if (remote.srcObject !== call.remoteStream) remote.srcObject = call.remoteStream;
  });
  const status = () => {
    const ice = call.pc?.iceConnectionState ?? "new";
    $("call-status").textContent = `${call.peerId}: ${call.state} · ICE ${ice}`;
    $("call-status").dataset.ice = ice;
    $("call-status").dataset.state = call.state;
  };
  call.on("state", status);
  call.on("iceconnectionstate", status);
  attachCallScreen(call);
  call.on("ended", ({ reason }) => {
    hideCall();
    toast(`Call ended (${reason})`);
  });
  status();
  renderChatHead();
}

/** @param {string} peer @param {string} text */
function showCall(peer, text) {
  $("call").hidden = false;
  $("remote-label").textContent = peer;
  $("call-status").textContent = `${peer}: ${text}`;
  /** @type {HTMLElement} */ ($("hangup")).focus();
}

function hideCall() {
  $("call").hidden = true;
  for (const id of ["local-video", "remote-video"]) /** @type {HTMLVideoElement} */ ($(id)).srcObject = null;
  app.call = null;
  renderChatHead();
}

// ---------------------------------------------------------------------------- search

const SEARCH_DEBOUNCE_MS = 250;
let searchTimer = 0;
let searchRun = 0;

/** Search as the user types (debounced; only the newest answer is shown). */
function onSearchInput() {
  clearTimeout(searchTimer);
  searchTimer = window.setTimeout(() => runSearch().catch(showError), SEARCH_DEBOUNCE_MS);
}

async function runSearch() {
  const query = /** @type {HTMLInputElement} */ ($("search-input")).value;
  const run = ++searchRun;
  if (!query.trim() || !app.client) {
    $("search-results").hidden = true;
    $("search-empty").hidden = true;
    $("search-more").hidden = true;
    searchMore = null;
    $("conversation-list").hidden = false;
    return;
  }
  const { hits, cursor } = await app.client.search(query, { limit: 20 });
  if (run !== searchRun) return; // a newer search is on its way
  searchMore = cursor ? { query, cursor } : null;
  renderSearchResults(hits);
}

/** Where "Search older messages" goes on: a search reads the newest messages first and its
 * cursor goes on into older ones (docs/search.md), so a page can be short or empty.
 * @type {{ query: string, cursor: string } | null} */
let searchMore = null;

async function searchOlder() {
  if (!searchMore || !app.client) return;
  const run = searchRun;
  const { hits, cursor } = await app.client.search(searchMore.query, { limit: 20, cursor: searchMore.cursor });
  if (run !== searchRun) return; // the user typed a new search meanwhile
  searchMore = cursor ? { query: searchMore.query, cursor } : null;
  renderSearchResults(hits, true);
}

/**
 * @param {import("./protocol.js").SearchHit[]} hits
 * @param {boolean} [more] add to the list (older messages) instead of replacing it
 */
function renderSearchResults(hits, more = false) {
  const list = $("search-results");
  list.hidden = false;
  $("conversation-list").hidden = true;
  $("search-more").hidden = !searchMore;
  const items = hits.map((hit) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "search-hit";
      button.dataset.conversationId = hit.conversationId;
      button.dataset.seq = String(hit.seq);
      const conversation = app.conversations.get(hit.conversationId);
      const meta = document.createElement("span");
      meta.className = "search-hit-meta";
      const who = hit.senderId === app.userId ? "You" : hit.senderId;
      const when = new Date(hit.createdAt).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
      meta.textContent = `${conversation ? titleOf(conversation) : hit.conversationId} · ${who} · ${when}`;
      const snippet = document.createElement("span");
      snippet.className = "search-hit-snippet";
      if (hit.field === "attachment") snippet.append("📎 ");
      for (const part of highlightParts(hit.snippet, hit.highlights)) {
        if (part.hit) {
          const mark = document.createElement("mark");
          mark.textContent = part.text;
          snippet.append(mark);
        } else {
          snippet.append(part.text);
        }
      }
      button.append(meta, snippet);
      button.addEventListener("click", () => openConversation(hit.conversationId, hit.seq).catch(showError));
      li.append(button);
      return li;
    });
  if (more) list.append(...items);
  else list.replaceChildren(...items);
  $("search-empty").hidden = list.childElementCount > 0 || Boolean(searchMore);
}

// ---------------------------------------------------------------------------- misc

/** @param {unknown} error */
function showError(error) {
  const message = error instanceof SwitchboardError ? `${error.code}: ${error.message}` : String(error);
  toast(message);
  console.warn("switchboard:", error);
}

/** @param {string} text */
function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.hidden = false;
  clearTimeout(Number(el.dataset.timer));
  el.dataset.timer = String(window.setTimeout(() => (el.hidden = true), 5000));
}

$("composer").addEventListener("submit", send);
$("search-input").addEventListener("input", onSearchInput);
$("search-more").addEventListener("click", () => searchOlder().catch(showError));
$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(searchTimer);
  runSearch().catch(showError);
});
$("composer-input").addEventListener("input", () => {
  if (app.client && app.active) app.client.typing(app.active);
});
$("composer-input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    /** @type {HTMLFormElement} */ ($("composer")).requestSubmit();
  }
});
$("attach").addEventListener("change", attach);
$("load-older").addEventListener("click", () => loadOlder().catch(showError));
$("messages-wrap").addEventListener("scroll", () => {
  const wrap = $("messages-wrap");
  if (wrap.scrollTop === 0 && app.active && !app.historyDone.get(app.active) && sortedMessages(app.active).length) {
    loadOlder().catch(showError);
  }
});
$("new-conversation").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($("new-members"));
  const members = input.value.split(/[\s,]+/).filter(Boolean);
  if (!members.length || !app.client) return;
  try {
    const { conversationId } = await app.client.createConversation(members);
    input.value = "";
    await loadConversations();
    await openConversation(conversationId);
  } catch (error) {
    showError(error);
  }
});
$("back").addEventListener("click", () => {
  document.body.classList.remove("chat-open");
  app.active = "";
  renderConversationList();
});
$("call-button").addEventListener("click", startCall);
$("accept").addEventListener("click", acceptCall);
$("decline").addEventListener("click", declineCall);
$("hangup").addEventListener("click", () => app.call?.hangup());
$("sign-out").addEventListener("click", () => {
  app.client?.close();
  location.href = location.pathname;
});
document.addEventListener("visibilitychange", markRead);
window.addEventListener("online", () => app.client?.reconnect());

const preselected = params.get("user");
if (preselected) signIn(preselected);
else showSignIn();

/** Members fetch short-lived download links of an attachment through its conversation. */
async function showSharedAttachment(element, attachment, conversationId) {
  try {
    const client = /** @type {SwitchboardClient} */ (app.client);
    const got = await client.request("upload:get", { uploadId: attachment.uploadId, conversationId });
    const link = document.createElement("a");
    link.href = got.url;
    link.textContent = "Download";
    link.rel = "noopener";
    link.target = "_blank";
    if (got.thumbnailUrl) {
      const img = document.createElement("img");
      img.src = got.thumbnailUrl;
      img.alt = `Thumbnail of ${attachment.fileName ?? "the attachment"}`;
      element.append(img);
    }
    element.append(" ", link);
  } catch {
    element.append(" (not available)");
  }
}
