"""``python -m python_worker.receipts``: the receipts CLI (see cli.py)."""

from .cli import main

raise SystemExit(main())
