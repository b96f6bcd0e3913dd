"""The `train` DAG's Params: its trigger form (titles, descriptions, sections, readable choices).

Kept beside the DAG helpers so that ``dags/train.py`` shows only the wiring; the defaults come
from the settings the DAG file read.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from mlflywheel.settings import Settings

ADVANCED = "Advanced: training hyper-parameters"
SET_BY_DRIFT_CHECK = "Set by drift_check (leave empty on a manual run)"


def train_params(settings: Settings) -> dict[str, Any]:
    """Params of `train`, defaults from ``settings``."""
    return {
        "window_days": Param(
            settings.window_days, type="integer", minimum=1, maximum=365, title="Window (days)",
            description="Validated days used, ending with the window's last day.",
        ),
        "window_end": Param(
            None, type=["null", "string"], format="date", title="Window end",
            description="Last day of the window (YYYY-MM-DD), a day that has ended; "
            "empty: the last complete day before the run. drift_check sets it on its backfills.",
        ),
        "promotion_mode": Param(
            settings.promotion_mode, type="string", enum=["gate", "shadow", "approval"], title="Promotion mode",
            values_display={
                "gate": "Gate: promote when the gate passes",
                "shadow": "Shadow: evaluate and record, never promote",
                "approval": "Approval: when the gate passes, a person approves in Required Actions",
            },
            description_md="What happens when the candidate passes the gate. **gate** moves the `champion` "
            "alias at once; **shadow** records the gate's verdict and moves nothing; **approval** asks in "
            "Airflow's *Required Actions* (Approve promotes; Reject, or no answer within "
            f"`FLYWHEEL_APPROVAL_TIMEOUT_HOURS` = {settings.approval_timeout_hours:g} h, promotes nothing). "
            "A gate that does not pass never asks. Default: `FLYWHEEL_PROMOTION_MODE`.",
        ),
        "reason": Param(
            "scheduled", type="string", minLength=1, title="Reason",
            description="Why this run trains (recorded in MLflow).",
        ),
        "epochs": Param(
            settings.epochs, type="integer", minimum=1, maximum=500, title="Epochs", section=ADVANCED,
            description="Passes over the training split; the epoch with the best validation PR-AUC is kept.",
        ),
        "learning_rate": Param(
            settings.learning_rate, type="number", exclusiveMinimum=0, maximum=1, title="Learning rate",
            section=ADVANCED, description="AdamW step size, above 0 and at most 1.",
        ),
        "batch_size": Param(
            settings.batch_size, type="integer", minimum=16, maximum=1_048_576, title="Batch size", section=ADVANCED,
            description="Rows per optimiser step, at most: a small training split gets smaller batches so that "
            "every epoch has at least FLYWHEEL_MIN_STEPS_PER_EPOCH steps (never below 16).",
        ),
        "seed": Param(
            settings.seed, type="integer", minimum=0, title="Seed", section=ADVANCED,
            description="Makes training repeatable: the same seed and data give the same model.",
        ),
        "trigger": Param(
            "schedule", type="string", enum=["schedule", "manual", "drift_check"], title="Trigger",
            section=SET_BY_DRIFT_CHECK,
            values_display={"schedule": "Scheduled run", "manual": "Manual trigger", "drift_check": "Drift retrain"},
            description="What started this run (recorded in MLflow); choose Manual trigger on a manual run. "
            "drift_check sets Drift retrain on its backfills.",
        ),
        "drift_event_id": Param(
            None, type=["null", "string"], title="Drift event", section=SET_BY_DRIFT_CHECK,
            description="The drift event this retrain answers (drift_check sets it; recorded in MLflow).",
        ),
        "drift_report": Param(
            None, type=["null", "string"], title="Drift report", section=SET_BY_DRIFT_CHECK,
            description="Lake key of the drift report that asked for this retrain (drift_check sets it).",
        ),
    }  # fmt: skip
