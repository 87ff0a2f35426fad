"""Repository-wide pytest set-up: make the repo importable as ``services``
and ``tests.support`` regardless of how pytest was started."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
