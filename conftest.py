"""Repository-wide pytest setup: the service fixtures (``amqp_url``, ``postgres_url``) and the
check that a test session leaves no queue, exchange or schema behind.

The fixtures live in :mod:`tacoq.testing.services`, one place for core, cli, plugins and
``tests/``; see there how each URL is found and when a missing service skips or fails a test.
The check is :mod:`tacoq.testing.leftovers` (``TACOQ_TEST_LEFTOVERS=session|all|off``).
"""

pytest_plugins = ["tacoq.testing.services", "tacoq.testing.leftovers"]
