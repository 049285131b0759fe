-- TacoQ store schema, version 2: dead letters. Runs with search_path set to the store's schema.
--
-- The relay consumes the namespace's dead-letter queue into this table: the store owns dead
-- letters (docs/architecture.md, "Dead letters"). One row per dead letter id; a message
-- requeued and dead-lettered again keeps its id, so `count` grows on one row. Text columns
-- hold what the relay made storable (no NUL); the body is exact bytes, cut at the relay's
-- limit (`body_size` is the whole body's size).

CREATE TABLE dead_letters (
    id            uuid        PRIMARY KEY,
    origin        text        NOT NULL,
    reason        text        NOT NULL,
    headers       jsonb       NOT NULL,
    content_type  text        NOT NULL,
    body          bytea       NOT NULL,
    body_size     bigint      NOT NULL,
    task_id       uuid,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    count         integer     NOT NULL
);

-- Listing, newest first, ties by id (keyset pagination).
CREATE INDEX dead_letters_newest ON dead_letters (last_seen DESC, id DESC);
CREATE INDEX dead_letters_task ON dead_letters (task_id) WHERE task_id IS NOT NULL;
