-- TacoQ store schema, version 3: workers online. Runs with search_path set to the store's schema.
--
-- One row per worker name: what the relay keeps of each worker that announced itself
-- (tacoq.model.workers.WorkerRecord). The last announcement and the last heartbeat are JSON
-- kept as sent (json, not jsonb: the exact text, and \u0000 escapes are allowed), in columns
-- of their own: a heartbeat updates `heartbeat` and `seen_at` and never the announcement
-- (which may be large, and newer). `seen_at` is when the relay last heard from the worker
-- (its clock). Names sort by code point ("C"), as the relay and the other stores do.

CREATE TABLE workers (
    name          text COLLATE "C" PRIMARY KEY,
    worker_kind   text COLLATE "C" NOT NULL,
    announcement  json,
    heartbeat     json,
    seen_at       timestamptz NOT NULL
);

-- Pruning workers not heard from since a moment.
CREATE INDEX workers_seen ON workers (seen_at);
