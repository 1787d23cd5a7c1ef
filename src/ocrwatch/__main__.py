"""``python -m ocrwatch``: the same as the ``ocrwatch`` command."""

from __future__ import annotations

from ocrwatch.cli import entry

if __name__ == "__main__":
    entry()
