"""Reusable pytest contract suites for plugin authors (install ``tacoq-core[testing]``).

Inherit a suite and override its URL fixture::

    from tacoq.testing.broker_contract import BrokerContract

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        def broker_url(self) -> str:
            return "mybroker://localhost"

The suites are written for asynchronous real backends: they use :func:`eventually` instead of
fixed sleeps, isolate each test in a fresh namespace, and take time from an injectable
:class:`FakeClock` where ttl matters.

For tests of real processes, :class:`ChildProcess` runs a command (``tacoq_argv(...)`` for the
CLI, in a :func:`clean_environ`) with its output collected. A relay, a publisher and workers in
the test's own event loop are :func:`tacoq.testing.system.in_process_system` (import it from its
module: it loads the relay and the worker runtime, which this package does not at import).
"""

from tacoq.testing.clock import FakeClock
from tacoq.testing.eventually import eventually, fresh_namespace
from tacoq.testing.processes import ChildProcess, clean_environ, tacoq_argv
from tacoq.testing.records import all_dead_letters

__all__ = [
    "ChildProcess",
    "FakeClock",
    "all_dead_letters",
    "clean_environ",
    "eventually",
    "fresh_namespace",
    "tacoq_argv",
]
