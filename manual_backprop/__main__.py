"""``python -m manual_backprop``: the command line of :mod:`manual_backprop.app.cli`."""

import sys

from manual_backprop.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
