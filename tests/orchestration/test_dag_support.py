"""What the DAG files share, without a scheduler: the days a run looks at, an approval's answer."""

from __future__ import annotations

import datetime as dt

import pytest
from mlflywheel.orchestration import dag_support
from mlflywheel.orchestration.dag_support import last_complete_day, window_end

RUN_AT = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC)  # data interval end of the nightly run of the 26th


def test_a_run_looks_at_days_that_ended_before_it():
    assert last_complete_day(RUN_AT) == dt.date(2026, 11, 25)


@pytest.mark.parametrize("unset", [{}, {"window_end": None}, {"window_end": ""}])
def test_window_ends_with_the_last_complete_day_by_default(unset):
    assert window_end(unset, RUN_AT) == dt.date(2026, 11, 25)


NOW = dt.datetime(2026, 11, 28, 4, 0, tzinfo=dt.UTC)


def test_window_end_param_sets_the_window_whatever_the_run():
    assert window_end({"window_end": "2026-11-20"}, RUN_AT, now=NOW) == dt.date(2026, 11, 20)
    # A drift retrain re-runs an older scheduled run (a weekly schedule) with a later window.
    assert window_end({"window_end": "2026-11-27"}, RUN_AT, now=NOW) == dt.date(2026, 11, 27)


@pytest.mark.parametrize(("value", "message"), [("2026-11-28", "has not ended yet"), ("2027-01-01", "has not ended"),
                                                ("26/11/2026", "must be a date")])  # fmt: skip
def test_window_end_refuses_days_not_ended_and_non_dates(value, message):
    with pytest.raises(ValueError, match=message):
        window_end({"window_end": value}, RUN_AT, now=NOW)


def test_hitl_answer_reads_who_answered_what_and_when():
    at = "2026-11-28T10:00:00Z"  # as the REST API answers
    approved = dag_support.hitl_answer(
        {"chosen_options": ["Approve"], "responded_at": at, "responded_by_user": {"id": "7", "name": "ada"}}
    )
    assert approved == {"answer": "approved", "by": "ada (7)", "at": at}
    rejected = dag_support.hitl_answer(
        {"chosen_options": ["Reject"], "responded_at": at, "responded_by_user": {"id": "admin", "name": "admin"}}
    )
    assert rejected["answer"] == "rejected" and rejected["by"] == "admin"
    # At the timeout Airflow applies the defaults ("Reject") for nobody.
    timed_out = dag_support.hitl_answer(
        {"chosen_options": ["Reject"], "responded_at": dt.datetime(2026, 11, 28, 10, tzinfo=dt.UTC),
         "responded_by_user": None, "response_received": True}
    )  # fmt: skip
    assert timed_out == {"answer": "timed_out", "by": "", "at": "2026-11-28T10:00:00+00:00"}
    for unanswered in (None, {"chosen_options": None, "response_received": False}):
        with pytest.raises(ValueError, match="no answer yet"):
            dag_support.hitl_answer(unanswered)
