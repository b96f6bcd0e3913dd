"""What only the orchestrator needs: Airflow's REST API, retraining requests, pod specs.

The only part of :mod:`mlflywheel` besides the DAG files allowed to know about Airflow.
"""
