-- Baseline wallet schema: the conventional design (one database transaction per request).
-- Created at startup with IF NOT EXISTS; lives in its own database (bench_baseline).

CREATE TABLE IF NOT EXISTS players (
    player_id   text PRIMARY KEY,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The player's materialised balance, locked with SELECT ... FOR UPDATE by every money request.
CREATE TABLE IF NOT EXISTS balances (
    player_id    text NOT NULL REFERENCES players (player_id),
    currency     text NOT NULL,
    cash_minor   bigint NOT NULL DEFAULT 0 CHECK (cash_minor >= 0),
    bonus_minor  bigint NOT NULL DEFAULT 0 CHECK (bonus_minor >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (player_id, currency)
);

-- One row per request that changes money (or was refused): the idempotency record.
CREATE TABLE IF NOT EXISTS transactions (
    id                  bigserial PRIMARY KEY,
    scope               text NOT NULL,
    transaction_id      text NOT NULL,
    kind                text NOT NULL,
    player_id           text NOT NULL,
    currency            text NOT NULL,
    amount_minor        bigint NOT NULL,
    round_id            text,
    game_id             text,
    ref_transaction_id  text,
    outcome             text NOT NULL,
    cash_after          bigint NOT NULL,
    bonus_after         bigint NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transactions_idempotency UNIQUE (scope, transaction_id)
);
CREATE INDEX IF NOT EXISTS transactions_player ON transactions (player_id, created_at);

-- Double entry: two rows per accepted transaction, summing to zero.
CREATE TABLE IF NOT EXISTS entries (
    id              bigserial PRIMARY KEY,
    tx_id           bigint NOT NULL REFERENCES transactions (id),
    account         text NOT NULL,
    currency        text NOT NULL,
    amount_minor    bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_account ON entries (account, id);
