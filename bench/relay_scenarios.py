"""The relay scenarios: ``relay-latency`` and ``relay-throughput`` (issue 5 point 8), and
``relay-heartbeats`` (issue 19). Each skips with a clear row when RabbitMQ or PostgreSQL is
unreachable; each measurement runs in a namespace of its own (queues and schema), deleted
afterwards."""

from __future__ import annotations

from bench.harness import Scenario, Variant
from bench.relay_heartbeats import INTERVAL_S, RUNNING_IDS, WORKERS, heartbeat_count
from bench.relay_heartbeats import measure_relay as measure_relay_heartbeats
from bench.relay_heartbeats import measure_sink as measure_heartbeat_sink
from bench.relay_latency import LATENCY_SAMPLES, measure_rpc, measure_tacoq
from bench.relay_throughput import measure_relay, measure_sink

RELAY_LATENCY = Scenario(
    name="relay-latency",
    description=(
        f"One task at a time ({LATENCY_SAMPLES} round trips after 20 warm-up ones, 10 ms "
        "apart), p50 in µs from the handler finishing to the client seeing the result. TacoQ: "
        "a `tacoq worker` process (no-op handler returning `time.time()`, concurrency 1) and "
        "a `tacoq relay` process over amqp:// and postgresql://, both pinned to core 0; the "
        "driver parks `RelayClient.wait(id)` (HTTP long-poll on a loopback port), publishes "
        "the task with that id, and stops the clock when `wait` returns it COMPLETED. "
        "Baseline: the same round trip as raw aio-pika RPC (a persistent request with "
        "`reply_to`; a raw consumer process, pinned, stamps `time.time()`, replies and acks). "
        "Notes: p99 (ms) and publish -> result (from just before the publish call; ms). A "
        "ratio above 1 means slower than the baseline."
    ),
    unit="µs",
    candidates=(
        Variant("tacoq worker -> relay -> RelayClient.wait (p50)", measure_tacoq, tacoq=True),
    ),
    baseline=Variant("raw aio-pika RPC reply (p50)", measure_rpc),
)

RELAY_THROUGHPUT = Scenario(
    name="relay-throughput",
    description=(
        "Task completions/s stored in Postgres by one process pinned to core 0, draining "
        "max(N, 10,000) tasks' pre-loaded relay traffic (at most 50,000): per task its "
        "assignment's copy plus RUNNING and COMPLETED events batched 50 per updates message "
        "(three updates per task). `tacoq relay --no-http --no-cleanup` over amqp:// and "
        "postgresql:// against raw aio-pika (same prefetch 2,000, batches of up to 1,000 "
        "messages gathered the same way, one multiple ack per batch) writing with raw psycopg "
        "`executemany` upserts (an insert per assignment, an upsert per update that never "
        "moves a COMPLETED row back). Timed from the consumer appearing on the relay queue "
        "until a 20 ms COUNT poll finds all N tasks COMPLETED; then the queue is checked "
        "empty and every row complete. Notes: the process's CPU seconds per 1,000 tasks and "
        "how busy its core was."
    ),
    unit="tasks/s",
    candidates=(Variant("tacoq relay (batch 1,000, prefetch 2,000)", measure_relay, tacoq=True),),
    baseline=Variant("raw aio-pika + psycopg executemany", measure_sink),
)

RELAY_HEARTBEATS = Scenario(
    name="relay-heartbeats",
    description=(
        f"What one worker heartbeat costs the relay: µs of CPU per heartbeat (lower is better) "
        f"of one process pinned to core 0 draining a pre-loaded control queue: {WORKERS} "
        "workers' announcements, then N heartbeats (N from 5,000 to 10,000) round-robin over "
        f"them, each listing {RUNNING_IDS} running task ids (transient, a ttl of an hour). "
        "`tacoq relay --no-http --no-cleanup` over amqp:// and postgresql:// (its control "
        "intake: decode, `store.touch_worker`, ack; prefetch 100) against raw aio-pika at the "
        "same prefetch, one message at a time, the name read from the JSON body, one "
        "autocommit `UPDATE ... SET heartbeat = ..., seen_at = ...` per heartbeat (an upsert "
        "per announcement) with raw psycopg, then the ack, into a table of the same shape. "
        "CPU is the process tree's (psutil, user + system), from the consumer appearing on the "
        "control queue until the queue is empty and a 20 ms poll finds every worker's last "
        "heartbeat in the table; the announcements' share is in it. Then the queue is checked "
        "empty and every row holds its last heartbeat. Notes: heartbeats/s, how busy the core "
        f"was, and how many workers beating every {INTERVAL_S:g} s (the default) that CPU per "
        "heartbeat lets one core follow at 1 % of its time."
    ),
    unit="µs CPU/heartbeat",
    candidates=(
        Variant("tacoq relay (control intake, prefetch 100)", measure_relay_heartbeats, tacoq=True),
    ),
    baseline=Variant("raw aio-pika + psycopg UPDATE per heartbeat", measure_heartbeat_sink),
    sample_tasks=heartbeat_count,
)
