// @ts-check
/**
 * Group calls, screen sharing, recording with consent and voice messages, on top of
 * web/switchboard.js (an ES module with no build step; docs/protocol.md, "Calls").
 *
 *   import { GroupCall, recordVoice, sendVoiceMessage } from "./calls.js";
 *   const call = await GroupCall.start(sb, ["bob", "carol"], { conversationId });
 *   call.on("track", ({ userId, stream, screen }) => showTile(userId, stream, screen));
 *   await call.setMedia({ audio: false });       // muted: the others' tiles say so
 *   await call.shareScreen();                    // a new track to every peer (renegotiated)
 *   await call.startRecording();                 // announced to everyone, then recorded
 *   await call.stopRecording();                  // uploaded, posted in the conversation
 *   const voice = await recordVoice();           // hold to record ...
 *   await sendVoiceMessage(sb, conversationId, await voice.stop());  // ... release to send
 *
 * A group call is a mesh (the server's cap is 4 people): one RTCPeerConnection per other
 * participant, each negotiated with the "perfect negotiation" pattern. Who joins offers
 * to everyone already in; of each pair, the peer with the smaller user id is polite.
 */

import {
  candidateJSON,
  descriptionJSON,
  MediaCall,
  RemoteStreams,
  SwitchboardError,
  uploadFile,
} from "./switchboard.js";

/** @typedef {import("./switchboard.js").SwitchboardClient} SwitchboardClient */
/** @typedef {{audio: boolean, video: boolean, screen: boolean}} MediaState */

/**
 * One peer of a mesh call: a peer connection negotiated with one other participant.
 */
class PeerLink {
  /**
   * @param {GroupCall} call
   * @param {string} userId the other participant
   * @param {boolean} offerer true for the side that joined last (it makes the first offer)
   */
  constructor(call, userId, offerer) {
    this.call = call;
    this.userId = userId;
    this.polite = call.client.userId < userId;
    this.offerer = offerer;
    this.makingOffer = false;
    this.ignoreOffer = false;
    /** @type {RTCIceCandidateInit[]} candidates that came before the remote description */
    this.early = [];
    /** @type {Promise<any>} this side's descriptions, in order (candidates follow them) */
    this._outgoing = Promise.resolve();
    /** The peer's camera/microphone stream and the screen it shares. */
    this.remote = new RemoteStreams(({ stream, screen }) => call._emit("trackended", { userId, stream, screen }));
    const pc = new RTCPeerConnection({ iceServers: call.iceServers, iceTransportPolicy: call.iceTransportPolicy });
    this.pc = pc;
    pc.onicecandidate = ({ candidate }) => {
      if (candidate) this._send("call:ice-candidate", { candidate: candidateJSON(candidate.toJSON()) }, false);
    };
    pc.ontrack = ({ track, streams }) => call._emit("track", { userId, track, ...this.remote.add(track, streams) });
    pc.oniceconnectionstatechange = () => call._emit("iceconnectionstate", { userId, state: pc.iceConnectionState });
    pc.onnegotiationneeded = async () => {
      // The answering side waits for the first offer (its tracks go into the answer).
      if (!this.offerer && !pc.remoteDescription) return;
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        await this._send("call:offer", { offer: descriptionJSON(pc.localDescription) });
      } catch (error) {
        call._report(error);
      } finally {
        this.makingOffer = false;
      }
    };
    if (offerer) this._addLocalTracks();
  }

  _addLocalTracks() {
    const stream = this.call.localStream;
    if (stream) for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
    // Its SDP changes are made at once (the answer that follows carries them).
    this.call.screen?.addTo(this.pc).catch((error) => this.call._report(error));
  }

  /** @param {RTCSessionDescriptionInit} description */
  async onDescription(description) {
    const pc = this.pc;
    if (description.type === "answer" && pc.signalingState !== "have-local-offer") return; // stale
    const collision = description.type === "offer" && (this.makingOffer || pc.signalingState !== "stable");
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    const first = !pc.remoteDescription;
    await pc.setRemoteDescription(description);
    for (const candidate of this.early.splice(0)) await this._addCandidate(candidate);
    if (description.type === "offer") {
      // The first offer made the transceivers: our tracks take them (no second round).
      if (first && !this.offerer) this._addLocalTracks();
      await pc.setLocalDescription();
      await this._send("call:answer", { answer: descriptionJSON(pc.localDescription) });
    }
  }

  /** @param {RTCIceCandidateInit} candidate */
  async onCandidate(candidate) {
    if (!this.pc.remoteDescription) {
      this.early.push(candidate); // relayed in parallel: it may overtake its description
      return;
    }
    await this._addCandidate(candidate);
  }

  /** @param {RTCIceCandidateInit} candidate */
  async _addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate.candidate === "" ? null : candidate);
    } catch (error) {
      if (!this.ignoreOffer) throw error;
    }
  }

  /**
   * A description (in order, after the previous one was handed over) or a candidate
   * (after the description in flight) to this peer's in-call connection.
   * @param {string} action @param {Record<string, any>} data @param {boolean} [ordered]
   */
  _send(action, data, ordered = true) {
    const request = () => this.call.client.request(action, { callId: this.call.callId, toUserId: this.userId, ...data });
    const sent = this._outgoing.then(request);
    if (ordered) this._outgoing = sent.catch(() => undefined);
    else sent.catch((error) => this.call._refused(error));
    return sent;
  }

  close() {
    this.call.screen?.removeFrom(this.pc);
    this.pc.close();
  }
}

/**
 * A mesh call of up to the server's `maxParticipants` (4), 1:1 included.
 *
 * Events (`call.on(type, fn)`): `state` ({state}), `peer` ({userId}) a peer connection
 * was made, `track` ({userId, track, stream, screen}), `trackended` ({userId, stream,
 * screen}), `peerleft` ({userId, reason}), `media` ({userId, audio, video, screen}),
 * `recording` ({userId, state, recording}), `iceconnectionstate` ({userId, state}),
 * `error` ({code, message, userId?, uploadId?}: a `call:error` push), `ended` ({reason}).
 */
export class GroupCall extends MediaCall {
  /**
   * @param {SwitchboardClient} client
   * @param {{callId?: string, media?: "audio" | "video", conversationId?: string | null,
   *   iceTransportPolicy?: RTCIceTransportPolicy, localStream?: MediaStream}} options
   */
  constructor(client, options) {
    super(client, options);
    this.conversationId = options.conversationId ?? null;
    this.iceTransportPolicy = options.iceTransportPolicy ?? "all";
    /** @type {RTCIceServer[]} */
    this.iceServers = [];
    /** @type {Map<string, PeerLink>} */
    this.peers = new Map();
    /** @type {string[]} who is recording now */
    this.recording = [];
    /** @type {MediaRecorder | null} */
    this.recorder = null;
    /** Candidates refused because the peer or the call moved on (its push says so). */
    this.refusedCandidates = 0;
    /** @type {Promise<any>} signaling pushes, handled in arrival order */
    this._inbox = Promise.resolve();
  }

  /**
   * Starts a group call with `userIds` (they ring; each who joins connects to everyone).
   * @param {SwitchboardClient} client
   * @param {string[]} userIds
   * @param {{media?: "audio" | "video", conversationId?: string, iceTransportPolicy?: RTCIceTransportPolicy, localStream?: MediaStream}} [options]
   */
  static async start(client, userIds, options = {}) {
    const call = new GroupCall(client, options);
    await call._media();
    /** @type {Record<string, any>} */
    const data = { calleeIds: userIds, media: call.media };
    if (options.conversationId) data.conversationId = options.conversationId;
    // Signaling that comes before the ICE servers (someone joining at once) waits for them.
    /** @type {(value?: any) => void} */
    let ready = () => undefined;
    call._inbox = new Promise((resolve) => (ready = resolve));
    call._listen();
    try {
      const reply = await client.request("call:initiate", data);
      call.callId = reply.callId;
      call._participants(reply.participants);
      call.iceServers = await client.iceServers({ callId: call.callId });
    } catch (error) {
      call._close("failed");
      throw error;
    } finally {
      ready();
    }
    if (call.state === "new") call._setState("ringing");
    return call;
  }

  /**
   * Joins a group call a `call:incoming` push (or `call:get-active`) announced: connects
   * to everyone already in.
   * @param {SwitchboardClient} client
   * @param {{callId: string, media: "audio" | "video", conversationId?: string | null}} incoming
   * @param {{iceTransportPolicy?: RTCIceTransportPolicy, localStream?: MediaStream}} [options]
   */
  static async join(client, incoming, options = {}) {
    const call = new GroupCall(client, { ...options, callId: incoming.callId, media: incoming.media, conversationId: incoming.conversationId });
    await call._media();
    call.iceServers = await client.iceServers({ callId: call.callId });
    call._listen();
    try {
      const reply = await client.request("call:join", { callId: call.callId });
      call._setState("active");
      for (const p of reply.participants) {
        if (p.userId !== client.userId && p.state === "joined") call._link(p.userId, true);
      }
      call._participants(reply.participants);
    } catch (error) {
      call._close("failed");
      throw error;
    }
    return call;
  }

  /** Declines a group call's ring. @param {SwitchboardClient} client @param {string} callId */
  static decline(client, callId) {
    return client.request("call:reject", { callId, reason: "declined" });
  }

  async _media() {
    this.localStream ??= await navigator.mediaDevices.getUserMedia({ audio: true, video: this.media === "video" });
    this._mediaJoined(this.client.userId);
  }

  /**
   * Every remote stream now, for a UI that attaches after some arrived (`track` events
   * tell the rest): `[{userId, stream, screen}]`.
   */
  remoteStreams() {
    return [...this.peers].flatMap(([userId, link]) => [...link.remote.streams.values()].map((s) => ({ userId, ...s })));
  }

  _connections() {
    return [...this.peers.values()].map((link) => link.pc);
  }

  /** @param {Array<{userId: string, state: string, media?: MediaState}>} participants */
  _participants(participants) {
    for (const p of participants) if (p.media) this.mediaState.set(p.userId, p.media);
  }

  /** @param {string} userId @param {boolean} offerer */
  _link(userId, offerer) {
    let link = this.peers.get(userId);
    if (!link) {
      link = new PeerLink(this, userId, offerer);
      this.peers.set(userId, link);
      this._emit("peer", { userId });
    }
    return link;
  }

  _listen() {
    /** @param {string} type @param {(d: any) => any} fn */
    const on = (type, fn) =>
      this._unsubscribe.push(
        this.client.on(type, (data) => {
          // Before call:initiate's reply names the call, its pushes wait (the inbox is
          // held until then) and are sorted out once the id is known.
          if (this.callId && data?.callId !== this.callId) return;
          this._inbox = this._inbox
            .then(() => (this.callId && data?.callId === this.callId ? fn(data) : undefined))
            .catch((error) => this._report(error));
        }),
      );
    on("call:offer", (d) => this._link(d.fromUserId, false).onDescription(d.offer));
    on("call:answered", (d) => this.peers.get(d.fromUserId)?.onDescription(d.answer));
    on("call:ice-candidate", (d) => this._link(d.fromUserId, false).onCandidate(d.candidate));
    on("call:participant-joined", (d) => {
      if (this.state === "ringing") this._setState("active");
      this._mediaJoined(d.userId);
      this._emit("joined", { userId: d.userId }); // it offers to us: its link comes with the offer
    });
    on("call:participant-left", (d) => this._drop(d.userId, d.reason ?? "left"));
    on("call:media", (d) => this._onMedia(d));
    on("call:recording", (d) => {
      this.recording = d.recording;
      this._emit("recording", { userId: d.userId, state: d.state, recording: d.recording });
    });
    on("call:error", (d) => {
      if (d.code === "peer_gone" && d.userId) this._drop(d.userId, "disconnected");
      this._emit("error", d);
    });
    on("call:ended", (d) => this._close(d.reason ?? "ended"));
    on("call:answered-elsewhere", () => this._close("answered_elsewhere"));
  }

  /** @param {string} userId @param {string} reason */
  _drop(userId, reason) {
    const link = this.peers.get(userId);
    this.peers.delete(userId);
    this.mediaState.delete(userId);
    link?.close();
    // Whoever leaves stops recording (the server pushes call:recording too, but a peer
    // dropped here for a peer_gone call:error may be ahead of it): no stale indicator.
    if (this.recording.includes(userId)) {
      this.recording = this.recording.filter((u) => u !== userId);
      this._emit("recording", { userId, state: "stopped", recording: this.recording });
    }
    this._emit("peerleft", { userId, reason });
  }

  /** A relayed candidate refused because its peer or the call moved on. @param {unknown} error */
  _refused(error) {
    if (error instanceof SwitchboardError && ["forbidden", "conflict", "not_found"].includes(error.code)) {
      this.refusedCandidates += 1;
    } else this._report(error);
  }

  /**
   * Records the call in this browser: announced first (`call:recording` started: every
   * participant is told and the conversation gets a system entry), then a MediaRecorder
   * of the call's streams (every voice mixed, the first peer's camera or our own).
   * @param {{mimeType?: string}} [options]
   */
  async startRecording(options = {}) {
    if (this.recorder) return;
    await this.client.request("call:recording", { callId: this.callId, state: "started" });
    const audio = new AudioContext();
    const mix = audio.createMediaStreamDestination();
    const streams = [this.localStream, ...[...this.peers.values()].map((l) => l.remote.camera)];
    for (const stream of streams) {
      if (stream?.getAudioTracks().length) audio.createMediaStreamSource(stream).connect(mix);
    }
    const video = streams.slice(1).concat(streams[0]).find((s) => s?.getVideoTracks().length)?.getVideoTracks()[0];
    const tracks = [...mix.stream.getAudioTracks(), ...(video ? [video] : [])];
    const mimeType = options.mimeType ?? (video ? "video/webm;codecs=vp8,opus" : "audio/webm;codecs=opus");
    const recorder = new MediaRecorder(new MediaStream(tracks), { mimeType });
    /** @type {Blob[]} */
    const chunks = [];
    recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
    this._recorded = new Promise((resolve) => {
      recorder.onstop = () => {
        audio.close().catch(() => undefined);
        resolve(new Blob(chunks, { type: mimeType.split(";")[0] }));
      };
    });
    recorder.start(1000);
    this.recorder = recorder;
    this._emit("recorder", { state: "started" });
  }

  /**
   * Stops recording, announces it, uploads the recording (PUT or multipart, with
   * progress) and posts it in the call's conversation. Resolves with the message.
   * @param {{onProgress?: (p: import("./switchboard.js").UploadProgress) => void}} [options]
   */
  async stopRecording(options = {}) {
    const recorder = this.recorder;
    if (!recorder) throw new SwitchboardError("bad_request", "not recording");
    this.recorder = null;
    recorder.stop();
    const blob = await /** @type {Promise<Blob>} */ (this._recorded);
    this._emit("recorder", { state: "stopped" });
    if (this.state !== "ended") {
      await this.client.request("call:recording", { callId: this.callId, state: "stopped" }).catch((e) => this._report(e));
    }
    if (!this.conversationId) throw new SwitchboardError("bad_request", "the call has no conversation to post the recording in");
    const done = await uploadFile(this.client, blob, {
      fileName: `call-${this.callId}.webm`,
      contentType: blob.type,
      purpose: "recording",
      callId: this.callId,
      onProgress: options.onProgress,
    });
    const attachment = { uploadId: done.uploadId, kind: "recording", durationMs: done.durationMs };
    return this.client.sendMessage(this.conversationId, "", { attachments: [attachment] });
  }

  /** Leaves (the others go on while two remain). */
  async leave() {
    if (this.state === "ended") return;
    const callId = this.callId;
    this._close("hangup");
    if (callId) await this.client.request("call:leave", { callId }).catch(() => undefined);
  }

  /** @param {string} reason */
  _close(reason) {
    if (this.state === "ended") return;
    for (const off of this._unsubscribe.splice(0)) off();
    if (this.recorder?.state === "recording") this.recorder.stop();
    for (const link of this.peers.values()) link.close();
    this.peers.clear();
    this._stopMedia();
    this._setState("ended");
    this._emit("ended", { reason });
  }

  /** Per peer: inbound video tracks decoding and their frames, the selected candidates. */
  async stats() {
    /** @type {Record<string, {framesDecoded: number, videoTracks: number, localCandidateType: string | null}>} */
    const out = {};
    for (const [userId, link] of this.peers) {
      const report = await link.pc.getStats();
      /** @type {Map<string, any>} */
      const byId = new Map();
      let framesDecoded = 0;
      let videoTracks = 0;
      let pairId = "";
      report.forEach((s) => {
        byId.set(s.id, s);
        if (s.type === "inbound-rtp" && s.kind === "video") {
          framesDecoded += s.framesDecoded ?? 0;
          if (s.framesDecoded > 0) videoTracks += 1;
        }
        if (s.type === "transport" && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
      });
      const pair = byId.get(pairId);
      out[userId] = { framesDecoded, videoTracks, localCandidateType: byId.get(pair?.localCandidateId)?.candidateType ?? null };
    }
    return out;
  }
}

// ====================================================================== voice messages

/**
 * Starts recording a voice message from the microphone (Opus in WebM or Ogg, whichever
 * this browser's MediaRecorder gives) while sampling its level for the waveform.
 * `stop()` resolves with the recording; `cancel()` drops it.
 * @param {{stream?: MediaStream, points?: number}} [options]
 */
export async function recordVoice(options = {}) {
  const stream = options.stream ?? (await navigator.mediaDevices.getUserMedia({ audio: true }));
  const mimeType = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus"].find((t) => MediaRecorder.isTypeSupported(t)) ?? "audio/webm";
  const recorder = new MediaRecorder(stream, { mimeType });
  const audio = new AudioContext();
  const analyser = audio.createAnalyser();
  analyser.fftSize = 512;
  audio.createMediaStreamSource(stream).connect(analyser);
  const samples = new Uint8Array(analyser.fftSize);
  /** @type {number[]} */
  const levels = [];
  const timer = setInterval(() => {
    analyser.getByteTimeDomainData(samples);
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s - 128));
    levels.push(Math.min(255, peak * 2));
  }, 50);
  /** @type {Blob[]} */
  const chunks = [];
  recorder.ondataavailable = (e) => e.data.size && chunks.push(e.data);
  const stopped = new Promise((resolve) => (recorder.onstop = resolve));
  recorder.start(250);
  const finish = async () => {
    clearInterval(timer);
    if (recorder.state !== "inactive") recorder.stop();
    await stopped;
    if (!options.stream) for (const track of stream.getTracks()) track.stop();
    await audio.close().catch(() => undefined);
  };
  return {
    mimeType,
    /** @returns {Promise<{blob: Blob, waveform: number[]}>} */
    async stop() {
      await finish();
      return { blob: new Blob(chunks, { type: mimeType.split(";")[0] }), waveform: downsample(levels, options.points ?? 64) };
    },
    cancel: finish,
  };
}

/**
 * Uploads a voice recording for `conversationId` and sends it as a `voice` attachment:
 * its duration is the one the server read from the container, with the waveform.
 * @param {SwitchboardClient} client
 * @param {string} conversationId
 * @param {{blob: Blob, waveform: number[]}} recording
 * @param {{onProgress?: (p: import("./switchboard.js").UploadProgress) => void}} [options]
 */
export async function sendVoiceMessage(client, conversationId, recording, options = {}) {
  const done = await uploadFile(client, recording.blob, {
    fileName: recording.blob.type === "audio/ogg" ? "voice.ogg" : "voice.webm",
    contentType: recording.blob.type,
    purpose: "voice",
    conversationId,
    onProgress: options.onProgress,
  });
  const attachment = { uploadId: done.uploadId, kind: "voice", durationMs: done.durationMs, waveform: recording.waveform };
  return client.sendMessage(conversationId, "", { attachments: [attachment] });
}

/** At most `points` levels (the loudest of each bucket). @param {number[]} levels @param {number} points */
export function downsample(levels, points) {
  if (levels.length <= points) return levels.map((v) => Math.round(v));
  const out = [];
  for (let i = 0; i < points; i++) {
    const bucket = levels.slice(Math.floor((i * levels.length) / points), Math.floor(((i + 1) * levels.length) / points));
    out.push(Math.round(Math.max(0, ...bucket)));
  }
  return out;
}
