"""The router: action -> handler, every failure a typed reply, never an exception."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import Field
from switchboard.errors import Forbidden
from switchboard.protocol import Omitted, PushData, WireData, WireMismatch, WireModel, push
from switchboard.router import Request, WebSocketRouter

from tests.support.events import frame, reply_of, ws_event


class Echo(WireModel):
    text: str = Field(max_length=10)


class Cursors(WireModel):
    cursors: dict[str, int] = Field(max_length=5000)


class Echoed(WireData):
    text: str
    user: str
    note: Omitted[str] = None


class Counted(WireData):
    count: int


class Admin(WireData):
    admin: bool


REPLIES: dict[str, type[WireData]] = {
    "echo": Echoed,
    "forbidden": Echoed,
    "cursors": Counted,
    "boom": Echoed,
    "whoami": Admin,
    "wrong": Echoed,
}


@pytest.fixture
def router() -> WebSocketRouter:
    router = WebSocketRouter(REPLIES)

    @router.action("echo", Echo)
    def echo(request: Request[Echo]) -> Echoed:
        return Echoed(text=request.data.text, user=request.caller.user_id)

    @router.action("forbidden", Echo)
    def refuse(request: Request[Echo]) -> Echoed:
        raise Forbidden("not yours")

    @router.action("cursors", Cursors)
    def cursors(request: Request[Cursors]) -> Counted:
        return Counted(count=len(request.data.cursors))

    @router.action("boom", Echo)
    def boom(request: Request[Echo]) -> Echoed:
        raise RuntimeError("secret internals")

    return router


def test_action_reply_carries_id_and_data(router: WebSocketRouter) -> None:
    reply = reply_of(router.resolve(ws_event("echo", body=frame("echo", {"text": "hi"}))))
    assert reply == {
        "type": "reply",
        "id": "r-1",
        "ok": True,
        "data": {"text": "hi", "user": "alice"},
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "bad_request"),
        ("[1, 2]", "bad_request"),
        ('"text"', "bad_request"),
        ("", "bad_request"),
        ('{"id": "r-1"}', "bad_request"),
        ('{"action": 5, "id": "r-1"}', "bad_request"),
        ('{"action": "echo", "id": "r-1", "data": []}', "bad_request"),
        ('{"action": "echo", "id": "r-1", "data": {"text": 1}}', "bad_request"),
        ('{"action": "echo", "id": "r-1", "data": {"text": "x", "extra": 1}}', "bad_request"),
        ('{"action": "echo", "id": "r-1", "data": {"text": "01234567890"}}', "bad_request"),
        ('{"action": "echo", "id": "r-1", "unexpected": true}', "bad_request"),
        ('{"action": "echo", "id": "r-1", "data": {"text": "\\ud800"}}', "bad_request"),
        ('{"action": "nope", "id": "r-1"}', "unknown_action"),
        ('{"action": "forbidden", "id": "r-1", "data": {"text": "x"}}', "forbidden"),
        ('{"action": "boom", "id": "r-1", "data": {"text": "x"}}', "internal"),
    ],
)
def test_failures_become_typed_replies(router: WebSocketRouter, body: str, code: str) -> None:
    reply = reply_of(router.resolve(ws_event("$default", body=body)))
    assert reply["ok"] is False
    assert reply["error"]["code"] == code
    assert "secret internals" not in reply["error"]["message"]
    if body.startswith('{"action"') or body.startswith('{"id"'):
        assert reply["id"] == "r-1"


def test_validation_details_name_the_field_without_echoing_input(router: WebSocketRouter) -> None:
    body = frame("echo", {"text": "<script>alert(1)</script>"})
    reply = reply_of(router.resolve(ws_event("echo", body=body)))
    assert reply["error"]["details"][0]["field"] == "data.text"
    assert "<script>" not in str(reply)


def test_surrogate_pairs_are_fine(router: WebSocketRouter) -> None:
    body = '{"action": "echo", "id": "r-1", "data": {"text": "\\ud83d\\ude42"}}'
    assert reply_of(router.resolve(ws_event("echo", body=body)))["data"]["text"] == "🙂"


def test_validation_details_never_reflect_client_chosen_keys(router: WebSocketRouter) -> None:
    hostile = {f"{'🙂' * 20}{i}": "x" for i in range(2000)}  # ~170 KB of keys, all invalid
    body = json.dumps({"action": "cursors", "id": "r-1", "data": {"cursors": hostile}})
    response = router.resolve(ws_event("cursors", body=body))
    reply = reply_of(response)
    assert reply["error"]["code"] == "bad_request"
    assert len(response["body"]) < 4000
    assert "🙂" not in response["body"] and "\\ud83d" not in response["body"]
    assert {d["field"] for d in reply["error"]["details"]} == {"data.cursors.*"}


def test_a_connection_without_token_expiry_counts_as_expired(router: WebSocketRouter) -> None:
    event = ws_event("echo", body=frame("echo", {"text": "x"}), token_exp=0)
    assert reply_of(router.resolve(event))["error"]["code"] == "token_expired"


def test_expired_token_gets_token_expired(router: WebSocketRouter) -> None:
    event = ws_event("echo", body=frame("echo", {"text": "x"}), token_exp=int(time.time()) - 1)
    reply = reply_of(router.resolve(event))
    assert reply["error"]["code"] == "token_expired"


def test_roles_arrive_as_a_set(router: WebSocketRouter) -> None:
    seen = []

    @router.action("whoami", Echo)
    def whoami(request: Request[Echo]) -> Admin:
        seen.append(request.caller.roles)
        return Admin(admin=request.caller.is_admin)

    reply = reply_of(
        router.resolve(ws_event("whoami", body=frame("whoami", {"text": "x"}), roles="admin,ops"))
    )
    assert reply["data"] == {"admin": True}
    assert seen == [frozenset({"admin", "ops"})]


def test_registering_an_action_twice_is_refused(router: WebSocketRouter) -> None:
    with pytest.raises(ValueError, match="twice"):
        router.action("echo", Echo)(lambda r: Echoed(text="x", user="y"))


def test_an_action_without_a_reply_model_cannot_be_registered(router: WebSocketRouter) -> None:
    with pytest.raises(ValueError, match="no reply model"):
        router.action("unmodelled", Echo)


def test_a_reply_of_another_model_is_an_internal_error_not_sent(
    router: WebSocketRouter,
) -> None:
    # Given a handler that returns another action's reply model (a server bug)
    @router.action("wrong", Echo)
    def wrong(request: Request[Echo]) -> Echoed:
        return Counted(count=1)  # type: ignore[return-value]

    # When it is called, the client gets `internal` and none of the mismatched data
    reply = reply_of(router.resolve(ws_event("wrong", body=frame("wrong", {"text": "x"}))))
    assert reply["ok"] is False
    assert reply["error"]["code"] == "internal"
    assert "count" not in json.dumps(reply)


def test_omitted_fields_are_left_out_and_others_kept_in_declaration_order() -> None:
    assert list(Echoed(text="x", user="y").wire()) == ["text", "user"]
    assert list(Echoed(text="x", user="y", note="n").wire()) == ["text", "user", "note"]
    assert "null" not in json.dumps(Echoed.model_json_schema()["properties"]["note"])


def test_lifecycle_routes_return_200_without_body(router: WebSocketRouter) -> None:
    calls = []
    router.on_connect(lambda e: calls.append(e.request_context.connection_id))
    assert router.resolve(ws_event("$connect")) == {"statusCode": 200}
    assert router.resolve(ws_event("$disconnect")) == {"statusCode": 200}
    assert calls == ["conn-1"]


def test_a_payload_that_would_not_parse_back_is_never_sent() -> None:
    # Given a model whose field is left out when empty but is required (a modelling bug)
    class Broken(WireData):
        note: Omitted[str]

    # Then serialising it fails loudly instead of sending what a client cannot parse
    with pytest.raises(WireMismatch, match="Broken"):
        Broken(note=None).wire()
    assert Broken(note="x").wire() == {"note": "x"}


def test_a_push_frame_takes_its_type_from_its_model() -> None:
    class Pinged(PushData):
        TYPE = "test:pinged"
        n: int

    assert push(Pinged(n=1)) == {"type": "test:pinged", "data": {"n": 1}}


@pytest.mark.parametrize(
    "body",
    [
        "[" * 50_000,  # the reviewer's frame: RecursionError in json.loads
        "{" + '"a":{' * 25_000,
        '{"action": "echo", "id": "r-1", "data": {"text": ' + "[" * 50_000 + "]" * 50_000 + "}}",
        # Shallow enough for json.loads, deeper than any real frame: refused all the same.
        '{"action": "echo", "id": "r-1", "data": {"text": ' + "[" * 40 + "]" * 40 + "}}",
    ],
)
def test_deep_nesting_gets_bad_request(router: WebSocketRouter, body: str) -> None:
    # Given a frame nested far deeper than any real one
    # When it reaches the router
    reply = reply_of(router.resolve(ws_event("$default", body=body)))
    # Then it gets one typed refusal, not `internal`
    assert reply["ok"] is False
    assert reply["error"]["code"] == "bad_request"
    assert "nested deeper" in reply["error"]["message"]


def test_brackets_inside_strings_are_not_nesting(router: WebSocketRouter) -> None:
    # Keys full of brackets, quotes and escapes: over the quick count, under the real depth.
    keys = {f'{i}"[{{\\[': i for i in range(40)}
    body = json.dumps({"action": "cursors", "id": "r-1", "data": {"cursors": keys}})
    assert body.count("[") > 40
    assert reply_of(router.resolve(ws_event("cursors", body=body)))["data"] == {"count": 40}


@pytest.mark.timeout(60)  # the quadratic scan it replaces needed minutes for this frame
@pytest.mark.parametrize("tail", ['\\"', '"', "\\"])
def test_unterminated_strings_are_counted_in_one_pass(router: WebSocketRouter, tail: str) -> None:
    # Given a frame at API Gateway's message limit: enough brackets to be counted, then
    # an unterminated string full of escaped (or bare) quotes
    body = "[" * 33 + '"' + tail * ((127 * 1024) // len(tail))
    # When it reaches the router
    reply = reply_of(router.resolve(ws_event("$default", body=body)))
    # Then it is refused as too deep, with one typed reply (not a timed-out invocation)
    assert reply["ok"] is False
    assert reply["error"]["code"] == "bad_request"
    assert "nested deeper" in reply["error"]["message"]
