"""``python -m mlflywheel.training``: the one training entrypoint (see :mod:`.entrypoint`)."""

from __future__ import annotations

import sys

from mlflywheel.training.entrypoint import main

if __name__ == "__main__":
    sys.exit(main())
