"""``python -m benchbox``: the command line, as the ``benchbox`` console script
(``torchrun ... -m benchbox run`` starts it this way)."""

import sys

from benchbox.cli import main

sys.exit(main())
