"""The development stack: what runs Flywheel on one machine for the demo and the tests.

* :mod:`.stack`: the embedded stack launcher (Airflow on SQLite + an MLflow server, or the
  production-like variant on PostgreSQL and S3), started and stopped as process groups;
* :mod:`.production`: the production-like backends the integration tests run the loop on;
* :mod:`.mlflow_auth`: an MLflow server behind its basic-auth app, with generated logins;
* :mod:`.synthetic`: small, strongly labelled validated partitions for any spec (test fixtures).

Not used by the pipeline itself: no stage imports this package.
"""
