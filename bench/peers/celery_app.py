"""The Celery 5 app of the peer scenarios: one no-op task, configured from the environment.

``BENCH_PEER_QUEUE`` names the run's queue (and its exchanges); with ``BENCH_PEER_RESULTS`` (a
``postgresql://`` URL) the app runs in its closest equivalent to TacoQ's guarantees:
``task_acks_late``, ``task_track_started`` (a STARTED row, then SUCCESS), the
``db+postgresql://`` result backend (SQLAlchemy over psycopg2) with its tables in schema
``BENCH_PEER_SCHEMA``, prefetch multiplier 1; the worker runs one prefork child (the solo
pool stalls in this mode, see :meth:`bench.peers.systems.CelerySystem.worker_argv`). Without
it, the app
runs in Celery's fastest mode: no result backend (``task_ignore_result``), acknowledgement on
receipt (Celery's default), prefetch multiplier ``BENCH_PEER_PREFETCH`` (default 100), and the
task counts itself in the tally file (:mod:`bench.peers.tally`).

Both modes turn off what a benchmark does not use and TacoQ does not have: task events,
gossip, mingle and heartbeats (the worker command line adds the last three). Remote control
stays on: with ``worker_enable_remote_control=False`` a solo worker at prefetch 1 with late
acks stalls for seconds between tasks (seen with Celery 5.5.3 and 5.7.0 here).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from bench.peers.tally import tally

QUEUE = os.environ.get("BENCH_PEER_QUEUE", "bench-celery")
RESULTS = os.environ.get("BENCH_PEER_RESULTS", "")
SCHEMA = os.environ.get("BENCH_PEER_SCHEMA", "public")

app = Celery("bench_peers", broker=os.environ.get("BENCH_PEER_AMQP", "amqp://127.0.0.1//"))
app.conf.update(
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    event_exchange=f"{QUEUE}.ev",
    control_exchange=f"{QUEUE}.ctl",
    worker_send_task_events=False,
    task_send_sent_event=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)
if RESULTS:
    app.conf.update(
        result_backend=f"db+{RESULTS}",
        database_table_schemas={"task": SCHEMA, "group": SCHEMA},
        task_acks_late=True,
        task_track_started=True,
        task_ignore_result=False,
        worker_prefetch_multiplier=1,
    )
else:
    app.conf.update(
        task_ignore_result=True,
        task_acks_late=False,
        worker_prefetch_multiplier=int(os.environ.get("BENCH_PEER_PREFETCH", "100")),
    )


@app.task(name="noop")
def noop(value: Any) -> None:
    """Do nothing (but count, when no result backend counts for us)."""
    if not RESULTS:
        tally()
