"""Drift detection: recent validated data and champion scores vs the champion's reference, and
the champion's performance on late-labelled rows.

Modules (imported on demand, so importing this package stays cheap):

* :mod:`mlflywheel.drift.backends`: the ``DriftBackend`` interface, ``AlibiBackend`` (default,
  alibi-detect, BSL 1.1: non-production use only) and ``ScipyBackend`` (BSD, same answers);
* :mod:`mlflywheel.drift.effect`: effect sizes beside the p-values (PSI, scaled Wasserstein, KS);
* :mod:`mlflywheel.drift.policy`: the spec's drift policy applied (monitored features, seasonal
  matching of the reference, the two criteria per feature, the dataset-level rule);
* :mod:`mlflywheel.drift.performance`: the gate metric on late-labelled rows vs the holdout figure;
* :mod:`mlflywheel.drift.report`: the HTML rendering of a drift report;
* :mod:`mlflywheel.drift.check`: ``run_drift_check``, the daily check;
* :mod:`mlflywheel.datasets.upstreams.seasonal`: a seasonal synthetic stream with known change points (tests,
  benchmarks).
"""
