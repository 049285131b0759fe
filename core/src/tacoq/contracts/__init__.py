"""The contracts: what plugins implement and the rest of TacoQ relies on.

- :mod:`~tacoq.contracts.hookspecs`: the pluggy hooks (brokers, stores, serializers, the worker
  runner, listeners, middleware, CLI groups);
- :mod:`~tacoq.contracts.broker`: ``Broker``, ``Consumer``, ``Delivery``, ``DeadLetter`` and
  the logical queue names;
- :mod:`~tacoq.contracts.store`: ``Store`` and its records, filters and pages;
  :mod:`~tacoq.contracts.cursors`: the list cursor every store hands out;
- :mod:`~tacoq.contracts.serializer`: ``Serializer`` and ``Codec``;
- :mod:`~tacoq.contracts.runner`: ``WorkerRunner`` and ``WorkerRunRequest``;
- :mod:`~tacoq.contracts.lifecycle`: ``LifecycleEvent``, ``TaskListener``,
  ``HandlerMiddleware``.

May import: :mod:`tacoq.model` and :mod:`tacoq.errors` (and, for type annotations only,
anything). Never an implementation: the contract suites in :mod:`tacoq.testing` check those.
"""
