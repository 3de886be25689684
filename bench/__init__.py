"""Switchboard's benchmarks: cold start, AWS calls and cost per operation,
fan-out, end-to-end latency through the devserver, offline backlog, cost model.

``python -m bench --quick --out r.json`` (under a minute) or ``make bench`` (full). Each
figure is measured in the same run as its baseline and reported as a ratio where the
machine's noise would otherwise decide. See docs/performance.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The shared layer is importable as Lambda's /opt/python makes it (pytest's `pythonpath`
# does the same for the tests); the bench drives the layer's real gateway and handlers.
_LAYER = str(ROOT / "layers" / "common")
if _LAYER not in sys.path:
    sys.path.append(_LAYER)
