# syntax=docker/dockerfile:1
# Flywheel's project image: Airflow 3.3.2 with the project's lock and the mlflywheel package.
# Used by every Airflow service of docker-compose.yaml, by the MLflow server and by bucket-init.
#
#   docker compose build                     # CPU torch (default)
#   docker build -f docker/airflow.Dockerfile --build-arg TORCH_INDEX_URL=https://pypi.org/simple .
#                                            # CUDA torch (PyPI's Linux wheel), for airflow-scheduler-gpu
#
# Build context: the repository root; docker/airflow.Dockerfile.dockerignore keeps it to the
# few files copied below (BuildKit reads a <Dockerfile>.dockerignore beside the Dockerfile).
FROM apache/airflow:3.3.2-python3.11

# torch first, on its own: inside one big resolve pip may pick the CUDA wheel and several GB of
# nvidia-* wheels (the Makefile does the same). The lock's `torch==2.13.0` is then already met:
# a public version pin matches the local version 2.13.0+cpu (PEP 440).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV MLFLOW_DISABLE_TELEMETRY=true \
    GX_ANALYTICS_ENABLED=false \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    DO_NOT_TRACK=1 \
    SCARF_ANALYTICS=false \
    AIRFLOW__USAGE_DATA_COLLECTION__ENABLED=False \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The base image installs Python packages as the airflow user (its documented way to extend it).
USER airflow

RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# The lock (every package pinned, apache-airflow==3.3.2 among them, so Airflow stays as built).
COPY --chown=airflow:0 requirements.txt /opt/flywheel/requirements.txt
RUN pip install --no-cache-dir -r /opt/flywheel/requirements.txt

# The package, installed editable: docker-compose.yaml mounts ./include over
# /opt/flywheel/include, so the running code is the checkout's.
COPY --chown=airflow:0 pyproject.toml README.md /opt/flywheel/
COPY --chown=airflow:0 include /opt/flywheel/include
RUN pip install --no-cache-dir --no-deps -e /opt/flywheel \
    && python -c "import mlflywheel.mlflow_accounts, torch, mlflow, airflow, flask_wtf; print('torch', torch.__version__)"

WORKDIR /opt/airflow
