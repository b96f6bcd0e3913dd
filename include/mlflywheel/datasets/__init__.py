"""Datasets: spec files, and the upstreams that land their files in the lake's landing zone.

A dataset is a YAML spec file (:mod:`.spec_file`); every process loads it the same way, with
:func:`load_spec`: the file named by ``FLYWHEEL_DATASET_SPEC`` (a path, ``file://`` or ``s3://``
URI) when set, else the built-in spec named by ``FLYWHEEL_DATASET`` (``specs/<name>.yaml`` in this
package). A snapshot's manifest embeds the spec it was built with (:func:`spec_from_manifest`), so
training and promotion need no file. ``python -m mlflywheel.datasets`` drafts a spec from a CSV,
checks one, and replays a CSV into the landing zone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflywheel.datasets.spec import Column, DatasetSpec, Expectation, SpecError
from mlflywheel.datasets.spec_file import SpecFileError, load_spec_file, spec_from_dict, spec_to_dict

__all__ = [
    "BUILT_IN_SPECS_DIR",
    "Column",
    "DatasetSpec",
    "Expectation",
    "SpecError",
    "SpecFileError",
    "built_in_names",
    "get_spec",
    "load_spec",
    "load_spec_file",
    "spec_from_dict",
    "spec_from_manifest",
    "spec_to_dict",
]

BUILT_IN_SPECS_DIR = Path(__file__).resolve().parent / "specs"  # package data
MANIFEST_SPEC_KEY = "spec"  # where a snapshot manifest embeds its spec


def built_in_names() -> list[str]:
    """The datasets shipped with the package, by name."""
    return sorted(p.stem for p in BUILT_IN_SPECS_DIR.glob("*.yaml"))


@functools.cache
def get_spec(name: str) -> DatasetSpec:
    """The built-in spec ``name`` (``specs/<name>.yaml``); specs are frozen, so one is shared."""
    path = BUILT_IN_SPECS_DIR / f"{name}.yaml"
    if not name or "/" in name or not path.is_file():
        raise KeyError(
            f"unknown dataset {name!r}; built-in: {', '.join(built_in_names())}. For your own dataset set "
            "FLYWHEEL_DATASET_SPEC to its spec file (and FLYWHEEL_DATASET to the spec's name)"
        )
    spec = load_spec_file(path)
    if spec.name != name:
        raise SpecFileError(str(path), f"the file of built-in dataset {name!r} declares name {spec.name!r}",
                            field="name")
    return spec


def load_spec(settings: Any) -> DatasetSpec:
    """The dataset spec every process uses: ``settings.dataset_spec`` when set, else the built-in
    ``settings.dataset``. A spec file's name must equal ``settings.dataset``: the name drives the
    lake's paths, the model's name and the DAGs' tags, and every process must agree on it."""
    location = getattr(settings, "dataset_spec", "") or ""
    if not location:
        return get_spec(settings.dataset)
    spec = load_spec_file(location, s3_endpoint_url=getattr(settings, "s3_endpoint_url", "") or "")
    if spec.name != settings.dataset:
        raise SpecFileError(
            location,
            f"the spec is named {spec.name!r} but FLYWHEEL_DATASET is {settings.dataset!r}; set "
            f"FLYWHEEL_DATASET={spec.name} (the name drives lake paths, the model name and DAG tags)",
            field="name",
        )
    return spec


def spec_from_manifest(manifest: Mapping[str, Any]) -> DatasetSpec:
    """The spec a snapshot was built with, from its manifest (no file needed, e.g. in a pod).

    Manifests written before specs were embedded name a dataset only: that works for built-ins.
    """
    embedded = manifest.get(MANIFEST_SPEC_KEY)
    if embedded is not None:
        return spec_from_dict(embedded, source=f"snapshot {manifest.get('snapshot_id', '?')} manifest")
    try:
        return get_spec(str(manifest["dataset"]))
    except KeyError:
        raise SpecError(
            f"snapshot {manifest.get('snapshot_id', '?')}: its manifest embeds no spec and "
            f"{manifest.get('dataset')!r} is not a built-in dataset; rebuild the snapshot"
        ) from None
