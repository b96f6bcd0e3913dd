"""Connection arguments for the embedded stack's SQLite metadata database.

Airflow imports ``CONNECT_ARGS`` by its dotted path (``[database] sql_alchemy_connect_args``)
in every component; this module is kept free of imports so that costs nothing.
"""

# pysqlite's busy timeout, in seconds: a writer waits this long for a lock before
# "database is locked" (the driver's default is 5 s, short for four processes on two cores).
CONNECT_ARGS = {"timeout": 60}
