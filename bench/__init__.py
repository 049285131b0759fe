"""TacoQ's benchmark harness: ``python -m bench`` (or ``nox -s bench``).

Each scenario measures TacoQ and a raw-library baseline in the same run, several times, and
reports medians and the ratio TacoQ/baseline; the results go to ``docs/benchmarks.md``.
"""
