"""Drift detection: recent validated data and champion scores vs the champion's reference sample.

Modules (imported on demand, so importing this package stays cheap):

* :mod:`mlflywheel.drift.backends`: the ``DriftBackend`` interface, ``AlibiBackend`` (default,
  alibi-detect, BSL 1.1: non-production use only) and ``ScipyBackend`` (BSD, same answers);
* :mod:`mlflywheel.drift.report`: the HTML rendering of a drift report;
* :mod:`mlflywheel.drift.check`: ``run_drift_check``, the daily check.
"""
