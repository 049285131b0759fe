"""TacoQ beside its peers, Celery 5 and Dramatiq, on the same RabbitMQ and Postgres (issue 7).

- :mod:`bench.peers.common`: service URLs and checks, namespaces, queue depth, process trees
  (CPU-seconds and peak RSS);
- :mod:`bench.peers.tacoq_app`, :mod:`bench.peers.celery_app`, :mod:`bench.peers.dramatiq_app`:
  the no-op task of each system, configured from ``BENCH_PEER_*`` environment variables;
- :mod:`bench.peers.systems`: how each system is set up, loaded, started, watched for its end
  condition and cleaned up;
- :mod:`bench.peers.publish` and :mod:`bench.peers.latency`: the publishing and round-trip
  processes;
- :mod:`bench.peer_scenarios`: the scenarios (drain, steady state, latency, fan-in).
"""
