"""Repository-wide pytest setup: the service fixtures (``amqp_url``, ``postgres_url``).

They live in :mod:`tacoq.testing.services`, one place for core, cli, plugins and ``tests/``;
see there how each URL is found and when a missing service skips or fails a test.
"""

pytest_plugins = ["tacoq.testing.services"]
