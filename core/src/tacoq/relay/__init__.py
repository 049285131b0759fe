"""The relay: TacoQ's engine, which consumes every update into the store, serves it over HTTP,
takes dead letters into the store and cleans up.

- :mod:`~tacoq.relay.engine`: ``RelayEngine`` (batches into the store, the dead-letter intake);
  :mod:`~tacoq.relay.dead_letters`, :mod:`~tacoq.relay.requeue`, :mod:`~tacoq.relay.cleanup`;
- :mod:`~tacoq.relay.service`: ``RelayService`` (engine, HTTP API, cleanup) and the REST
  publish; :mod:`~tacoq.relay.http` and the modules it uses (routes, models, the request guard,
  the HTTP protocol with deadlines, the access log);
- :mod:`~tacoq.relay.client`: ``RelayClient`` and ``SyncRelayClient``, the HTTP API's clients.

May import: :mod:`tacoq.publishing` (the REST publish), the host, config, guard, serialization,
the contracts and the model. Not the worker or the built-ins. FastAPI and uvicorn are imported
only by the HTTP modules, so the engine and the client run without them.
"""
