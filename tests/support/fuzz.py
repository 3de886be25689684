"""Hostile WebSocket frames for every action (Hypothesis), shared by the in-process and the
devserver fuzz tests, and the one rule every reply must satisfy.

A frame is built from the action's own JSON Schema (``switchboard.wire``), so a new
action is fuzzed without a line here: valid shapes with hostile values, then the same
with a field dropped, an unknown field added or a value replaced by garbage, whole
garbage ``data``, and frames that are not frames at all.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
from typing import Any

from hypothesis import strategies as st
from switchboard.errors import ErrorCode
from switchboard.protocol import MAX_NESTING_DEPTH, nesting_depth
from switchboard.wire import all_actions

# make test runs a bounded number; `make fuzz` raises it (FUZZ_EXAMPLES=...).
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
MAX_REPLY_BYTES = 128 * 1024
ERROR_CODES = frozenset(code.value for code in ErrorCode) - {"internal"}

INJECTIONS = [
    "",
    " ",
    "\x00",
    "\ud800",  # a lone surrogate: valid JSON, not encodable as UTF-8
    "\u202e\u2066",
    "🙂" * 300,
    "a" * 40_000,  # over API Gateway's 32 KB frame
    "'; DROP TABLE users; --",
    '" OR 1=1 --',
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/x}",
    "{{7*7}}",
    "%s%s%s%n",
    "../../../etc/passwd",
    "#meta",
    "member#admin",
    "null",
    "NaN",
]

# SDP and ICE must be ASCII (RFC 8839): what a hostile peer would put in them instead.
NON_ASCII_SIGNALING = [
    "\U0001f600" * 1000,  # 12 bytes each once JSON-escaped
    "candidate:1 1 udp 2122260223 192.168.1.2 5000 typ host \u00e9",
    "v=0\r\ns=\u202e\r\n",
    "a=ice-ufrag:\x00",
    "\ud800",
]

hostile_strings = st.one_of(st.sampled_from(INJECTIONS), st.text(max_size=40))
hostile_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_strings,
)
hostile_json = st.recursive(
    hostile_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(hostile_strings, children, max_size=4),
    ),
    max_leaves=12,
)


def from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A strategy for values valid against ``schema``, for the JSON Schema subset pydantic
    emits (hypothesis-jsonschema 0.23 does not run on Hypothesis 6.170)."""
    root = root or schema
    if "$ref" in schema:
        return from_schema(root["$defs"][schema["$ref"].rsplit("/", 1)[1]], root)
    if "anyOf" in schema:
        return st.one_of([from_schema(option, root) for option in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            limit = schema.get("maxLength", 64)
            return st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: schema.get("minLength", 0) <= len(s) <= limit
            )
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 64))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        return st.lists(
            from_schema(schema.get("items", {}), root),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 5), 5),
        )
    if kind == "object" and "properties" not in schema:
        values = schema.get("additionalProperties")
        return st.dictionaries(
            st.text(max_size=20),
            from_schema(values, root) if isinstance(values, dict) else hostile_scalars,
            max_size=min(schema.get("maxProperties", 5), 5),
        )
    if kind == "object":
        required = set(schema.get("required", ()))
        fields = {name: from_schema(sub, root) for name, sub in schema["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    return hostile_json


def _valid_data(action: str) -> st.SearchStrategy[dict[str, Any]]:
    strategy: st.SearchStrategy[dict[str, Any]] = from_schema(
        all_actions()[action].model_json_schema()
    )
    return strategy


@st.composite
def _mutated(draw: st.DrawFn, action: str) -> dict[str, Any]:
    data = dict(draw(_valid_data(action)))
    mutation = draw(st.sampled_from(["drop", "extra", "replace", "none"]))
    keys = sorted(data)
    if mutation == "drop" and keys:
        data.pop(draw(st.sampled_from(keys)))
    elif mutation == "extra":
        data[draw(hostile_strings)] = draw(hostile_json)
    elif mutation == "replace" and keys:
        data[draw(st.sampled_from(keys))] = draw(hostile_json)
    return data


@st.composite
def data_for(draw: st.DrawFn, action: str, known: dict[str, list[str]]) -> Any:
    """``data`` for ``action``; ``known`` maps field names to real values (a conversation
    the caller belongs to, ...) that replace generated ones now and then, so fuzzing also
    reaches the paths behind the existence and membership checks."""
    data = draw(st.one_of(_valid_data(action), _valid_data(action), _mutated(action), hostile_json))
    if isinstance(data, dict):
        for name, values in known.items():
            if name in data and values and draw(st.booleans()):
                data[name] = draw(st.sampled_from(values))
        for key in ("offer", "answer"):
            if isinstance(data.get(key), dict) and draw(st.booleans()):
                data[key] = {**data[key], "sdp": draw(st.sampled_from(NON_ASCII_SIGNALING))}
        if isinstance(data.get("candidate"), dict) and draw(st.booleans()):
            field = draw(st.sampled_from(["candidate", "sdpMid", "usernameFragment"]))
            data["candidate"] = {
                **data["candidate"],
                field: draw(st.sampled_from(NON_ASCII_SIGNALING)),
            }
        if "cursor" in data and draw(st.booleans()):
            # A cursor is opaque base64 of JSON: hostile JSON inside valid base64 reaches
            # the decoder, where random text would stop at the base64 step.
            data["cursor"] = draw(hostile_json.map(_b64_json))
    return data


def _b64_json(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


_serial = itertools.count(1)


def unique_ids() -> st.SearchStrategy[str]:
    """Request ids that are arbitrary text yet never repeat (a counter after the text):
    with a reused id, an extra or a missing reply would go unseen."""
    return st.builds(lambda text: f"{text}#{next(_serial)}", st.text(max_size=20))


def _nested(depth: int, opener: str, where: str, action: str) -> str:
    """Arrays/objects nested ``depth`` deep, as the whole frame or inside ``data``."""
    open_, close = {"[": ("[", "]"), "{": ('{"a":', "}")}[opener]
    deep = open_ * depth + "0" + close * depth
    if where == "frame":
        return deep
    frame = {"action": action, "id": f"nested#{next(_serial)}", "data": {"x": 0}}
    return json.dumps(frame).replace("0}}", deep + "}}")


def deeply_nested(action: str) -> st.SearchStrategy[str]:
    """Nesting past the budget (protocol.MAX_NESTING_DEPTH), up to the reviewer's 50,000."""
    return st.builds(
        _nested,
        st.sampled_from([33, 200, 1_500, 20_000]),
        st.sampled_from(["[", "{"]),
        st.sampled_from(["frame", "data"]),
        st.just(action),
    ) | st.just("[" * 50_000)


def frames(action: str, known: dict[str, list[str]]) -> st.SearchStrategy[str]:
    """Raw WebSocket text: mostly frames for ``action``, sometimes malformed ones."""
    request_id = unique_ids()
    good = st.builds(
        lambda rid, data: json.dumps({"action": action, "id": rid, "data": data}),
        request_id,
        data_for(action, known),
    )
    bad = st.one_of(
        hostile_json.map(json.dumps),
        st.text(max_size=60),
        st.builds(
            lambda junk: json.dumps({"action": action, "id": junk, "data": {}}), hostile_json
        ),
        st.builds(lambda junk: json.dumps({"action": action, "data": junk}), hostile_json),
        deeply_nested(action),
    )
    return st.one_of(good, good, good, bad)


def check_reply(raw_frame: str, body: str) -> dict[str, Any]:
    """The one rule: a typed reply frame (never ``internal``), within API Gateway's size
    limit, echoing the request id when the frame had a usable one."""
    assert len(body.encode()) <= MAX_REPLY_BYTES, "reply larger than API Gateway allows"
    reply: dict[str, Any] = json.loads(body)
    assert reply["type"] == "reply", reply
    assert isinstance(reply["ok"], bool), reply
    if not reply["ok"]:
        assert reply["error"]["code"] in ERROR_CODES, (raw_frame[:300], reply)
        assert isinstance(reply["error"]["message"], str)
    if nesting_depth(raw_frame) > MAX_NESTING_DEPTH:
        # Refused before decoding (so without its id): one bad_request, never a crash.
        assert not reply["ok"] and reply["error"]["code"] == "bad_request", reply
        return reply
    try:
        sent = json.loads(raw_frame)
    except ValueError:
        return reply
    if isinstance(sent, dict) and isinstance(sent.get("id"), str) and 0 < len(sent["id"]) <= 128:
        assert reply["id"] == sent["id"], (raw_frame[:300], reply)
    return reply
