"""Run a script under Triton's CPU interpreter in a child process (TRITON_INTERPRET must be set
before triton is imported) and return the JSON it prints after `RESULT`."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

import pytest

HAS_TRITON = importlib.util.find_spec("triton") is not None
LIB = os.path.join(os.path.dirname(__file__), "..", "lib")


def run_interpreted(script: str, *args: str, skip_reason: str = "triton is not installed") -> Any:
    if not HAS_TRITON:
        pytest.skip(skip_reason)
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join([LIB, os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])
