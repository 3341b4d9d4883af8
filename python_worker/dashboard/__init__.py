"""The operator's console: a server-rendered web dashboard over Kyu's SQL views and functions
(``python -m python_worker dashboard``; needs the ``dashboard`` extra)."""
