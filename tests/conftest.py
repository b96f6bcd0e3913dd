"""Test-wide settings: offline, no telemetry, Airflow pointed at a throwaway home."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before anything imports mlflow, GX, Airflow or transformers.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("SCARF_ANALYTICS", "false")
os.environ.setdefault("AIRFLOW__USAGE_DATA_COLLECTION__ENABLED", "False")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="flywheel-airflow-test-"))
os.environ.setdefault("FLYWHEEL_DATA_DIR", tempfile.mkdtemp(prefix="flywheel-test-data-"))

PROJECT_ROOT = Path(__file__).resolve().parents[1]
