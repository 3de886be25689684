"""The data models of every client action, one module per feature. docs/protocol.md and
the JSON Schema (``python -m switchboard.wire``) are generated from them."""

from __future__ import annotations

from typing import Any

from switchboard.protocol import EmptyData, ReplyFrame, RequestFrame, WireModel


def all_actions() -> dict[str, type[WireModel]]:
    from switchboard.wire import calls, messaging, search, sessions, uploads

    return {
        "ping": EmptyData,
        "preferences:get": EmptyData,
        **calls.ACTIONS,
        **messaging.ACTIONS,
        **search.ACTIONS,
        **sessions.ACTIONS,
        **uploads.ACTIONS,
    }


def schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Switchboard wire protocol",
        "frames": {
            "request": RequestFrame.model_json_schema(),
            "reply": ReplyFrame.model_json_schema(),
        },
        "actions": {
            name: model.model_json_schema() for name, model in sorted(all_actions().items())
        },
    }
