"""Entry point for ``python -m ocrpipe``."""

import sys

from ocrpipe.cli import main

if __name__ == "__main__":
    sys.exit(main())
