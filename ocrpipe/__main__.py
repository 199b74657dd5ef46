"""Entry point for ``python -m ocrpipe``."""

import sys

if __name__ == "__main__":
    # Imported here, not above: a pool worker (spawn) imports this module again as ``__mp_main__``, and it
    # needs none of the command line (about 0.1 s sooner at its first task).
    from ocrpipe.cli import main

    sys.exit(main())
