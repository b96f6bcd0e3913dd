#!/usr/bin/env bash
# Wheels for the entrypoint run of benchmarks/gpu_check.sh: MLflow 3.17.2 (the project's pin) and
# what it needs that the GPU machine's image lacks (its image has torch, numpy, pandas, pyarrow,
# scikit-learn, scipy, matplotlib, ... but no MLflow), for Python 3.12 on x86-64 Linux, into .whl/
# (git ignores it). Run it on the development machine, then carry `.whl` to the GPU machine:
# gpu_check.sh installs what it finds there (about 35 MB). Only pip's ordinary index is used.
set -euo pipefail
cd "$(dirname "$0")/.."
exclude="$(git rev-parse --git-path info/exclude)"
grep -qx '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
python="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
all="$(mktemp -d)"
trap 'rm -rf "$all"' EXIT
"$python" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$all" mlflow==3.17.2
# Already on the GPU machine's image (its package list, 2026-11): not carried.
on_image=" absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs certifi
  charset-normalizer click cloudpickle contourpy cycler filelock fonttools frozenlist fsspec h11 httpcore httpx
  idna jinja2 joblib kiwisolver markdown markdown-it-py markupsafe matplotlib mdurl multidict narwhals numpy
  packaging pandas pillow pip propcache protobuf psutil pyarrow pygments pyparsing python-dateutil pytz pyyaml
  requests rich scikit-learn scipy setuptools six threadpoolctl typing-extensions typing-inspect urllib3
  werkzeug wheel wrapt yarl zipp "
on_image=" $(echo $on_image) "  # one space between names
rm -rf .whl && mkdir -p .whl
for wheel in "$all"/*.whl; do
  name="$(basename "$wheel" | cut -d- -f1 | tr '_A-Z' '-a-z')"
  case "$on_image" in *" $name "*) ;; *) cp "$wheel" .whl/ ;; esac
done
echo "$(ls .whl | wc -l) wheels, $(du -sh .whl | cut -f1), in .whl/"
