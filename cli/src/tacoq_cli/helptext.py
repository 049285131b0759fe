"""How every ``tacoq`` help page is laid out: click's plain formatter, no boxes.

Paragraphs are re-wrapped to the terminal (at most :data:`MAX_WIDTH` columns), a block that
follows a line holding only ``\\b`` (an "Examples:" block) is kept as written, flags show no
type, and every setting shows its environment variable. Plugin groups get the same layout when
they are mounted (:func:`plain_help`).
"""

from __future__ import annotations

from typing import Any

import typer

__all__ = ["CONTEXT_SETTINGS", "MAX_WIDTH", "plain_help"]

#: The widest a help page gets on a wide terminal (narrower terminals wrap at their width).
MAX_WIDTH = 100
#: Context settings of the ``tacoq`` app: ``-h`` besides ``--help``, the width above, and
#: every environment variable shown.
CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "--help"],
    "max_content_width": MAX_WIDTH,
    "show_default": False,
}


def plain_help(app: typer.Typer) -> typer.Typer:
    """Give ``app`` and each group under it the plain layout (no rich boxes); returns it."""
    app.rich_markup_mode = None
    for group in app.registered_groups:
        if group.typer_instance is not None:
            plain_help(group.typer_instance)
    return app
