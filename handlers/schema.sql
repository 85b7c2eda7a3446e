-- sessionsafe handlers schema. Idempotent: every statement may run again.
CREATE TABLE IF NOT EXISTS threads (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       text        NOT NULL,
    title         text        NOT NULL DEFAULT '',
    metadata      jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    message_count bigint      NOT NULL DEFAULT 0, -- the per-thread counter: the last seq handed out
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    archived_at   timestamptz
);

-- ListThreads: a user's live threads, newest first.
CREATE INDEX IF NOT EXISTS threads_user_live_created_idx
    ON threads (user_id, created_at DESC, id DESC) WHERE archived_at IS NULL;

CREATE TABLE IF NOT EXISTS messages (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    thread_id         uuid        NOT NULL REFERENCES threads (id),
    role              text        NOT NULL,
    content           text        NOT NULL,
    client_message_id text,
    metadata          jsonb       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    seq               bigint      NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_thread_seq_key UNIQUE (thread_id, seq) -- also serves GetMessages and the count
);

-- SendMessage: a retried send with the same client id finds the first one.
CREATE UNIQUE INDEX IF NOT EXISTS messages_thread_client_id_key
    ON messages (thread_id, client_message_id) WHERE client_message_id IS NOT NULL;
