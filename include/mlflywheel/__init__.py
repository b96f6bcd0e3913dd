"""Flywheel: continuous training for ML models, orchestrated by Apache Airflow.

Stage modules (ingest, validation, training, registry, gate, promote, drift) never import
Airflow; only :mod:`mlflywheel.orchestration` and the DAG files do.
"""

__version__ = "0.1.0"
