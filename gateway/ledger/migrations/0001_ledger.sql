-- 0001: the ledger (DESIGN.md section 4).
-- Double entry: every transaction posts entries that sum to zero per currency; accounts
-- carry materialised balances updated in the same database transaction as their entries.

CREATE TABLE players (
    player_id     text PRIMARY KEY,
    country       text NOT NULL,
    status        text NOT NULL DEFAULT 'active',
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL
);

-- Accounts are named: player:<id>:cash, player:<id>:bonus, house:<purpose>:<scope>:s<shard>.
CREATE TABLE accounts (
    account        text NOT NULL,
    currency       text NOT NULL,
    player_id      text REFERENCES players (player_id),
    balance_minor  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account, currency),
    -- player balances never go negative; house accounts are the counterparties and may.
    CONSTRAINT player_balance_non_negative CHECK (player_id IS NULL OR balance_minor >= 0)
);
CREATE INDEX accounts_player ON accounts (player_id) WHERE player_id IS NOT NULL;

-- One row per idempotency key: the stored outcome. (scope, transaction_id) is unique: the
-- database is the final guard against a double apply (DESIGN.md section 5).
CREATE TABLE transactions (
    txn_id              bigint PRIMARY KEY,          -- shard_id << 40 | per-shard sequence
    shard_id            integer NOT NULL,
    scope               text NOT NULL,               -- partner id or provider name
    transaction_id      text NOT NULL,               -- the caller's id: the idempotency key
    kind                text NOT NULL,               -- deposit|withdraw|debit|credit|rollback|tombstone
    player_id           text NOT NULL,
    currency            text NOT NULL,
    amount_minor        bigint NOT NULL,
    code                text NOT NULL,               -- ok, or the stored refusal
    cash_after_minor    bigint NOT NULL,
    bonus_after_minor   bigint NOT NULL,
    cash_delta_minor    bigint NOT NULL,
    bonus_delta_minor   bigint NOT NULL,
    round_id            text,
    game_id             text,
    reference_id        text,                        -- bet named by a credit/rollback; rollback key of a tombstone
    bet_state           text,                        -- debits: open|settled|rolled_back
    credit_type         text,                        -- credits: win|jackpot|promo|...
    created_at          timestamptz NOT NULL,
    CONSTRAINT transactions_idempotency_key UNIQUE (scope, transaction_id),
    CONSTRAINT amount_non_negative CHECK (amount_minor >= 0)
);
CREATE INDEX transactions_open_bets ON transactions (player_id) WHERE bet_state = 'open';
CREATE INDEX transactions_player_time ON transactions (player_id, created_at);
CREATE INDEX transactions_created_at ON transactions (created_at);

CREATE TABLE entries (
    txn_id        bigint NOT NULL,
    account       text NOT NULL,
    currency      text NOT NULL,
    delta_minor   bigint NOT NULL CHECK (delta_minor <> 0)
);
CREATE INDEX entries_txn ON entries (txn_id);

-- Audit: every state-changing request, accepted or refused, one row, written in the same
-- commit as its effects. Hash-chained per shard: hash = sha256(prev_hash || record), where
-- record is the exact canonical JSON text stored here, so any edit breaks the chain.
CREATE TABLE audit_log (
    shard_id        integer NOT NULL,
    seq             bigint NOT NULL,
    batch_id        bigint NOT NULL,
    recorded_at     timestamptz NOT NULL,
    kind            text NOT NULL,
    scope           text,
    transaction_id  text,
    player_id       text,
    code            text NOT NULL,
    record          text NOT NULL,
    prev_hash       bytea NOT NULL,
    hash            bytea NOT NULL,
    PRIMARY KEY (shard_id, seq)
);
CREATE INDEX audit_player ON audit_log (player_id, recorded_at) WHERE player_id IS NOT NULL;
CREATE INDEX audit_recorded_at ON audit_log (recorded_at);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

-- Sharding (DESIGN.md section 6): player -> bucket (crc32 mod bucket_count) -> shard.
-- Each shard holds a lease with an epoch; claiming or moving buckets bumps the epochs of
-- the shards involved, and every batch commits only while its shard's lease epoch is the
-- one it claimed (SELECT ... FOR SHARE), so a paused old owner cannot write.
CREATE TABLE shard_leases (
    shard_id     integer PRIMARY KEY,
    epoch        bigint NOT NULL,
    claimed_at   timestamptz NOT NULL,
    claimed_by   text NOT NULL
);
CREATE TABLE shard_buckets (
    bucket       integer PRIMARY KEY,
    shard_id     integer NOT NULL,
    epoch        bigint NOT NULL
);
