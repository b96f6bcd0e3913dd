#!/bin/sh
# Creates Flywheel's roles and databases. The postgres image runs this once, on the first start
# of an empty data volume (/docker-entrypoint-initdb.d); later password changes in .env do not
# reach an existing volume: change them with ALTER ROLE ... PASSWORD, or start from a new volume.
#
#   role      database(s)                       used by
#   airflow   airflow                           Airflow's metadata database
#   mlflow    mlflow                            MLflow's tracking and registry store
#             mlflow_auth                       MLflow's basic-auth app: users and permissions
#   flywheel  flywheel_source, flywheel_ledger  FLYWHEEL_SOURCE_POSTGRES_URI, FLYWHEEL_LEDGER_URI
#
# Passwords come from the container's environment (docker-compose.yaml, from .env) and reach
# SQL as psql variables (:'name' quotes them), never spliced into the SQL text.
set -e

for name in AIRFLOW_DB_PASSWORD MLFLOW_DB_PASSWORD PIPELINE_DB_PASSWORD; do
    eval "value=\${$name:-}"
    if [ -z "$value" ]; then
        echo "postgres-init: $name is not set" >&2
        exit 1
    fi
done

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v mlflow_password="$MLFLOW_DB_PASSWORD" \
    -v flywheel_password="$PIPELINE_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE ROLE flywheel LOGIN PASSWORD :'flywheel_password';

CREATE DATABASE airflow OWNER airflow;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
CREATE DATABASE flywheel_source OWNER flywheel;
CREATE DATABASE flywheel_ledger OWNER flywheel;

-- Each role reaches its own databases only.
REVOKE ALL ON DATABASE airflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
REVOKE ALL ON DATABASE mlflow_auth FROM PUBLIC;
REVOKE ALL ON DATABASE flywheel_source FROM PUBLIC;
REVOKE ALL ON DATABASE flywheel_ledger FROM PUBLIC;
SQL
