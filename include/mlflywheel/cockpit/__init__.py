"""The operator cockpit: what operators see in Airflow's UI, from the loop's own records.

* :mod:`mlflywheel.cockpit.readmodel` reads summaries only (ledger summaries, drift report JSONs,
  the drift state, registry tags) and returns plain dicts of what the pages show;
* :mod:`mlflywheel.cockpit.plot` draws the drift p-value history as inline SVG (no JavaScript);
* :mod:`mlflywheel.cockpit.pages` renders them as HTML with the Jinja2 templates beside it.

No module here knows Airflow; MLflow is reached only through :mod:`mlflywheel.registry`. The
Airflow plugin (``plugins/flywheel_plugin.py``) only registers the views and routes requests here.
"""
