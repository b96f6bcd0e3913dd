"""The batch size adapts to small training splits: every epoch takes several optimiser steps."""

from __future__ import annotations

import math

import pytest
from mlflywheel.training.entrypoint import parse_args
from mlflywheel.training.loop import MIN_BATCH_SIZE, effective_batch_size


def test_small_split_gets_smaller_batches() -> None:
    # The case from the field: 940 training rows, batch 1024 was one step per epoch.
    assert effective_batch_size(1024, 940, 8) == 117
    assert math.ceil(940 / 117) == 9


def test_large_split_keeps_the_requested_batch() -> None:
    assert effective_batch_size(1024, 1_960_000, 8) == 1024
    assert effective_batch_size(1024, 8 * 1024, 8) == 1024


def test_never_below_16_nor_above_the_request() -> None:
    assert effective_batch_size(1024, 50, 8) == MIN_BATCH_SIZE == 16
    assert effective_batch_size(1024, 0, 8) == 16
    assert effective_batch_size(8, 50, 8) == 8  # a request below 16 is the caller's choice


@pytest.mark.parametrize("requested", [16, 64, 1024, 4096])
@pytest.mark.parametrize("min_steps", [1, 3, 8, 100])
def test_at_least_min_steps_unless_a_bound_binds(requested: int, min_steps: int) -> None:
    for rows in range(0, 30_000, 37):
        batch = effective_batch_size(requested, rows, min_steps)
        assert 1 <= batch <= requested
        if batch < requested and batch > 16:  # capped, and the 16-row floor does not bind
            assert math.ceil(rows / batch) >= min_steps, (rows, batch)
        if batch == requested:  # not capped: the requested batch already gives the minimum
            assert rows < 16 or math.ceil(rows / batch) >= min_steps or requested <= 16, (rows, batch)


def test_bad_arguments() -> None:
    for args in ((0, 100, 8), (64, -1, 8), (64, 100, 0)):
        with pytest.raises(ValueError):
            effective_batch_size(*args)


def test_min_steps_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_MIN_STEPS_PER_EPOCH", "12")
    assert parse_args(["--snapshot-id", "x"]).min_steps_per_epoch == 12
    assert parse_args(["--snapshot-id", "x", "--min-steps-per-epoch", "3"]).min_steps_per_epoch == 3
    with pytest.raises(SystemExit):
        parse_args(["--snapshot-id", "x", "--min-steps-per-epoch", "0"])
