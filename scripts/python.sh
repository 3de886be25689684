#!/usr/bin/env bash
# Prints the newest suitable Python interpreter: python3.13, else 3.12, else 3.11
# (pyenv installs are looked up directly, because their shims may be inactive).
set -euo pipefail
for v in 3.13 3.12 3.11; do
  if command -v "python$v" >/dev/null 2>&1 && "python$v" -c 'import sys' >/dev/null 2>&1; then
    command -v "python$v"; exit 0
  fi
  for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/"python$v"; do
    if [ -x "$p" ]; then echo "$p"; exit 0; fi
  done
done
echo "no python3.13/3.12/3.11 found" >&2
exit 1
