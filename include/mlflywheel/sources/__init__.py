"""Sources: upstream systems that Flywheel pulls a day's rows from into the landing zone.

With ``FLYWHEEL_SOURCE=landing`` (the default) an upstream delivers files to ``landing/`` itself
and nothing is pulled. With ``FLYWHEEL_SOURCE=postgres`` the ``ingest`` DAG's
``extract_from_postgres`` task lands the day's rows of ``FLYWHEEL_SOURCE_TABLE`` through
:func:`mlflywheel.sources.postgres.extract_partition_to_landing` (file + ``_SUCCESS``), after
which ingest runs unchanged. With ``FLYWHEEL_SOURCE_VALIDATION=postgres`` as well, nothing is
landed: the day is validated inside PostgreSQL and only its result reaches the lake
(:mod:`mlflywheel.validation.pushdown`).
"""
