"""The embedded stack's supervisor: a component that exits is started again, and stopping the
process group stops both (real subprocesses, no scheduler)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflywheel.devstack import supervise


def test_pause_doubles_while_failing_fast_and_resets_after_a_steady_run():
    assert supervise.next_pause(1.0, ran_for=0.5) == 2.0
    assert supervise.next_pause(16.0, ran_for=3) == supervise.MAX_PAUSE_SECONDS
    assert supervise.next_pause(30.0, ran_for=supervise.STEADY_SECONDS + 1) == 1.0


def test_a_component_that_exits_is_started_again_and_stop_ends_both(tmp_path: Path):
    starts = tmp_path / "starts"
    # Each start appends a line, then the first two crash at once and the third keeps running.
    child = (
        "import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); p.open('a').write('x\\n'); "
        "n = len(p.read_text().splitlines()); time.sleep(0 if n < 3 else 600); sys.exit(1)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflywheel.devstack.supervise", "toy", "--", sys.executable, "-c", child, str(starts)],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not starts.exists() or len(starts.read_text().splitlines()) < 3):
            time.sleep(0.2)
        assert len(starts.read_text().splitlines()) == 3  # started, crashed, restarted twice
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # what the stack's stop does
        proc.wait(timeout=10)
    err = proc.stderr.read()
    assert err.count(f"{supervise.RESTART_MARK} toy: it exited with 1") == 2
    time.sleep(1.5)
    assert len(starts.read_text().splitlines()) == 3  # nothing started after the stop


def test_usage_error_without_a_command():
    assert supervise.main(["toy"]) == 2
