"""``python -m superpositional``: the command line (:mod:`superpositional.apps.cli`)."""

import sys

from .apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
