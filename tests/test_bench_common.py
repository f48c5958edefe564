"""The benchmarks' shared helpers, and bench/queue.py living beside scripts that import `queue`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench._common import PROCFILE, percentile, procfile_web

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0), (1.0, 100.0), (0.0, 1.0)]
)
def test_percentile_is_the_nearest_rank_of_what_was_measured(
    fraction: float, expected: float
) -> None:
    samples = [float(n) for n in range(100, 0, -1)]  # 1 … 100, out of order
    assert percentile(samples, fraction) == expected


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 0.5)


def test_the_procfile_web_line_is_run_on_loopback_with_its_own_options() -> None:
    command = procfile_web(12345, "bench_app")
    assert command[:3] == [sys.executable, "-m", "gunicorn"]
    assert command[command.index("--bind") + 1] == "127.0.0.1:12345"
    assert command[-1] == "bench_app:app"
    web = next(line for line in PROCFILE.read_text().splitlines() if line.startswith("web:"))
    for option in ("--worker-class", "gthread", "--workers", "--threads"):
        assert option in web
        assert option in command


def test_a_script_in_bench_still_gets_the_standard_librarys_queue() -> None:
    """bench/ is first on a bench script's sys.path, so bench/queue.py must not shadow `queue`."""
    probe = ROOT / "bench" / f"_probe_queue_import_{os.getpid()}.py"
    probe.write_text("import queue\nimport requests\nprint(queue.LifoQueue.__module__)\n")
    try:
        done = subprocess.run(
            [sys.executable, str(probe)], capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        probe.unlink()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "queue"
