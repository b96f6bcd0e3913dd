"""The MLflow pyfunc wrapper: network + preprocessing, loaded back as one object.

The pickled :class:`FlywheelModel` carries no state; its artifacts (``preprocessor.json``,
``net.json`` and ``net.pt``, a plain state dict) are read in ``load_context``. So a model
loads wherever ``mlflywheel`` and torch are installed, on CPU, without unpickling tensors.
``predict(df)`` returns the probability of the positive class of each row as a float64 array,
whatever the dataset.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow.pyfunc
import numpy as np
import pandas as pd

PREPROCESSOR_FILE = "preprocessor.json"
NET_CONFIG_FILE = "net.json"
NET_WEIGHTS_FILE = "net.pt"


class FlywheelModel(mlflow.pyfunc.PythonModel):
    """``predict(context, df)`` -> probability of the positive class per row."""

    def load_context(self, context: Any) -> None:
        import torch

        from mlflywheel.training.model import Preprocessor, TabularNet

        artifacts = context.artifacts
        self.preprocessor = Preprocessor.from_dict(json.loads(Path(artifacts["preprocessor"]).read_text()))
        self.net = TabularNet.from_config(json.loads(Path(artifacts["net_config"]).read_text()))
        state = torch.load(artifacts["net_weights"], map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.net.eval()

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        from mlflywheel.training.loop import predict_proba

        return predict_proba(self.net, self.preprocessor, df)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        return self.predict_proba(model_input)


# Versions registered before the rename pickled the class under its old name: keep it loadable.
FraudModel = FlywheelModel


def save_artifacts(directory: Path, preprocessor: Any, net: Any) -> dict[str, str]:
    """Write the model's artifacts under ``directory``; return the pyfunc artifacts mapping."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    (directory / PREPROCESSOR_FILE).write_text(json.dumps(preprocessor.to_dict(), indent=2))
    (directory / NET_CONFIG_FILE).write_text(json.dumps(net.config(), indent=2))
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch.save(state, directory / NET_WEIGHTS_FILE)
    return {
        "preprocessor": str(directory / PREPROCESSOR_FILE),
        "net_config": str(directory / NET_CONFIG_FILE),
        "net_weights": str(directory / NET_WEIGHTS_FILE),
    }
