// Unit tests of web/calls.js's pure parts (the WebRTC and MediaRecorder parts run in real
// Chromium: tests/browser/test_group_calls.py).
// Run: node --test web/tests/  (tests/unit/test_js_client.py runs it under pytest).
import assert from "node:assert/strict";
import { test } from "node:test";

import { SHAPES } from "../protocol.js";
import { downsample, GroupCall } from "../calls.js";

test("a waveform keeps at most the wire's points, the loudest of each bucket", () => {
  const levels = Array.from({ length: 200 }, (_, i) => (i % 50 === 7 ? 250 : i % 10));
  const points = downsample(levels, 64);
  assert.equal(points.length, 64);
  assert.ok(points.every((v) => Number.isInteger(v) && v >= 0 && v <= 255));
  assert.equal(points.filter((v) => v === 250).length, 4); // every peak survives
  assert.deepEqual(downsample([1.4, 2.6], 64), [1, 3]); // short: rounded, kept as is
  assert.deepEqual(downsample([], 64), []);
});

test("a voice message's fields are the wire's", () => {
  // what sendVoiceMessage() attaches, as a message carries it back (MessageAttachment)
  const shape = SHAPES.MessageAttachment;
  for (const name of ["uploadId"]) assert.ok(shape.required.includes(name), name);
  for (const name of ["kind", "durationMs", "waveform"]) assert.ok(shape.optional.includes(name), name);
});

test("a recorder who leaves is no longer shown as recording", () => {
  // (the server drops them from the call's `recording` without a call:recording push)
  const client = /** @type {any} */ ({ userId: "alice", on: () => () => undefined });
  const call = new GroupCall(client, { callId: "c1" });
  call.recording = ["bob", "carol"];
  /** @type {any[]} */
  const seen = [];
  call.on("recording", (e) => seen.push(e));
  call._drop("bob", "left");
  assert.deepEqual(call.recording, ["carol"]);
  assert.deepEqual(seen, [{ userId: "bob", state: "stopped", recording: ["carol"] }]);
  call._drop("dave", "left"); // not recording: nothing to say
  assert.equal(seen.length, 1);
});
