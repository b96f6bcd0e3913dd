"""Upstreams: what delivers a dataset's daily files to the landing zone.

* :mod:`.transactions`: the synthetic card-transaction stream, with scheduled covariate and
  concept drift;
* :mod:`.faults`: the faults a real upstream delivers (corrupt files, nulls, bad values, ...);
* :mod:`.scenario`: a scripted run of days (drift, faults, a late delivery) for the demo and tests;
* :mod:`.csv_replay`: a CSV file replayed day by day by its timestamp column;
* :mod:`.streams`: stream descriptions (seasonality, drift events at known days) for the stream
  evaluation; :mod:`.seasonal`: a small seasonal stream with a day-of-week feature and known
  change points, to measure the drift policy.

Every upstream lands through :mod:`mlflywheel.datasets.landing` (file first, ``_SUCCESS`` last).
"""
