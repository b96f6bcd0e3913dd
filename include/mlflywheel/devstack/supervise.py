"""Run one command and start it again whenever it exits: the embedded stack's stand-in for the
process supervisor a production deployment has (systemd, Kubernetes' restart policy, compose's
``restart:``).

Airflow expects its scheduler to be restarted when it exits. On SQLite it can exit on its own: a
write the API server rolled back (a backfill request that met a lock and was answered 503) can
leave the scheduler's loop holding a deleted DagRun (``ObjectDeletedError``), and the scheduler
shuts down. Under ``airflow standalone`` nothing restarts it and the loop stalls for good; here
the next one starts after a short, growing pause, and the log says so.

Usage: ``python -m mlflywheel.devstack.supervise NAME -- COMMAND [ARGS...]``. Stopping the
supervisor's process group (what the stack's ``stop`` does) stops both.
"""

from __future__ import annotations

import subprocess
import sys
import time

RESTART_MARK = "supervise: restarting"  # what devstack.stack.PROBLEM_LINE looks for
STEADY_SECONDS = 60.0  # a run this long resets the pause to its minimum
MAX_PAUSE_SECONDS = 30.0


def next_pause(pause: float, ran_for: float) -> float:
    """The pause before the next restart: doubles while the command keeps failing fast."""
    return 1.0 if ran_for >= STEADY_SECONDS else min(MAX_PAUSE_SECONDS, pause * 2)


def supervise(name: str, command: list[str]) -> int:
    pause = 1.0
    while True:
        started = time.monotonic()
        code = subprocess.call(command)
        ran_for = time.monotonic() - started
        print(f"{RESTART_MARK} {name}: it exited with {code} after {ran_for:.0f}s; next start in {pause:.0f}s",
              file=sys.stderr, flush=True)  # fmt: skip
        time.sleep(pause)
        pause = next_pause(pause, ran_for)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m mlflywheel.devstack.supervise NAME -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    return supervise(argv[0], argv[2:])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
