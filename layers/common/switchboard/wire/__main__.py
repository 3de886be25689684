"""``python -m switchboard.wire``: the JSON Schema of the protocol on stdout.
``python -m switchboard.wire generate [--check] [--root DIR]``: writes every generated file
(switchboard/wire/codegen.py), or with ``--check`` lists the stale ones and exits 1."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from switchboard.wire import schema


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m switchboard.wire")
    sub = parser.add_subparsers(dest="command")
    generate = sub.add_parser("generate", help="write the files generated from the models")
    generate.add_argument("--check", action="store_true", help="only list stale files")
    generate.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    if args.command != "generate":
        print(json.dumps(schema(), indent=2, sort_keys=True))
        return 0
    from switchboard.wire import codegen

    if args.check:
        stale = codegen.stale(args.root)
        for path in stale:
            print(f"stale: {path.relative_to(args.root)} (run `make generate`)")
        return 1 if stale else 0
    for path in codegen.write(args.root):
        print(f"wrote {path.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
