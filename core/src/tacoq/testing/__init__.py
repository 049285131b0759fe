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
"""

from tacoq.testing.clock import FakeClock
from tacoq.testing.eventually import eventually, fresh_namespace
from tacoq.testing.records import all_dead_letters

__all__ = ["FakeClock", "all_dead_letters", "eventually", "fresh_namespace"]
