"""Repository-wide pytest set-up: make the repo importable as ``services``
and ``tests.support`` regardless of how pytest was started."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Tests name their servers and credentials themselves. A developer's
# ~/.kyb/config (written by `make cluster`, with TLS credentials) or
# KYB_SERVER must not leak into the daemons and clients they start.
import os  # noqa: E402

os.environ["KYB_CONFIG"] = str(ROOT / "tests" / "no-such-client-config")
os.environ.pop("KYB_SERVER", None)
