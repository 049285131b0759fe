"""The plugin's registration: schemes, and an import-light hook module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tacoq.errors import ConfigError
from tacoq.plugins import get_plugin_host
from tacoq_rabbit.broker import RabbitBroker
from tacoq_rabbit.topology import Topology, delay_rung, safe_name


def test_hook_module_imports_no_amqp_client() -> None:
    """Importing the hook module (what ``tacoq --help`` does) loads neither aio-pika nor pika."""
    code = (
        "import sys, tacoq_rabbit.hooks as h; h.tacoq_broker_schemes(); "
        "print(sorted(m for m in ('aio_pika', 'aiormq', 'pika', 'pamqp') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_amqp_and_amqps_schemes_belong_to_the_plugin() -> None:
    """``amqp`` and ``amqps`` resolve to the rabbit plugin and make an unconnected broker."""
    host = get_plugin_host()
    assert host.broker_schemes()["amqp"] == "rabbit"
    assert host.broker_schemes()["amqps"] == "rabbit"
    broker = host.create_broker("amqps://u:secret@example.invalid/", namespace="n")
    assert isinstance(broker, RabbitBroker)
    assert broker.in_process is False
    assert "secret" not in repr(broker)


def test_bad_options_are_one_clear_error_without_the_password() -> None:
    """A bad query option names itself and hides the password."""
    with pytest.raises(ConfigError) as caught:
        RabbitBroker("amqp://u:secret@h/?publish_timeout=soon", namespace="n")
    assert "publish_timeout" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_queue_names_are_safe_and_distinct_for_any_kind() -> None:
    """Plain kinds keep their name; others are sanitised and hashed, so nothing collides."""
    assert safe_name("images") == "images"
    assert safe_name("a b") != safe_name("a_b")
    long = "x" * 300
    assert len(Topology("ns").worker_queue(long)) < 255
    assert safe_name(long) != safe_name(long + "y")
    assert "#" in safe_name("ünïcode")


def test_delays_round_up_to_a_rung_never_down() -> None:
    """A delay gets its own expiration and the smallest rung that holds it."""
    assert delay_rung(0.6) == (600, 1000)
    assert delay_rung(0.0001) == (1, 125)
    assert delay_rung(61) == (61000, 64000)
    with pytest.raises(ValueError, match="exceeds"):
        delay_rung(10**8)
