# syntax=docker/dockerfile:1
# Flywheel's training image: `python -m mlflywheel.training` on an NVIDIA GPU, run as a pod by
# the Kubernetes training backend (include/mlflywheel/orchestration/training_backends/kubernetes.py).
#
#   docker build -f docker/training.Dockerfile -t ghcr.io/flywheel/flywheel-training:0.1.0 .
#
# Build context: the repository root; docker/training.Dockerfile.dockerignore keeps it to the
# few files copied below. No secrets are baked in: the pod gets credentials from Kubernetes
# secrets (envFrom) and plain FLYWHEEL_* settings as env vars.
#
# CUDA: PyPI's Linux x86_64 wheel of torch 2.13.0 is the CUDA 13.0 build (it depends on
# cuda-toolkit 13.0.3 and nvidia-cudnn-cu13 wheels, which bring the CUDA runtime libraries), so
# the base image needs no CUDA: the node's NVIDIA driver (>= 580 for CUDA 13) is mounted by the
# NVIDIA container toolkit. For older drivers pass another torch build, e.g.
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# (check that index serves torch 2.13.0 for cp311 first).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment with the pinned packages and mlflywheel ----------------------
FROM ${PYTHON_IMAGE} AS build

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://pypi.org/simple

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

# torch first, on its own index; the lock's `torch==2.13.0` is then already met (a public
# version pin matches a local version such as 2.13.0+cu128, PEP 440).
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

# The training subset of the lock, every transitive package constrained by the full lock.
COPY requirements.txt docker/requirements-training.txt /build/
RUN pip install -r /build/requirements-training.txt -c /build/requirements.txt

# The package itself, not editable: the image must not depend on a checkout.
COPY pyproject.toml README.md /build/src/
COPY include /build/src/include
RUN pip install --no-deps /build/src \
    && python -c "import mlflywheel.training.entrypoint, mlflywheel.training.loop, torch, mlflow, pandas, sklearn, boto3; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

# --- runtime: the same base, the venv, a non-root user -----------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="flywheel-training" \
      org.opencontainers.image.description="python -m mlflywheel.training: train on a lake snapshot, register in MLflow" \
      org.opencontainers.image.licenses="Apache-2.0"

# uid/gid 10001 match the pod's securityContext (runAsUser/runAsGroup/fsGroup).
RUN groupadd --gid 10001 flywheel \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin flywheel \
    && mkdir -p /app

COPY --from=build /opt/venv /opt/venv

# The root filesystem is read-only in the pod: everything that writes (torch/Triton kernel
# caches, MLflow and matplotlib config, temp files) goes under /tmp, an emptyDir. Bytecode was
# compiled by pip at build time, so Python never needs to write it.
# NVIDIA_VISIBLE_DEVICES is deliberately NOT set here: on a GPU node's runtime "all" would
# expose every GPU to a pod that asked for none; the device plugin sets it per pod.
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.matplotlib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1 \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    FLYWHEEL_DATA_DIR=/tmp/flywheel

WORKDIR /app
USER 10001:10001

# The Kubernetes backend passes the same command explicitly (cmds + arguments); CMD only helps
# a bare `docker run IMAGE`.
ENTRYPOINT ["python", "-m", "mlflywheel.training"]
CMD ["--help"]
