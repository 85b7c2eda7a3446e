-- The bank's schema: accounts and the transfers between them. Idempotent.
CREATE TABLE IF NOT EXISTS accounts (
    id         bigserial   PRIMARY KEY,
    owner      text        NOT NULL,
    balance    bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS accounts_owner_id ON accounts (owner, id);

CREATE TABLE IF NOT EXISTS transfers (
    id           bigserial   PRIMARY KEY,
    from_account bigint      NOT NULL REFERENCES accounts (id),
    to_account   bigint      NOT NULL REFERENCES accounts (id),
    amount       bigint      NOT NULL CHECK (amount > 0),
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS transfers_from_account ON transfers (from_account);
CREATE INDEX IF NOT EXISTS transfers_to_account ON transfers (to_account);
