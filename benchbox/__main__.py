"""``python -m benchbox``: the command line, as the ``benchbox`` console script
(``torchrun ... -m benchbox run`` starts it this way)."""

import sys

from benchbox.cli import main

__all__ = []

# Guarded: ``benchbox run --nproc N`` spawns processes that import this module again.
if __name__ == "__main__":
    sys.exit(main())
