"""``python -m python_worker run|process|status|dead-letter|enqueue``."""

from .cli import main

raise SystemExit(main())
