"""What each WebSocket function's cold start imports and builds (docs/performance.md,
section 1): its handler module is imported the way the bench measures it (a fresh,
isolated process, only its CodeUri and the layer on sys.path, the template's
environment), and the modules it must not load, or the models it must not build yet, are
checked in that process's sys.modules. Mechanisms, not timings."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from typing import Any

import pytest

from bench import ROOT, coldstart

# Heavy modules no WebSocket function's cold path needs.
NEVER = (
    "fastapi",
    "mangum",
    "PIL",
    "aws_xray_sdk",
    "aws_lambda_powertools.utilities.parameters",
    "switchboard.analytics",
    "switchboard.images",
    "pydantic.type_adapter",  # the cursor adapters are built on the first paged request
)
# function -> switchboard modules its cold start must not load
NOT_LOADED = {
    "UploadFunction": (
        "switchboard.calls",  # a recording's upload:start loads the call code
        "switchboard.wire.calls",
        "switchboard.wire.messaging",
        "switchboard.messaging",
    ),
    "SignalingFunction": ("switchboard.wire.messaging", "switchboard.messaging"),
    "SearchFunction": ("switchboard.wire.messaging", "switchboard.messaging"),
    "ConnectionFunction": ("switchboard.wire.messaging", "switchboard.messaging"),
    "AuthorizerFunction": ("switchboard.router", "switchboard.wire", "switchboard.messaging"),
    "MessageFunction": ("switchboard.calls", "switchboard.search"),
}

_PROBE = r"""
import json, sys
sys.path[:0] = sys.argv[1].split("\x1f")
__import__(sys.argv[2])
config = sys.modules["switchboard.config"]
settings = {
    name: cls.__pydantic_complete__
    for name, cls in vars(config).items()
    if isinstance(cls, type) and name.endswith("Settings")
}
wire = {}
for module in ("switchboard.wire.messaging", "switchboard.wire.uploads"):
    if module in sys.modules:
        for name, cls in vars(sys.modules[module]).items():
            if getattr(cls, "__module__", None) == module and hasattr(cls, "model_fields"):
                wire[module + "." + name] = cls.__pydantic_complete__
print(json.dumps({"modules": sorted(sys.modules), "settings": settings, "wire": wire}))
"""


@cache
def _probe(function: str) -> dict[str, Any]:
    template = coldstart.load_template(ROOT)
    subject = next(s for s in coldstart.subjects(template) if s.name == function)
    completed = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE, "\x1f".join(subject.paths), subject.module],
        env=subject.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    found: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return found


def _loaded(modules: list[str], name: str) -> list[str]:
    return [m for m in modules if m == name or m.startswith(name + ".")]


def test_the_probed_functions_are_the_websocket_functions() -> None:
    assert set(NOT_LOADED) == coldstart.websocket_functions(coldstart.load_template(ROOT))


@pytest.mark.parametrize("function", sorted(NOT_LOADED))
def test_cold_start_leaves_out_what_its_common_path_does_not_need(function: str) -> None:
    modules = _probe(function)["modules"]
    assert "switchboard.config" in modules  # the probe saw a real cold start
    for name in (*NEVER, *NOT_LOADED[function]):
        assert _loaded(modules, name) == [], f"{function} imports {name}"


@pytest.mark.parametrize(
    ("function", "own"),
    [
        ("MessageFunction", "MessagingSettings"),
        ("UploadFunction", "UploadSettings"),
        ("AuthorizerFunction", "AuthorizerSettings"),
    ],
)
def test_only_the_functions_own_settings_model_is_built_and_it_is_at_cold_start(
    function: str, own: str
) -> None:
    # Validated at cold start (a misconfigured function fails there, not on a request);
    # every other function's settings model stays unbuilt (defer_build).
    settings = _probe(function)["settings"]
    assert settings.pop(own) is True
    assert settings, "no other settings model to compare with"
    assert set(settings.values()) == {False}


def test_wire_models_are_built_on_first_use_not_at_import() -> None:
    wire = _probe("MessageFunction")["wire"]
    assert "switchboard.wire.messaging.MessageSend" in wire
    assert set(wire.values()) == {False}


def test_the_search_stemmer_is_snowballs_c_implementation() -> None:
    modules = _probe("SearchFunction")["modules"]
    assert "Stemmer" in modules  # PyStemmer, which snowballstemmer hands "english" to
    assert _loaded(modules, "snowballstemmer.english_stemmer") == []
