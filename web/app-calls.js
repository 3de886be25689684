// @ts-check
// The demo app's group calls, screen sharing, recording and voice messages (web/calls.js).
// app.js calls `initCalls` once signed in, `renderCallButtons` with the chat head,
// `attachCallScreen` with a 1:1 call (its screen sharing), and `renderMediaAttachment` for
// a voice message or a recording in the message list.
import { GroupCall, recordVoice, sendVoiceMessage } from "./calls.js";

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @typedef {{showError: (e: unknown) => void, toast: (text: string) => void, iceOptions: () => {iceTransportPolicy?: RTCIceTransportPolicy}}} Helpers */

const state = {
  /** @type {any} the demo's app object (app.js) */
  app: null,
  /** @type {Helpers | null} */
  helpers: null,
  /** @type {GroupCall | null} */
  call: null,
  /** @type {any} a group call ringing here */
  incoming: null,
  /** @type {Awaited<ReturnType<typeof recordVoice>> | null} */
  voice: null,
};

/** @param {string} tag @param {Record<string, string>} [attrs] @param {string} [text] */
function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

/** Builds the group-call UI once (kept out of index.html: it is all this module's). */
function build() {
  if ($("group-call-button")) return;
  const button = el("button", { id: "group-call-button", type: "button", disabled: "" }, "Group call");
  $("call-button").after(button);
  button.addEventListener("click", () => startGroupCall().catch(report));

  const section = el("section", { id: "group-call", class: "call group-call", "aria-label": "Group call", hidden: "" });
  const grid = el("div", { id: "group-tiles", class: "tiles grid" });
  const status = el("p", { id: "group-status", class: "call-status", role: "status", "aria-label": "Group call status" });
  const recording = el("p", { id: "recording-indicator", class: "recording-indicator", role: "status", "aria-label": "Recording", hidden: "" });
  const controls = el("div", { class: "row controls" });
  const buttons = {
    mute: el("button", { id: "mute", type: "button", "aria-pressed": "false" }, "Mute"),
    camera: el("button", { id: "camera", type: "button", "aria-pressed": "false" }, "Camera off"),
    screen: el("button", { id: "share-screen", type: "button", "aria-pressed": "false" }, "Share screen"),
    record: el("button", { id: "record", type: "button", "aria-pressed": "false" }, "Record"),
    leave: el("button", { id: "leave", type: "button", class: "danger" }, "Leave"),
  };
  controls.append(...Object.values(buttons));
  section.append(grid, recording, status, controls);
  document.body.append(section);
  buttons.mute.addEventListener("click", () => toggle("audio").catch(report));
  buttons.camera.addEventListener("click", () => toggle("video").catch(report));
  buttons.screen.addEventListener("click", () => toggleScreen().catch(report));
  buttons.record.addEventListener("click", () => toggleRecording().catch(report));
  buttons.leave.addEventListener("click", () => state.call?.leave());

  const ring = el("div", { id: "group-incoming", class: "incoming", role: "alertdialog", "aria-labelledby": "group-incoming-title", hidden: "" });
  const actions = el("div", { class: "row" });
  const join = el("button", { id: "group-join", type: "button" }, "Join");
  const decline = el("button", { id: "group-decline", type: "button", class: "danger" }, "Decline");
  actions.append(join, decline);
  ring.append(el("h2", { id: "group-incoming-title" }, "Incoming group call"), el("p", { id: "group-incoming-text" }), actions);
  document.body.append(ring);
  join.addEventListener("click", () => joinGroupCall().catch(report));
  decline.addEventListener("click", () => {
    const incoming = state.incoming;
    hideIncoming();
    if (incoming) GroupCall.decline(state.app.client, incoming.callId).catch(report);
  });

  // Hold to record a voice message, release to send (pointer, or Space/Enter held).
  const voice = el("button", { id: "voice", type: "button", "aria-label": "Hold to record a voice message", disabled: "" }, "🎤");
  $("composer").append(voice);
  voice.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    startVoice().catch(report);
  });
  voice.addEventListener("pointerup", () => finishVoice(true).catch(report));
  voice.addEventListener("pointerleave", () => finishVoice(false).catch(report));
  voice.addEventListener("keydown", (e) => {
    if ((e.key === " " || e.key === "Enter") && !e.repeat) {
      e.preventDefault();
      startVoice().catch(report);
    }
  });
  voice.addEventListener("keyup", (e) => {
    if (e.key === " " || e.key === "Enter") finishVoice(true).catch(report);
  });

  // The 1:1 call panel (index.html) shares a screen too.
  $("call-share-screen").addEventListener("click", () => toggleCallScreen().catch(report));
}

/** @param {unknown} error */
function report(error) {
  state.helpers?.showError(error);
}

/**
 * @param {any} app the demo's app object
 * @param {Helpers} helpers
 */
export function initCalls(app, helpers) {
  state.app = app;
  state.helpers = helpers;
  app.groupCall = null; // for the browser tests
  build();
  const client = app.client;
  client.on("call:incoming", (/** @type {any} */ incoming) => {
    if (!incoming.group || state.call || app.call) return;
    state.incoming = incoming;
    const others = incoming.participants.map((/** @type {any} */ p) => p.userId).filter((/** @type {string} */ u) => u !== app.userId);
    $("group-incoming-text").textContent = `${incoming.callerId} invites you to a group call with ${others.join(", ")} (${incoming.media})`;
    $("group-incoming").hidden = false;
  });
  for (const type of ["call:answered-elsewhere", "call:ended", "call:rejected"]) {
    client.on(type, (/** @type {any} */ d) => {
      if (state.incoming?.callId === d.callId) hideIncoming();
    });
  }
}

function hideIncoming() {
  state.incoming = null;
  $("group-incoming").hidden = true;
}

/** The group-call button and the voice button follow the open conversation. */
export function renderCallButtons() {
  const app = state.app;
  if (!app || !$("group-call-button")) return;
  const conversation = app.conversations.get(app.active);
  const others = conversation ? conversation.members.filter((/** @type {string} */ m) => m !== app.userId) : [];
  const button = /** @type {HTMLButtonElement} */ ($("group-call-button"));
  button.disabled = !conversation || others.length < 1 || others.length > 3 || Boolean(state.call || app.call);
  button.setAttribute("aria-label", conversation ? `Group call ${others.join(", ")}` : "Group call");
  /** @type {HTMLButtonElement} */ ($("voice")).disabled = !conversation;
}

async function startGroupCall() {
  const app = state.app;
  const conversation = app.conversations.get(app.active);
  if (!conversation || state.call) return;
  const others = conversation.members.filter((/** @type {string} */ m) => m !== app.userId);
  show("calling…");
  try {
    attach(await GroupCall.start(app.client, others, { conversationId: conversation.conversationId, ...state.helpers?.iceOptions() }));
  } catch (error) {
    hide();
    throw error;
  }
}

async function joinGroupCall() {
  const incoming = state.incoming;
  hideIncoming();
  if (!incoming) return;
  show("joining…");
  try {
    attach(await GroupCall.join(state.app.client, incoming, state.helpers?.iceOptions()));
  } catch (error) {
    hide();
    throw error;
  }
}

/** @param {string} text */
function show(text) {
  $("group-call").hidden = false;
  $("group-status").textContent = text;
  renderCallButtons();
}

function hide() {
  $("group-call").hidden = true;
  $("group-tiles").replaceChildren();
  $("recording-indicator").hidden = true;
  state.call = null;
  state.app.groupCall = null;
  renderCallButtons();
}

/** @param {GroupCall} call */
function attach(call) {
  state.call = call;
  state.app.groupCall = call;
  tile(state.app.userId, call.localStream, false, true);
  const status = () => {
    const peers = [...call.peers.keys()];
    $("group-status").textContent = `${call.state} · ${peers.length ? `with ${peers.join(", ")}` : "waiting for others"}`;
    $("group-status").dataset.state = call.state;
    $("group-status").dataset.peers = String(peers.length);
  };
  call.on("state", status);
  call.on("peer", status);
  call.on("track", ({ userId, stream, screen }) => tile(userId, stream, screen, false));
  // A camera tile stays until its participant leaves (a renegotiation may swap its tracks).
  call.on("trackended", ({ userId, screen }) => screen && removeTile(userId, true));
  call.on("peerleft", ({ userId }) => {
    removeTile(userId, false);
    removeTile(userId, true);
    status();
  });
  call.on("media", ({ userId }) => renderMedia(userId));
  call.on("recording", ({ recording }) => renderRecording(recording));
  call.on("error", (/** @type {any} */ e) => state.helpers?.toast(`Call error: ${e.code}`));
  call.on("ended", ({ reason }) => {
    hide();
    state.helpers?.toast(`Group call ended (${reason})`);
  });
  // Whatever came before these handlers (someone joined while the call was being set up).
  for (const { userId, stream, screen } of call.remoteStreams()) tile(userId, stream, screen, false);
  renderRecording(call.recording);
  status();
  renderCallButtons();
}

/** @param {string} userId @param {boolean} screen */
function tileId(userId, screen) {
  return `tile-${screen ? "screen" : "cam"}-${encodeURIComponent(userId)}`;
}

/**
 * A tile per participant's camera and per shared screen.
 * @param {string} userId @param {MediaStream | null} stream @param {boolean} screen @param {boolean} self
 */
function tile(userId, stream, screen, self) {
  const id = tileId(userId, screen);
  let figure = document.getElementById(id);
  if (!figure) {
    figure = el("figure", { id, class: `tile${self ? " local" : ""}${screen ? " screen" : ""}`, "data-user": userId, "data-kind": screen ? "screen" : "camera" });
    const label = self ? "You" : userId;
    const video = /** @type {HTMLVideoElement} */ (el("video", { autoplay: "", playsinline: "", "aria-label": screen ? `${label}'s screen` : `${label} video` }));
    video.muted = self;
    figure.append(video, el("figcaption", {}, screen ? `${label} (screen)` : label));
    $("group-tiles").append(figure);
  }
  const video = /** @type {HTMLVideoElement} */ (figure.querySelector("video"));
  if (stream && video.srcObject !== stream) video.srcObject = stream;
  if (!screen) renderMedia(userId);
}

/** @param {string} userId @param {boolean} screen */
function removeTile(userId, screen) {
  document.getElementById(tileId(userId, screen))?.remove();
}

/** A camera tile shows its participant's microphone / camera / screen state. @param {string} userId */
function renderMedia(userId) {
  const figure = document.getElementById(tileId(userId, false));
  const media = state.call?.mediaState.get(userId);
  if (!figure || !media) return;
  figure.dataset.audio = String(media.audio);
  figure.dataset.video = String(media.video);
  figure.dataset.screen = String(media.screen);
  const caption = /** @type {HTMLElement} */ (figure.querySelector("figcaption"));
  const name = userId === state.app.userId ? "You" : userId;
  caption.textContent = `${name}${media.audio ? "" : " · muted"}${media.video ? "" : " · camera off"}${media.screen ? " · sharing" : ""}`;
}

/** @param {string[]} recording */
function renderRecording(recording) {
  const indicator = $("recording-indicator");
  indicator.hidden = !recording.length;
  indicator.textContent = recording.length ? `● Recording (${recording.join(", ")})` : "";
}

/** @param {"audio" | "video"} kind */
async function toggle(kind) {
  const call = state.call;
  if (!call) return;
  const now = call.mediaState.get(state.app.userId)?.[kind] ?? true;
  await call.setMedia({ [kind]: !now });
  const button = $(kind === "audio" ? "mute" : "camera");
  button.setAttribute("aria-pressed", String(now));
  button.textContent = kind === "audio" ? (now ? "Unmute" : "Mute") : now ? "Camera on" : "Camera off";
  renderMedia(state.app.userId);
}

async function toggleScreen() {
  const call = state.call;
  if (!call) return;
  const button = $("share-screen");
  if (call.screenStream) {
    await call.stopScreen();
    removeTile(state.app.userId, true);
  } else {
    const screen = await call.shareScreen();
    tile(state.app.userId, screen, true, true);
    screen.getVideoTracks()[0].addEventListener("ended", () => {
      removeTile(state.app.userId, true);
      button.textContent = "Share screen";
    });
  }
  button.textContent = call.screenStream ? "Stop sharing" : "Share screen";
  button.setAttribute("aria-pressed", String(Boolean(call.screenStream)));
  renderMedia(state.app.userId);
}

async function toggleRecording() {
  const call = state.call;
  if (!call) return;
  const button = $("record");
  if (call.recorder) {
    button.textContent = "Uploading…";
    button.setAttribute("disabled", "");
    try {
      await call.stopRecording({ onProgress: (p) => (button.textContent = `Uploading ${p.confirmedPercent}%`) });
      state.helpers?.toast("Recording posted in the conversation");
    } finally {
      button.removeAttribute("disabled");
      button.textContent = "Record";
      button.setAttribute("aria-pressed", "false");
    }
  } else {
    await call.startRecording();
    button.textContent = "Stop recording";
    button.setAttribute("aria-pressed", "true");
  }
}

// ---------------------------------------------------------------------------- voice messages

async function startVoice() {
  if (state.voice || !state.app?.active) return;
  const button = $("voice");
  button.classList.add("recording");
  button.setAttribute("aria-pressed", "true");
  state.voice = await recordVoice();
}

/** @param {boolean} send */
async function finishVoice(send) {
  const recording = state.voice;
  if (!recording) return;
  state.voice = null;
  const button = $("voice");
  button.classList.remove("recording");
  button.setAttribute("aria-pressed", "false");
  if (!send) {
    await recording.cancel();
    return;
  }
  const voice = await recording.stop();
  await sendVoiceMessage(state.app.client, state.app.active, voice);
}

/**
 * A voice message (inline player with a progress bar over its waveform) or a call
 * recording (a video player), fetched through the conversation like any attachment.
 * @param {HTMLElement} element @param {any} attachment @param {string} conversationId
 */
export async function renderMediaAttachment(element, attachment, conversationId) {
  element.classList.add(attachment.kind);
  const seconds = Math.round((attachment.durationMs ?? 0) / 100) / 10;
  element.textContent = attachment.kind === "voice" ? `Voice message · ${seconds} s` : `Call recording · ${seconds} s`;
  try {
    const got = await state.app.client.request("upload:get", { uploadId: attachment.uploadId, conversationId });
    const player = /** @type {HTMLMediaElement} */ (el(attachment.kind === "voice" ? "audio" : "video", { controls: "", preload: "metadata", src: got.url, "aria-label": element.textContent ?? "" }));
    element.append(player);
    if (attachment.kind === "voice") {
      const bar = el("div", { class: "waveform", role: "progressbar", "aria-label": "Playback", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" });
      for (const level of attachment.waveform ?? []) {
        const peak = el("span");
        peak.style.height = `${Math.max(2, Math.round((level / 255) * 24))}px`;
        bar.append(peak);
      }
      const total = (attachment.durationMs ?? 0) / 1000;
      player.addEventListener("timeupdate", () => {
        const percent = total ? Math.min(100, Math.round((player.currentTime / total) * 100)) : 0;
        bar.setAttribute("aria-valuenow", String(percent));
        bar.style.setProperty("--played", `${percent}%`);
      });
      player.addEventListener("ended", () => bar.setAttribute("aria-valuenow", "100"));
      element.append(bar);
    }
  } catch {
    element.append(" (not available)");
  }
}

// ---------------------------------------------------------------------------- 1:1 calls

/**
 * Screen sharing in the 1:1 call panel (index.html, a CallSession): the Share screen /
 * Stop sharing button, the peer's screen as a tile of its own, and the peer's microphone,
 * camera and screen state on its tile (its `call:media`).
 * @param {import("./switchboard.js").CallSession} call
 */
export function attachCallScreen(call) {
  const tile = $("remote-screen-tile");
  const video = /** @type {HTMLVideoElement} */ ($("remote-screen"));
  const button = $("call-share-screen");
  const render = () => {
    const sharing = Boolean(call.screen);
    button.textContent = sharing ? "Stop sharing" : "Share screen";
    button.setAttribute("aria-pressed", String(sharing));
    button.toggleAttribute("disabled", call.state !== "active");
    const peer = call.mediaState.get(call.peerId);
    const remote = $("remote-tile");
    if (!peer) return;
    remote.dataset.audio = String(peer.audio);
    remote.dataset.video = String(peer.video);
    remote.dataset.screen = String(peer.screen);
    const flags = `${peer.audio ? "" : " · muted"}${peer.video ? "" : " · camera off"}${peer.screen ? " · sharing" : ""}`;
    $("remote-label").textContent = `${call.peerId}${flags}`;
  };
  const hideScreen = () => {
    tile.hidden = true;
    video.srcObject = null;
  };
  call.on("track", ({ stream, screen }) => {
    if (!screen) return;
    video.srcObject = stream;
    $("remote-screen-label").textContent = `${call.peerId} (screen)`;
    tile.hidden = false;
  });
  call.on("trackended", ({ screen }) => screen && hideScreen());
  call.on("media", render);
  call.on("state", render);
  call.on("ended", () => {
    hideScreen();
    render();
  });
  render();
}

async function toggleCallScreen() {
  const call = state.app?.call;
  if (!call) return;
  if (call.screen) await call.stopScreen();
  else await call.shareScreen();
}
