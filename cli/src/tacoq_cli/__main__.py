"""``python -m tacoq_cli``: the same as the ``tacoq`` command."""

from __future__ import annotations

from tacoq_cli.main import main

if __name__ == "__main__":
    main()
