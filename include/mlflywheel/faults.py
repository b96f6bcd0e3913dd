"""Fault injection for crash tests: every write step of the loop calls :func:`point` with its name.

Unset (production), :func:`point` is one comparison and returns. Crash tests arm it in a real
subprocess, through the environment or :func:`arm`:

``FLYWHEEL_FAULT_POINT=<step>`` or ``<step>#<n>``
    the process kills itself with ``SIGKILL`` (no cleanup, no ``finally``, no flush: like a lost
    node or the OOM killer) the ``n``-th time (default 1st) it reaches ``<step>``;
``FLYWHEEL_FAULT_TRACE=<path>``
    every step reached is appended to ``<path>``, one name a line, so a test can list the steps
    of a run and then kill a fresh run at each of them in turn.

Step names are stable across runs (no versions or random ids in them), e.g. ``lake.put``
(before an object write), ``lake.put.partial`` (the bytes are on disk in a temporary file, not yet
in place; on S3, the first part of a multipart upload is stored, not yet the object),
``lake.delete``, ``commit.record`` (a partition's commit point), ``ledger.sink``, ``registry.tag``
(before a version's tags), ``registry.tag.partial`` (the first of them written),
``registry.tag.commit`` (all written, their record not yet committed),
``registry.alias`` (an MLflow alias move), ``promote.record`` (before ``promoted`` is recorded).
Standard library only.
"""

from __future__ import annotations

import os
import signal

POINT_ENV = "FLYWHEEL_FAULT_POINT"
TRACE_ENV = "FLYWHEEL_FAULT_TRACE"

_target: tuple[str, int] | None = None
_trace: str | None = None
_seen: dict[str, int] = {}


def arm(target: str | None, trace: str | None = None) -> None:
    """Kill this process at ``target`` (``step`` or ``step#n``); trace steps to ``trace``. None disarms."""
    global _target, _trace
    _seen.clear()
    _trace = trace or None
    if not target:
        _target = None
        return
    step, _, nth = target.partition("#")
    _target = (step, int(nth) if nth else 1)


def point(step: str) -> None:
    """A write step is about to happen (or, for ``*.partial``, is half done)."""
    if _target is None and _trace is None:
        return
    count = _seen[step] = _seen.get(step, 0) + 1
    if _trace is not None:
        with open(_trace, "a", encoding="utf-8") as fh:
            fh.write(step + "\n")
    if _target is not None and _target == (step, count):
        os.kill(os.getpid(), signal.SIGKILL)


arm(os.environ.get(POINT_ENV), os.environ.get(TRACE_ENV))
