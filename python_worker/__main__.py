"""``python -m python_worker run|process|status|dead-letter|enqueue``."""

from .cli import main

# guarded: process isolation starts children with "spawn", which imports this module again
if __name__ == "__main__":
    raise SystemExit(main())
