"""The data models of every client action, one module per feature. docs/protocol.md and
the JSON Schema (``python -m switchboard.wire``) are generated from them."""
