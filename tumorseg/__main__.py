"""``python -m tumorseg <command> [options]``: the same as the ``tumorseg`` command."""

import sys

from tumorseg.cli import main

if __name__ == "__main__":
    sys.exit(main())
