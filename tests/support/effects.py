"""The one oracle of a refusal: nothing happened, to anyone.

A refused request must leave no push on any connection (owner, member, stranger, or a
connection nobody watches), no queue message, no e-mail, no object, and no change in any
table (Users, Notifications and RateLimits included). Comparing stored items misses the
pushes (a planted bug that pushed a fake typing indicator before answering `forbidden`
passed every typing test). So the tests read the effect log of the embedded AWS
(devserver/effects.py): every successful request that is not a pure read - DynamoDB and
SQS writes, S3 and SES, management-API posts and deletes - with the function that made it.
Every change anywhere goes through one, so an empty window proves the refusal did nothing.

    window = effects.window()          # before the request
    reply = ...                        # the request, answered
    window.assert_nothing_happened("typing:start by a non-member")

`InProcess()` reads the log of this process's moto (tests/integration's `stack`), where
nothing runs but the handler under test. `Devserver(ds)` reads `/__devserver/effects`;
there the consumers of streams and queues keep working in the background, so a window
looks at the route functions only (what the request's own invocation did: any
consequence in the background would have to start from one of its effects), after
waiting for their workers to be idle.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Protocol

from devserver.effects import EFFECTS

# The functions API Gateway invokes for a request (WebSocket routes, the authorizer).
ROUTE_FUNCTIONS = frozenset(
    {"AuthorizerFunction", "ConnectionFunction", "MessageFunction", "SignalingFunction"}
    | {"UploadFunction"}
)
SETTLE_SECONDS = 30.0


class EffectSource(Protocol):
    def after(self, seq: int) -> dict[str, Any]: ...

    def settle(self) -> None: ...

    def keep(self, effect: dict[str, Any]) -> bool: ...


class InProcess:
    """The effect log of the moto server in this process (tests/integration)."""

    def after(self, seq: int) -> dict[str, Any]:
        return EFFECTS.after(seq)

    def settle(self) -> None:
        """In-process, every handler has returned when the test goes on."""

    def keep(self, effect: dict[str, Any]) -> bool:
        return True

    def window(self, names: dict[str, str] | None = None) -> Window:
        return Window(self, names or {})


@dataclass
class Devserver:
    """The effect log of a running devserver (tests/e2e), through its HTTP port."""

    http: str
    functions: frozenset[str] = ROUTE_FUNCTIONS

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.http + path, timeout=10) as response:
            return json.loads(response.read())

    def after(self, seq: int) -> dict[str, Any]:
        result: dict[str, Any] = self._get(f"/__devserver/effects?after={seq}")
        return result

    def settle(self) -> None:
        """Waits (bounded) until no route function is busy: a `$disconnect` of a socket
        closed earlier must not land in the next window."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            pools = self._get("/__devserver/workers")
            busy = {
                name: pool
                for name, pool in pools.items()
                if name in self.functions
                and (
                    pool["starting"] or pool["idle"] < sum(1 for w in pool["workers"] if w["alive"])
                )
            }
            if not busy:
                return
            assert time.monotonic() < deadline, f"route functions still busy: {busy}"
            time.sleep(0.05)

    def keep(self, effect: dict[str, Any]) -> bool:
        return effect["function"] in self.functions

    def window(self, names: dict[str, str] | None = None) -> Window:
        return Window(self, names or {})


@dataclass
class Window:
    """The effects from its creation on; ``names`` turns connection ids into roles in the
    report (``{connection_id: "member"}``)."""

    source: EffectSource
    names: dict[str, str] = field(default_factory=dict)
    start: int = -1

    def __post_init__(self) -> None:
        self.source.settle()
        self.start = self.source.after(2**62)["last"]

    def all_effects(self) -> list[dict[str, Any]]:
        """Every effect of the window, the background's included."""
        result = self.source.after(self.start)
        assert result["complete"], "the effect log dropped part of this window"
        effects: list[dict[str, Any]] = result["effects"]
        return effects

    def effects(self) -> list[dict[str, Any]]:
        """The effects a request's own invocation could have made (see the module doc)."""
        return [e for e in self.all_effects() if self.source.keep(e)]

    def pushes(self) -> list[dict[str, Any]]:
        return [e for e in self.effects() if e["operation"] == "PostToConnection"]

    def assert_nothing_happened(self, what: str) -> None:
        effects = self.effects()
        assert not effects, f"{what} was refused, yet it had effects:\n" + "\n".join(
            f"  {e['function']}: {e['service']} {e['operation']} "
            f"{self.names.get(e['target'], e['target'])}"
            for e in effects
        )
