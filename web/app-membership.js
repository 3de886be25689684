// @ts-check
// The demo's consent and membership UI: message requests (accept / decline / block), the
// members panel of a conversation (roles, add, remove, leave), block / unblock, system
// entries ("bob left") and hiding blocked users' messages in groups. app.js owns the page;
// this module gets what it needs through setupMembership().

/**
 * @typedef {object} Host
 * @property {any} app the demo's state (app.js)
 * @property {() => Promise<void>} reload reloads the conversation list (and presence)
 * @property {() => void} rerender re-renders the list, the chat head and the open conversation
 * @property {(conversationId: string) => Promise<void>} open opens a conversation
 * @property {(error: unknown) => void} showError
 * @property {(receipt: {conversationId: string, seq: number, userId: string}, kind: "delivered" | "read") => void} receipt
 */

import { ClientEvent } from "./switchboard.js";

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @type {Host | null} */
let host = null;
/** @type {Set<string>} whom this user blocked */
export const blocked = new Set();
/** @type {Map<string, any>} conversationId -> summary of a pending request */
export const requests = new Map();

/** @param {Host} h */
export function setupMembership(h) {
  host = h;
  const client = h.app.client;
  client.on("conversation:request", () => loadRequests().catch(h.showError));
  client.on(ClientEvent.MESSAGE, (/** @type {any} */ message) => {
    // A message in a request (or one not listed yet): its preview is the request's.
    if (requests.has(message.conversationId) || !h.app.conversations.has(message.conversationId)) {
      loadRequests().catch(h.showError);
    }
  });
  client.on("conversation:accepted", (/** @type {any} */ d) => {
    // The receipts held back while it was a request, then presence (the reload asks).
    h.receipt({ conversationId: d.conversationId, seq: d.ackedSeq, userId: d.userId }, "delivered");
    h.receipt({ conversationId: d.conversationId, seq: d.readSeq, userId: d.userId }, "read");
    h.reload().catch(h.showError);
  });
  $("members-button").addEventListener("click", () => toggleMembers());
  $("add-members").addEventListener("submit", (event) => {
    event.preventDefault();
    addMembers().catch(h.showError);
  });
  $("leave-button").addEventListener("click", () => leave().catch(h.showError));
  $("accept-requests").addEventListener("change", (event) => {
    const input = /** @type {HTMLInputElement} */ (event.target);
    client.setAcceptRequests(input.checked).catch(h.showError);
  });
}

/** Loads the block list, the requests folder and the requests preference. */
export async function loadMembership() {
  const h = /** @type {Host} */ (host);
  const client = h.app.client;
  const [ids, prefs] = await Promise.all([client.blocks(), client.request("preferences:get", {})]);
  blocked.clear();
  for (const id of ids) blocked.add(id);
  // Disabled until the stored preference is known: a click before would be overwritten
  // by the late answer (the box would show the old choice while the new one is stored).
  const accept = /** @type {HTMLInputElement} */ ($("accept-requests"));
  accept.checked = prefs.acceptRequests;
  accept.disabled = false;
  await loadRequests();
}

/** @type {Promise<void> | null} the requests reload in flight */
let loading = null;
/** @type {Promise<void> | null} the one reload queued behind it */
let queued = null;

/**
 * Reloads the requests section, one `conversation:list` at a time: the calls made while
 * one is in flight share a single reload after it (its answer may predate what they
 * saw). A backlog of 35 messages in a request is then two reads, not 35.
 * @returns {Promise<void>}
 */
export function loadRequests() {
  if (loading) {
    queued ??= loading
      .catch(() => {})
      .then(() => {
        queued = null;
        return loadRequests();
      });
    return queued;
  }
  loading = fetchRequests().finally(() => {
    loading = null;
  });
  return loading;
}

async function fetchRequests() {
  const h = /** @type {Host} */ (host);
  const list = await h.app.client.listRequests(50);
  requests.clear();
  for (const c of list) requests.set(c.conversationId, c);
  renderRequests();
}

/**
 * Contacts of this user among the members of accepted conversations (presence is for
 * contacts only: members who have not accepted, and blocked users, are left out).
 * @param {any[]} conversations
 * @param {string} self
 */
export function contactsOf(conversations, self) {
  const found = new Set();
  for (const c of conversations) {
    if (c.request) continue;
    for (const m of c.members) if (m !== self && !(c.pending ?? []).includes(m) && !blocked.has(m)) found.add(m);
  }
  return found;
}

function renderRequests() {
  const h = /** @type {Host} */ (host);
  const list = $("request-list");
  $("requests").hidden = requests.size === 0;
  $("requests-count").textContent = String(requests.size);
  list.replaceChildren(
    ...[...requests.values()].map((c) => {
      const li = document.createElement("li");
      li.className = "request";
      li.dataset.conversationId = c.conversationId;
      const from = c.lastMessage?.senderId ?? c.members.find((/** @type {string} */ m) => m !== h.app.userId);
      const open = document.createElement("button");
      open.type = "button";
      open.className = "request-open link";
      open.textContent = c.title || `${from}`;
      open.title = "Read the request";
      open.addEventListener("click", () => {
        h.app.conversations.set(c.conversationId, c);
        h.open(c.conversationId).catch(h.showError);
      });
      const preview = document.createElement("span");
      preview.className = "conversation-preview";
      preview.textContent = c.lastMessage ? `${c.lastMessage.senderId}: ${c.lastMessage.body || "…"}` : `from ${from}`;
      const actions = document.createElement("div");
      actions.className = "row";
      actions.append(
        button("Accept", "", () => accept(c.conversationId)),
        button("Decline", "secondary", () => decline(c.conversationId)),
        button("Block", "danger", () => blockFrom(c.conversationId, from)),
      );
      li.append(open, preview, actions);
      return li;
    }),
  );
}

/** @param {string} label @param {string} kind @param {() => Promise<void>} action */
function button(label, kind, action) {
  const h = /** @type {Host} */ (host);
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (kind) b.className = kind;
  b.addEventListener("click", () => action().catch(h.showError));
  return b;
}

/** @param {string} conversationId */
async function accept(conversationId) {
  const h = /** @type {Host} */ (host);
  await h.app.client.acceptConversation(conversationId);
  requests.delete(conversationId);
  renderRequests();
  await h.reload();
}

/** @param {string} conversationId */
async function decline(conversationId) {
  const h = /** @type {Host} */ (host);
  await h.app.client.declineConversation(conversationId);
  forget(conversationId);
}

/** @param {string} conversationId @param {string} userId */
async function blockFrom(conversationId, userId) {
  const h = /** @type {Host} */ (host);
  await h.app.client.declineConversation(conversationId);
  await block(userId);
  forget(conversationId);
}

/** @param {string} conversationId */
function forget(conversationId) {
  const h = /** @type {Host} */ (host);
  requests.delete(conversationId);
  h.app.conversations.delete(conversationId);
  if (h.app.active === conversationId) h.app.active = "";
  renderRequests();
  h.rerender();
}

/** @param {string} userId */
export async function block(userId) {
  const h = /** @type {Host} */ (host);
  await h.app.client.block(userId);
  blocked.add(userId);
  h.rerender();
  renderMembers();
}

/** @param {string} userId */
export async function unblock(userId) {
  const h = /** @type {Host} */ (host);
  await h.app.client.unblock(userId);
  blocked.delete(userId);
  h.rerender();
  renderMembers();
}

// ---------------------------------------------------------------------------- members panel

function toggleMembers() {
  const panel = $("members-panel");
  panel.hidden = !panel.hidden;
  $("members-button").setAttribute("aria-expanded", String(!panel.hidden));
  renderMembers();
}

/** Re-renders the members panel of the open conversation (if shown). */
export function renderMembers() {
  const h = /** @type {Host} */ (host);
  if (!h) return;
  const c = h.app.conversations.get(h.app.active);
  const panel = $("members-panel");
  $("members-button").hidden = !c || c.request;
  if (!c || panel.hidden) return;
  const me = roleOf(c, h.app.userId);
  const manager = me === "owner" || me === "admin";
  const group = !c.conversationId.startsWith("dm_");
  $("add-members").hidden = !(group && manager);
  $("leave-button").hidden = !group;
  $("member-list").replaceChildren(
    ...c.members.map((/** @type {string} */ m) => {
      const li = document.createElement("li");
      li.className = "member";
      li.dataset.userId = m;
      const name = document.createElement("span");
      const role = roleOf(c, m);
      const pending = (c.pending ?? []).includes(m);
      name.textContent = `${m === h.app.userId ? `${m} (you)` : m}${role !== "member" ? ` · ${role}` : ""}${pending ? " · invited" : ""}`;
      li.append(name);
      if (m !== h.app.userId) {
        if (group && manager && role !== "owner" && (me === "owner" || role === "member")) {
          li.append(button("Remove", "secondary", () => removeMember(c.conversationId, m)));
        }
        li.append(blocked.has(m) ? button("Unblock", "secondary", () => unblock(m)) : button("Block", "danger", () => block(m)));
      }
      return li;
    }),
  );
}

/** @param {any} c @param {string} userId */
function roleOf(c, userId) {
  return (c.roles ?? {})[userId] ?? "member";
}

async function addMembers() {
  const h = /** @type {Host} */ (host);
  const input = /** @type {HTMLInputElement} */ ($("add-members-input"));
  const members = input.value.split(/[\s,]+/).filter(Boolean);
  if (!members.length) return;
  const reply = await h.app.client.addMembers(h.app.active, members);
  input.value = "";
  applyMembers(h.app.active, reply.members);
  await h.reload();
}

/** @param {string} conversationId @param {string} userId */
async function removeMember(conversationId, userId) {
  const h = /** @type {Host} */ (host);
  const reply = await h.app.client.removeMember(conversationId, userId);
  applyMembers(conversationId, reply.members);
  await h.reload();
}

async function leave() {
  const h = /** @type {Host} */ (host);
  const id = h.app.active;
  await h.app.client.leaveConversation(id);
  h.app.conversations.delete(id);
  h.app.active = "";
  $("members-panel").hidden = true;
  h.rerender();
}

/** @param {string} conversationId @param {string[]} members */
function applyMembers(conversationId, members) {
  const h = /** @type {Host} */ (host);
  const c = h.app.conversations.get(conversationId);
  if (c) c.members = members;
  renderMembers();
}

/**
 * A system entry arrived (message:new with `system`): membership changed. Returns true when
 * the conversation should be dropped from the list (this user was removed).
 * @param {any} message
 */
export function onSystemEntry(message) {
  const h = /** @type {Host} */ (host);
  const s = message.system;
  if (!s?.kind) return false; // (a call recording entry is no membership change)
  const c = h.app.conversations.get(message.conversationId);
  if (s.kind === "removed" && (s.userIds ?? []).includes(h.app.userId)) return true;
  if (c && s.kind === "title") c.title = s.title;
  h.reload().catch(h.showError); // members, roles and presence as the server has them now
  return false;
}

/**
 * What a system entry says, e.g. "bob left".
 * @param {any} s
 * @param {string} self
 */
export function systemText(s, self) {
  const name = (/** @type {string} */ u) => (u === self ? "you" : u);
  const who = (s.userIds ?? []).map(name).join(", ");
  switch (s.kind) {
    case "left":
      return `${who} left${s.owner ? ` · ${name(s.owner)} owns the group now` : ""}`;
    case "removed":
      return `${name(s.by)} removed ${who}`;
    case "added":
      return `${name(s.by)} added ${who}`;
    case "role":
      return `${name(s.by)} made ${who} ${s.role === "admin" ? "an admin" : "a member"}`;
    case "title":
      return `${name(s.by)} renamed the group “${s.title}”`;
    default:
      return `${name(s.by)} changed the conversation`;
  }
}

/**
 * Whether a message is hidden here: its sender is blocked (in a group they still send).
 * @param {any} message
 */
export function hiddenSender(message) {
  return blocked.has(message.senderId) && !message.system;
}
