"""``python -m ocrwatch``: the same as the ``ocrwatch`` command."""

from __future__ import annotations

import sys

from ocrwatch.cli import main

if __name__ == "__main__":
    sys.exit(main())
