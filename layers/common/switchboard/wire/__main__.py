"""Prints the JSON Schema of every client action's `data` and of the frames:
``python -m switchboard.wire > docs/protocol.schema.json``."""

from __future__ import annotations

import json

from switchboard.wire import schema

if __name__ == "__main__":
    print(json.dumps(schema(), indent=2, sort_keys=True))
