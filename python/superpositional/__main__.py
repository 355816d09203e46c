"""``python -m superpositional``: see :mod:`superpositional.cli`."""

import sys

from .cli import main

sys.exit(main())
