// @ts-check
// The demo's message operations (web/app.js imports this): a menu on every message (react,
// reply in thread, quote, edit, delete), the reaction bar, "(edited)" marks, "message
// deleted" tombstones, quotes, the thread side panel and mute. Built on web/switchboard.js:
// editMessage, deleteMessage, react, threadHistory, mute, and the change events (pushes,
// and `client:message-changed` after a reconnect).
import { ClientEvent } from "./switchboard.js";
import { LIMITS } from "./protocol.js";

export const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🎉"];
const FOREVER = 2 ** 53;

/**
 * @typedef {object} Host what app.js shares with this module
 * @property {any} app the demo's state (conversations, messages, active, userId, client)
 * @property {(id: string) => HTMLElement} $
 * @property {(message: any) => void} store
 * @property {(message: any) => void} renderMessage
 * @property {() => void} renderConversationList
 * @property {(error: unknown) => void} showError
 */

/** @param {Host} host */
export function initMessageOps(host) {
  const { app, $, showError } = host;
  /** What the composer does next: quote a message, or edit one. @type {{kind: "quote" | "edit", seq: number} | null} */
  let composing = null;
  /** The open thread: its parent's seq (0: closed). */
  let threadParent = 0;
  /** @type {HTMLElement | null} */
  let openMenu = null;

  /** @param {number} seq */
  const stored = (seq, conversationId = app.active) => app.messages.get(conversationId)?.get(seq);

  // -------------------------------------------------------------------- changes
  /**
   * Applies a change to the stored message (only a newer version) and redraws it.
   * @param {string} conversationId @param {number} seq @param {(m: any) => any} change @param {number} version
   */
  function apply(conversationId, seq, change, version) {
    const message = stored(seq, conversationId);
    if (!message || (message.version ?? 0) >= version) return;
    const updated = { ...change(message), version };
    host.store(updated);
    redraw(updated);
  }

  /** @param {any} message the whole message as it is now (from the change stream) */
  function replace(message) {
    const current = stored(message.seq, message.conversationId);
    if (current && (current.version ?? 0) >= (message.version ?? 0)) return;
    host.store(message);
    redraw(message);
  }

  /** @param {any} message */
  function redraw(message) {
    requote(message);
    const conversation = app.conversations.get(message.conversationId);
    if (conversation?.lastMessage?.seq === message.seq) {
      conversation.lastMessage = { ...conversation.lastMessage, body: message.body, deleted: Boolean(message.deletedAt) };
      host.renderConversationList();
    }
    for (const list of [$("messages"), $("thread-messages")]) {
      const li = list.querySelector(`[data-seq="${message.seq}"]`);
      if (li && message.conversationId === app.active) {
        li.remove();
        if (list.id === "messages") host.renderMessage(message);
        else renderThreadItem(message, list);
      }
    }
    if (threadParent === message.seq && message.conversationId === app.active) renderThreadParent(message);
  }

  /**
   * The quotes of `message` in other messages follow it: an edit changes their snippet, a
   * delete leaves "message deleted" (a quote never keeps text its sender took back).
   * @param {any} message
   */
  function requote(message) {
    for (const other of app.messages.get(message.conversationId)?.values() ?? []) {
      if (other.replyTo?.seq !== message.seq) continue;
      const replyTo = message.deletedAt
        ? { ...other.replyTo, snippet: "", deleted: true }
        : { ...other.replyTo, snippet: message.body.slice(0, 100) };
      if (replyTo.snippet === other.replyTo.snippet && replyTo.deleted === other.replyTo.deleted) continue;
      const updated = { ...other, replyTo };
      host.store(updated);
      redraw(updated);
    }
  }

  /** @param {any} client */
  function wire(client) {
    client.on("message:updated", (d) =>
      apply(d.conversationId, d.seq, (m) => ({ ...m, body: d.body, editedAt: d.editedAt }), d.version),
    );
    client.on("message:deleted", (d) =>
      apply(
        d.conversationId,
        d.seq,
        (m) => ({ ...m, body: "", deletedAt: d.deletedAt, attachments: undefined, reactions: undefined }),
        d.version,
      ),
    );
    client.on("message:reactions", (d) =>
      apply(d.conversationId, d.seq, (m) => ({ ...m, reactions: d.reactions }), d.version),
    );
    client.on(ClientEvent.MESSAGE_CHANGED, ({ message, reset }) => {
      if (message) replace(message);
      else if (reset) host.showError("Some changes could not be fetched: reopen the conversation");
    });
  }

  /** A new message: a thread reply counts on its parent and shows in the open thread. @param {any} message */
  function onMessage(message) {
    if (!message.parentSeq) return;
    const parent = stored(message.parentSeq, message.conversationId);
    if (parent && message.source !== "sync") {
      const counted = { ...parent, replyCount: (parent.replyCount ?? 0) + 1, lastReplyAt: message.createdAt };
      host.store(counted);
      redraw(counted);
    }
    if (message.conversationId === app.active && threadParent === message.parentSeq) {
      renderThreadItem(message, $("thread-messages"));
    }
  }

  // -------------------------------------------------------------------- rendering
  /** Thread replies live in the thread panel, not in the timeline. @param {any} message */
  function hidden(message) {
    return Boolean(message.parentSeq);
  }

  /**
   * Adds what a message carries besides its text: the quote, "(edited)", the tombstone,
   * reactions, the thread link and the menu button.
   * @param {HTMLElement} li @param {any} message @param {HTMLElement} body @param {{inThread?: boolean}} [options]
   */
  function decorate(li, message, body, options = {}) {
    if (message.replyTo) {
      const quote = document.createElement("blockquote");
      quote.className = "quote";
      quote.textContent = message.replyTo.deleted
        ? "message deleted"
        : `${message.replyTo.senderId === app.userId ? "You" : message.replyTo.senderId}: ${message.replyTo.snippet}`;
      if (message.replyTo.deleted) quote.classList.add("deleted");
      li.insertBefore(quote, body);
    }
    if (message.deletedAt) {
      li.classList.add("deleted");
      body.textContent = "message deleted";
      body.classList.add("tombstone");
      return; // nothing else: no menu, no reactions
    }
    if (message.editedAt) {
      const mark = document.createElement("span");
      mark.className = "edited";
      mark.textContent = " (edited)";
      body.append(mark);
    }
    if (message.reactions?.length) li.append(reactionBar(message));
    if (!options.inThread && message.replyCount) {
      const link = document.createElement("button");
      link.type = "button";
      link.className = "thread-link secondary";
      link.textContent = `${message.replyCount} ${message.replyCount === 1 ? "reply" : "replies"}`;
      link.addEventListener("click", () => openThread(message.seq).catch(showError));
      li.append(link);
    }
    // A system entry (a call's recording; "bob left" is drawn by app-membership.js): the
    // server refuses every edit, delete, reaction and thread on it, so no menu.
    if (message.system) return;
    const more = document.createElement("button");
    more.type = "button";
    more.className = "message-menu-button secondary";
    more.textContent = "⋯";
    more.setAttribute("aria-label", "Message actions");
    more.setAttribute("aria-haspopup", "menu");
    more.addEventListener("click", (event) => {
      event.stopPropagation();
      showMenu(more, message, Boolean(options.inThread));
    });
    li.append(more);
  }

  /** @param {any} message */
  function reactionBar(message) {
    const bar = document.createElement("div");
    bar.className = "reactions";
    bar.setAttribute("aria-label", "Reactions");
    for (const r of message.reactions) {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "reaction";
      const mine = r.userIds.includes(app.userId);
      chip.setAttribute("aria-pressed", String(mine));
      chip.dataset.emoji = r.emoji;
      chip.title = r.userIds.join(", ");
      chip.textContent = `${r.emoji} ${r.count}`;
      chip.addEventListener("click", () => react(message, r.emoji, !mine));
      bar.append(chip);
    }
    return bar;
  }

  /** @param {any} message @param {string} emoji @param {boolean} on */
  function react(message, emoji, on) {
    app.client
      .react(message.conversationId, message.seq, emoji, on)
      .then((/** @type {any} */ r) => apply(r.conversationId, r.seq, (m) => ({ ...m, reactions: r.reactions }), r.version))
      .catch(showError);
  }

  // -------------------------------------------------------------------- the menu
  /** @param {HTMLElement} anchor @param {any} message @param {boolean} inThread */
  function showMenu(anchor, message, inThread) {
    closeMenu();
    const menu = document.createElement("div");
    menu.className = "message-menu";
    menu.setAttribute("role", "menu");
    menu.setAttribute("aria-label", "Message actions");
    const quick = document.createElement("div");
    quick.className = "quick-reactions";
    for (const emoji of QUICK_REACTIONS) {
      const b = document.createElement("button");
      b.type = "button";
      b.setAttribute("role", "menuitem");
      b.setAttribute("aria-label", `React ${emoji}`);
      b.textContent = emoji;
      b.addEventListener("click", () => {
        closeMenu();
        const mine = message.reactions?.find((/** @type {any} */ r) => r.emoji === emoji)?.userIds.includes(app.userId);
        react(message, emoji, !mine);
      });
      quick.append(b);
    }
    menu.append(quick);
    /** @param {string} label @param {() => void} action */
    const item = (label, action) => {
      const b = document.createElement("button");
      b.type = "button";
      b.setAttribute("role", "menuitem");
      b.textContent = label;
      b.addEventListener("click", () => {
        closeMenu();
        action();
      });
      menu.append(b);
    };
    if (!inThread && !message.parentSeq) item("Reply in thread", () => openThread(message.seq).catch(showError));
    if (!inThread) item("Quote", () => compose("quote", message));
    const own = message.senderId === app.userId;
    const editable = own && Date.now() - message.createdAt < LIMITS.EDIT_WINDOW_SECONDS * 1000;
    if (editable && !inThread) item("Edit", () => compose("edit", message));
    if (own) {
      item("Delete for everyone", () => {
        app.client
          .deleteMessage(message.conversationId, message.seq)
          .then((/** @type {any} */ d) =>
            apply(d.conversationId, d.seq, (m) => ({ ...m, body: "", deletedAt: d.deletedAt, attachments: undefined, reactions: undefined }), d.version),
          )
          .catch(showError);
      });
    }
    anchor.after(menu);
    openMenu = menu;
    /** @type {HTMLElement | null} */ (menu.querySelector("button"))?.focus();
  }

  function closeMenu() {
    openMenu?.remove();
    openMenu = null;
  }
  document.addEventListener("click", (event) => {
    if (openMenu && !openMenu.contains(/** @type {Node} */ (event.target))) closeMenu();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      closeMenu();
      if (composing) compose(null);
    }
  });

  // -------------------------------------------------------------------- composer: quote, edit
  /** @param {"quote" | "edit" | null} kind @param {any} [message] */
  function compose(kind, message) {
    const bar = $("composer-context");
    const input = /** @type {HTMLTextAreaElement} */ ($("composer-input"));
    if (!kind || !message) {
      if (composing?.kind === "edit") input.value = "";
      composing = null;
      bar.hidden = true;
      $("send").textContent = "Send";
      return;
    }
    composing = { kind, seq: message.seq };
    const who = message.senderId === app.userId ? "yourself" : message.senderId;
    $("composer-context-text").textContent =
      kind === "quote" ? `Quoting ${who}: ${message.body.slice(0, 100)}` : "Editing your message";
    bar.hidden = false;
    if (kind === "edit") input.value = message.body;
    $("send").textContent = kind === "edit" ? "Save" : "Send";
    input.focus();
  }
  $("composer-context-cancel").addEventListener("click", () => compose(null));

  /**
   * Called by app.js's send: an edit is saved here (true: handled); a quote adds
   * `replyToSeq` to the send's options.
   * @param {string} body
   */
  async function beforeSend(body) {
    if (composing?.kind !== "edit") return false;
    const seq = composing.seq;
    const original = stored(seq);
    compose(null);
    if (!original || body === original.body) return true;
    const r = await app.client.editMessage(app.active, seq, body);
    apply(r.conversationId, r.seq, (m) => ({ ...m, body: r.body, editedAt: r.editedAt }), r.version);
    return true;
  }

  function sendOptions() {
    if (composing?.kind !== "quote") return {};
    const replyToSeq = composing.seq;
    compose(null);
    return { replyToSeq };
  }

  /** The send's own echo has no quote preview yet: take it from the stored message. @param {any} message */
  function withQuote(message) {
    if (!message.replyTo && message.replyToSeq) {
      const quoted = stored(message.replyToSeq, message.conversationId);
      if (quoted) {
        return {
          ...message,
          replyTo: { seq: quoted.seq, senderId: quoted.senderId, snippet: quoted.body.slice(0, 100), deleted: Boolean(quoted.deletedAt) },
        };
      }
    }
    return message;
  }

  // -------------------------------------------------------------------- threads
  /** @param {number} parentSeq */
  async function openThread(parentSeq) {
    const conversationId = app.active;
    threadParent = parentSeq;
    const panel = $("thread");
    panel.hidden = false;
    document.body.classList.add("thread-open");
    $("thread-messages").replaceChildren();
    const page = await app.client.wholeThread(conversationId, parentSeq);
    if (threadParent !== parentSeq || app.active !== conversationId) return;
    // The thread's read may be newer than what the timeline shows (an edit whose reply is
    // still on its way): keep the newer version, and redraw the timeline with it.
    replace(page.parent);
    renderThreadParent(stored(parentSeq, conversationId) ?? page.parent);
    for (const reply of page.messages) {
      replace(reply);
      renderThreadItem(reply, $("thread-messages"));
    }
    /** @type {HTMLElement} */ ($("thread-input")).focus();
  }

  function closeThread() {
    threadParent = 0;
    $("thread").hidden = true;
    document.body.classList.remove("thread-open");
  }

  /** @param {any} parent */
  function renderThreadParent(parent) {
    const holder = $("thread-parent");
    holder.replaceChildren();
    holder.append(threadMessage("div", parent));
  }

  /** A message of the thread panel (its parent or a reply). @param {string} tag @param {any} message */
  function threadMessage(tag, message) {
    const li = document.createElement(tag);
    li.className = `message ${message.senderId === app.userId ? "own" : "theirs"}`;
    li.dataset.seq = String(message.seq);
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = message.senderId === app.userId ? "You" : message.senderId;
    const body = document.createElement("p");
    body.className = "body";
    body.textContent = message.body;
    li.append(meta, body);
    decorate(li, message, body, { inThread: true });
    return li;
  }

  /** @param {any} message @param {HTMLElement} list */
  function renderThreadItem(message, list) {
    if (list.querySelector(`[data-seq="${message.seq}"]`)) return;
    const li = threadMessage("li", message);
    const after = [...list.children].find((el) => Number(/** @type {HTMLElement} */ (el).dataset.seq) > message.seq);
    list.insertBefore(li, after ?? null);
  }

  $("thread-close").addEventListener("click", closeThread);
  $("thread-composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = /** @type {HTMLTextAreaElement} */ ($("thread-input"));
    const body = input.value.trim();
    if (!body || !threadParent) return;
    input.value = "";
    try {
      await app.client.sendMessage(app.active, body, { parentSeq: threadParent });
    } catch (error) {
      input.value = body;
      showError(error);
    }
  });

  // -------------------------------------------------------------------- mute
  /** @param {any} c */
  const isMuted = (c) => Boolean(c?.mutedUntil && c.mutedUntil > Date.now());

  /**
   * The chat head's mute button. Its accessible name says what it mutes: a group call's
   * microphone button is also "Mute", and a screen reader must tell the two apart.
   * @param {any} c
   */
  function renderHead(c) {
    const button = /** @type {HTMLButtonElement} */ ($("mute-button"));
    const verb = isMuted(c) ? "Unmute" : "Mute";
    button.disabled = !c;
    button.textContent = verb;
    button.setAttribute("aria-label", `${verb} notifications`);
    button.title = `${verb} this conversation's notifications`;
    button.setAttribute("aria-pressed", String(isMuted(c)));
  }

  $("mute-button").addEventListener("click", async () => {
    const c = app.conversations.get(app.active);
    if (!c) return;
    try {
      const state = isMuted(c) ? await app.client.unmute(c.conversationId) : await app.client.mute(c.conversationId);
      c.mutedUntil = state.mutedUntil ?? undefined;
      renderHead(c);
      host.renderConversationList();
    } catch (error) {
      showError(error);
    }
  });

  /** Marks a muted conversation in the list. @param {HTMLElement} button @param {any} c */
  function decorateConversation(button, c) {
    if (!isMuted(c)) return;
    const icon = document.createElement("span");
    icon.className = "muted-icon";
    icon.setAttribute("role", "img");
    icon.setAttribute("aria-label", c.mutedUntil >= FOREVER ? "muted" : `muted until ${new Date(c.mutedUntil).toLocaleString()}`);
    icon.textContent = "🔕";
    button.append(icon);
  }

  /** When the active conversation changes. */
  function onOpen() {
    closeThread();
    compose(null);
  }

  return { wire, onMessage, hidden, decorate, beforeSend, sendOptions, withQuote, renderHead, decorateConversation, onOpen };
}
