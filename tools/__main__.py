"""``python -m chatledger.tools``: the ``chatledger`` command line."""

from __future__ import annotations

from chatledger.tools.cli import main

if __name__ == "__main__":
    main()
