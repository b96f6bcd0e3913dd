"""Training: snapshots of the validated window, the model, the loop and the entrypoint.

Kept light: importing this package loads neither torch nor MLflow. Import the submodules
(``snapshot``, ``model``, ``loop``, ``entrypoint``) for the pieces; run training with
``python -m mlflywheel.training --snapshot-id ID``.
"""

from __future__ import annotations

__all__ = ["entrypoint", "loop", "model", "pyfunc_model", "snapshot"]
