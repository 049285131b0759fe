"""URL parsing, schema and channel names, and the plugin's registration (no database needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tacoq.errors import ConfigError
from tacoq.plugins import get_plugin_host
from tacoq_postgres.settings import channel_for_schema, parse_store_url, schema_for_namespace


def test_schema_derives_from_the_namespace() -> None:
    """Plain namespaces map to ``tacoq_<ns>``; others are sanitized with a distinguishing hash."""
    assert schema_for_namespace("tacoq") == "tacoq_tacoq"
    dashed, underscored = schema_for_namespace("a-b"), schema_for_namespace("a_b")
    assert dashed.startswith("tacoq_a_b_")
    assert dashed != underscored
    assert schema_for_namespace("A") != schema_for_namespace("a")
    assert len(schema_for_namespace("x" * 63).encode()) <= 63


def test_channel_names_include_the_schema_and_fit() -> None:
    """The channel carries the schema's name and stays within Postgres' 63 bytes."""
    assert channel_for_schema("tacoq_demo") == "tacoq_demo.completed"
    long = channel_for_schema("s" * 63)
    assert long.startswith("s" * 40)
    assert len(long.encode()) <= 63


def test_url_options_and_redaction() -> None:
    """``schema`` and ``migrate`` are TacoQ's; the rest goes to libpq; no password is shown."""
    s = parse_store_url(
        "postgres://u:s3cret@h:5433/db?schema=Mine&migrate=false&sslmode=disable", "ns"
    )
    assert (s.schema, s.migrate, s.application_name) == ("Mine", False, "tacoq")
    assert s.conninfo.startswith("postgresql://u:s3cret@h:5433/db?")
    assert "sslmode=disable" in s.conninfo
    assert "schema=" not in s.conninfo
    assert "s3cret" not in s.display_url
    assert "s3cret" not in repr(s.display_url)
    assert parse_store_url("postgresql://h/db?application_name=x", "ns").application_name == "x"
    with pytest.raises(ConfigError, match="migrate"):
        parse_store_url("postgresql://h/db?migrate=maybe", "ns")
    with pytest.raises(ConfigError, match="schema"):
        parse_store_url(f"postgresql://h/db?schema={'s' * 64}", "ns")


def test_both_schemes_are_registered() -> None:
    """``postgresql`` and ``postgres`` come from this plugin, through the plugin host."""
    schemes = get_plugin_host().store_schemes()
    assert {"postgresql", "postgres"} <= set(schemes)


def test_hook_module_does_not_import_psycopg() -> None:
    """Importing the hook module and calling its scheme hook leaves psycopg unimported."""
    code = (
        "import sys, tacoq_postgres.hooks as h; h.tacoq_store_schemes(); "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'psycopg_pool',"
        " 'typer')); print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
