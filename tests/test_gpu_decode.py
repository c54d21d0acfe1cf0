"""The GPU decode benchmark's --smoke mode runs on CPU, so the script stays correct without a GPU.

Fewer layers than the shape has are built on purpose, to run the per-layer extrapolation too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_decode_smoke_runs_every_measurement() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.gpu_decode",
            "--smoke",
            "--max-layers",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    for expected in (
        "device copy bandwidth",
        "model: 3/4 layers",
        "ms/token with 3 layers; bandwidth floor",
        "extrapolated to 4 layers",
        "prefill of 96 tokens",
        "pass over n tokens / pass over 1",
        "projected speculative speed-up",
        "with KV reuse (97 cached + 20 new)",
        "same tokens: True",
    ):
        assert expected in out.stdout, (expected, out.stdout)
