-- TacoQ store schema, version 1. Runs with search_path set to the store's schema.
--
-- One row per task: the latest state, folded from its events by tacoq.merge. Error messages
-- and tracebacks are UTF-8 bytes (bytea) because Postgres text cannot hold NUL characters and
-- an exception's message may; payloads are exact bytes with their content type.

CREATE TABLE tasks (
    id              uuid        PRIMARY KEY,
    task_kind       text        NOT NULL,
    worker_kind     text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED')),
    priority        integer     NOT NULL,
    attempt         integer     NOT NULL,
    ttl             bigint      NOT NULL,
    is_error        boolean     NOT NULL,
    error_type      text,
    error_message   bytea,
    error_traceback bytea,
    input_type      text,
    input_data      bytea,
    output_type     text,
    output_data     bytea,
    created_at      timestamptz,
    started_at      timestamptz,
    completed_at    timestamptz,
    executed_by     text,
    -- completed_at + ttl, computed by the writer (timestamptz + interval is not immutable,
    -- so it cannot be a generated column); NULL until the task completes.
    expires_at      timestamptz
);

-- Cleanup: completed rows in expiry order.
CREATE INDEX tasks_expiry ON tasks (expires_at) WHERE status = 'COMPLETED';

-- Listing, newest first, rows without created_at last, ties by id (keyset pagination).
CREATE INDEX tasks_newest ON tasks (created_at DESC NULLS LAST, id DESC);
CREATE INDEX tasks_status_newest ON tasks (status, created_at DESC NULLS LAST, id DESC);
CREATE INDEX tasks_kind_newest ON tasks (task_kind, created_at DESC NULLS LAST, id DESC);
