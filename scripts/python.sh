#!/usr/bin/env bash
# Prints the newest suitable Python interpreter: python3.13, else 3.12, else 3.11
# (pyenv installs are looked up directly, because their shims may be inactive).
# `scripts/python.sh 3.13` prints only a 3.13 (sam build needs the Lambda runtime's).
set -euo pipefail
versions=("$@")
((${#versions[@]})) || versions=(3.13 3.12 3.11)
for v in "${versions[@]}"; do
  if command -v "python$v" >/dev/null 2>&1 && "python$v" -c 'import sys' >/dev/null 2>&1; then
    command -v "python$v"; exit 0
  fi
  for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/"python$v"; do
    if [ -x "$p" ]; then echo "$p"; exit 0; fi
  done
done
echo "no python${versions[*]} found" >&2
exit 1
