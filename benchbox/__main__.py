"""``python -m benchbox``: the command line, as the ``benchbox`` console script
(``torchrun ... -m benchbox run`` starts it this way)."""

from benchbox.cli import console

__all__ = []

# Guarded: ``benchbox run --nproc N`` spawns processes that import this module again.
if __name__ == "__main__":
    console()
