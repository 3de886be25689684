"""The wire contract, one module per feature: every client action's request model (its
``data``), its reply model, and every server push. Services return these models and the
router serialises them; docs/protocol.md's tables, docs/protocol.schema.json,
docs/asyncapi.json, web/protocol.js and switchboard_client/wire.py are generated
from them (``make generate``, i.e. ``python -m switchboard.wire``)."""

from __future__ import annotations

from typing import Any

from switchboard.protocol import (
    EmptyData,
    ErrorBody,
    PushData,
    ReplyFrame,
    RequestFrame,
    WireData,
    WireModel,
)

# Feature modules, in the order the docs present them.
FEATURES = ("sessions", "messaging", "membership", "message_ops", "search", "calls", "uploads")


def _modules() -> dict[str, Any]:
    from switchboard.wire import (
        calls,
        membership,
        message_ops,
        messaging,
        search,
        sessions,
        uploads,
    )

    return {
        "sessions": sessions,
        "messaging": messaging,
        "membership": membership,
        "message_ops": message_ops,
        "search": search,
        "calls": calls,
        "uploads": uploads,
    }


def all_actions() -> dict[str, type[WireModel]]:
    """action -> model of its request's ``data``."""
    found: dict[str, type[WireModel]] = {"ping": EmptyData, "preferences:get": EmptyData}
    for module in _modules().values():
        found.update(module.ACTIONS)
    return found


def all_replies() -> dict[str, type[WireData]]:
    """action -> model of its reply's ``data``."""
    found: dict[str, type[WireData]] = {}
    for module in _modules().values():
        found.update(module.REPLIES)
    return found


def all_pushes() -> dict[str, type[PushData]]:
    """push type -> model of its ``data``."""
    found: dict[str, type[PushData]] = {}
    for module in _modules().values():
        for model in getattr(module, "PUSHES", ()):
            if model.TYPE in found:
                raise ValueError(f"push type {model.TYPE!r} defined twice")
            found[model.TYPE] = model
    return found


def feature_of(name: str) -> str:
    """The feature module that defines an action or push type."""
    for feature, module in _modules().items():
        pushes = {m.TYPE for m in getattr(module, "PUSHES", ())}
        if name in module.REPLIES or name in pushes:
            return feature
    raise KeyError(name)


def schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Switchboard wire protocol",
        "frames": {
            "request": RequestFrame.model_json_schema(),
            "reply": ReplyFrame.model_json_schema(),
            "error": ErrorBody.model_json_schema(),
        },
        "actions": {
            name: model.model_json_schema() for name, model in sorted(all_actions().items())
        },
        "replies": {
            name: model.model_json_schema() for name, model in sorted(all_replies().items())
        },
        "pushes": {name: model.model_json_schema() for name, model in sorted(all_pushes().items())},
    }
