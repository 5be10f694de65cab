-- 0004: partner tenancy (docs/SECURITY.md, "Tenancy").
--
-- A player belongs to the partner (operator brand) that created it and is identified by
-- (partner_id, player_id) everywhere; the idempotency scope becomes "<partner_id>:<source>"
-- (source "api" or a provider integration's name), so no two integrations share a key
-- space. Player ledger accounts are named player:<partner_id>:<player_id>:<kind>.
--
-- Existing data: a player's partner is the partner that created it (players.created_by was
-- the creating partner's id). A transaction's partner is its player's; its scope S becomes
-- "<partner>:api" when S was the partner id itself, else "<partner>:S" (S was a provider
-- name, which is also the name of that provider's first integration). Player accounts and
-- their entries are renamed to the new account names: identifiers only, no amount changes
-- (the append-only trigger on entries is disabled for that one statement and re-enabled in
-- the same transaction). Audit rows are never rewritten: partner_id is NULL on records
-- written before this migration (their record JSON names the scope).

ALTER TABLE accounts DROP CONSTRAINT accounts_player_id_fkey;
ALTER TABLE players ADD COLUMN partner_id text;
UPDATE players SET partner_id = created_by;
ALTER TABLE players ALTER COLUMN partner_id SET NOT NULL;
ALTER TABLE players DROP CONSTRAINT players_pkey;
ALTER TABLE players ADD PRIMARY KEY (partner_id, player_id);
ALTER TABLE players ADD CONSTRAINT players_partner_id_format
    CHECK (partner_id ~ '^[a-z0-9][a-z0-9_-]{0,31}$') NOT VALID;

ALTER TABLE accounts ADD COLUMN partner_id text;
UPDATE accounts a SET partner_id = p.partner_id FROM players p WHERE a.player_id = p.player_id;
CREATE TEMPORARY TABLE account_renames ON COMMIT DROP AS
    SELECT account AS old_name,
           'player:' || partner_id || ':' || player_id || ':' || split_part(account, ':', 3) AS new_name
    FROM (SELECT DISTINCT account, partner_id, player_id FROM accounts WHERE player_id IS NOT NULL) a;
UPDATE accounts a SET account = r.new_name FROM account_renames r WHERE a.account = r.old_name;
ALTER TABLE entries DISABLE TRIGGER entries_append_only;
UPDATE entries e SET account = r.new_name FROM account_renames r WHERE e.account = r.old_name;
ALTER TABLE entries ENABLE TRIGGER entries_append_only;
ALTER TABLE accounts ADD CONSTRAINT accounts_player_fkey
    FOREIGN KEY (partner_id, player_id) REFERENCES players (partner_id, player_id);
ALTER TABLE accounts ADD CONSTRAINT accounts_player_has_partner
    CHECK ((player_id IS NULL) = (partner_id IS NULL));
DROP INDEX accounts_player;
CREATE INDEX accounts_player ON accounts (partner_id, player_id) WHERE player_id IS NOT NULL;

ALTER TABLE transactions ADD COLUMN partner_id text;
UPDATE transactions t SET partner_id = p.partner_id,
       scope = p.partner_id || ':' || CASE WHEN t.scope = p.partner_id THEN 'api' ELSE t.scope END
FROM players p WHERE t.player_id = p.player_id;
ALTER TABLE transactions ALTER COLUMN partner_id SET NOT NULL;
DROP INDEX transactions_open_bets;
DROP INDEX transactions_player_time;
CREATE INDEX transactions_open_bets ON transactions (partner_id, player_id) WHERE bet_state = 'open';
CREATE INDEX transactions_player_time ON transactions (partner_id, player_id, created_at);

ALTER TABLE audit_log ADD COLUMN partner_id text;
DROP INDEX audit_player;
CREATE INDEX audit_player ON audit_log (partner_id, player_id, recorded_at) WHERE player_id IS NOT NULL;

DROP FUNCTION gateway_write_batch(
    integer, bigint,
    bigint[], text[], text[], text[], text[], text[], bigint[], text[], bigint[], bigint[], bigint[],
    bigint[], text[], text[], text[], text[], text[], timestamptz[],
    text[], text[], text[], text[], timestamptz[],
    text[], text[], text[], bigint[],
    text[], text[], bigint[],
    bigint[], text[], text[], bigint[],
    text[], text[], text[],
    text[], text[], text[],
    bigint[], bigint[], timestamptz[], text[], text[], text[], text[], text[], text[], bytea[], bytea[],
    text[], text[]
);

-- The batch function of 0003 with a partner_id array beside every player_id array. The
-- client passes every argument by name (gateway/ledger/store.py), so the order below is
-- free; errors GW001 (fence) and GW002 (key conflict) are unchanged.
CREATE FUNCTION gateway_write_batch(
    p_shard_id integer, p_epoch bigint,
    t_txn_id bigint[], t_scope text[], t_transaction_id text[], t_kind text[], t_partner_id text[],
    t_player_id text[], t_currency text[], t_amount_minor bigint[], t_code text[], t_cash_after bigint[],
    t_bonus_after bigint[], t_cash_delta bigint[], t_bonus_delta bigint[], t_round_id text[],
    t_game_id text[], t_reference_id text[], t_bet_state text[], t_credit_type text[],
    t_created_at timestamptz[],
    n_partner_id text[], n_player_id text[], n_country text[], n_status text[], n_created_by text[],
    n_created_at timestamptz[],
    a_account text[], a_currency text[], a_partner_id text[], a_player_id text[], a_balance bigint[],
    h_account text[], h_currency text[], h_delta bigint[],
    e_txn_id bigint[], e_account text[], e_currency text[], e_delta bigint[],
    b_scope text[], b_transaction_id text[], b_state text[],
    r_partner_id text[], r_player_id text[], r_scope text[], r_round_id text[],
    l_seq bigint[], l_batch_id bigint[], l_recorded_at timestamptz[], l_kind text[], l_scope text[],
    l_transaction_id text[], l_partner_id text[], l_player_id text[], l_code text[], l_record text[],
    l_prev_hash bytea[], l_hash bytea[],
    s_partner_id text[], s_player_id text[], s_status text[]
) RETURNS integer LANGUAGE plpgsql
-- Custom plans: a generic plan cannot see the arrays' sizes and chose sequential scans of
-- transactions for the bet-state updates (seen in pg_stat_user_tables under load).
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    held bigint;
    inserted integer;
    conflicts jsonb;
BEGIN
    SELECT epoch INTO held FROM shard_leases WHERE shard_id = p_shard_id FOR SHARE;
    IF held IS DISTINCT FROM p_epoch THEN
        RAISE EXCEPTION USING ERRCODE = 'GW001',
            MESSAGE = format('shard %s lease epoch is %s, this writer holds %s', p_shard_id, held, p_epoch);
    END IF;

    INSERT INTO transactions (txn_id, shard_id, scope, transaction_id, kind, partner_id, player_id,
                              currency, amount_minor, code, cash_after_minor, bonus_after_minor,
                              cash_delta_minor, bonus_delta_minor, round_id, game_id,
                              reference_id, bet_state, credit_type, created_at)
    SELECT u.txn_id, p_shard_id, u.scope, u.transaction_id, u.kind, u.partner_id, u.player_id,
           u.currency, u.amount_minor, u.code, u.cash_after, u.bonus_after, u.cash_delta,
           u.bonus_delta, u.round_id, u.game_id, u.reference_id, u.bet_state, u.credit_type,
           u.created_at
    FROM unnest(t_txn_id, t_scope, t_transaction_id, t_kind, t_partner_id, t_player_id, t_currency,
                t_amount_minor, t_code, t_cash_after, t_bonus_after, t_cash_delta, t_bonus_delta,
                t_round_id, t_game_id, t_reference_id, t_bet_state, t_credit_type, t_created_at)
         AS u(txn_id, scope, transaction_id, kind, partner_id, player_id, currency, amount_minor,
              code, cash_after, bonus_after, cash_delta, bonus_delta, round_id, game_id,
              reference_id, bet_state, credit_type, created_at)
    ON CONFLICT (scope, transaction_id) DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    IF inserted <> coalesce(cardinality(t_txn_id), 0) THEN
        SELECT jsonb_agg(jsonb_build_array(u.scope, u.transaction_id)) INTO conflicts
        FROM unnest(t_txn_id, t_scope, t_transaction_id) AS u(txn_id, scope, transaction_id)
        JOIN transactions t ON t.scope = u.scope AND t.transaction_id = u.transaction_id
        WHERE t.txn_id <> u.txn_id;
        RAISE EXCEPTION USING ERRCODE = 'GW002', MESSAGE = 'idempotency keys already stored',
            DETAIL = coalesce(conflicts, '[]'::jsonb)::text;
    END IF;

    INSERT INTO players (partner_id, player_id, country, status, created_by, created_at)
    SELECT * FROM unnest(n_partner_id, n_player_id, n_country, n_status, n_created_by, n_created_at);

    UPDATE players p SET status = u.status
    FROM unnest(s_partner_id, s_player_id, s_status) AS u(partner_id, player_id, status)
    WHERE p.partner_id = u.partner_id AND p.player_id = u.player_id;

    INSERT INTO accounts (account, currency, partner_id, player_id, balance_minor)
    SELECT * FROM unnest(a_account, a_currency, a_partner_id, a_player_id, a_balance)
    ON CONFLICT (account, currency) DO UPDATE SET balance_minor = EXCLUDED.balance_minor;

    INSERT INTO accounts (account, currency, partner_id, player_id, balance_minor)
    SELECT u.a, u.c, NULL, NULL, u.d FROM unnest(h_account, h_currency, h_delta) AS u(a, c, d)
    ON CONFLICT (account, currency)
    DO UPDATE SET balance_minor = accounts.balance_minor + EXCLUDED.balance_minor;

    INSERT INTO entries (txn_id, account, currency, delta_minor)
    SELECT * FROM unnest(e_txn_id, e_account, e_currency, e_delta);

    UPDATE transactions t SET bet_state = u.state
    FROM unnest(b_scope, b_transaction_id, b_state) AS u(scope, transaction_id, state)
    WHERE t.scope = u.scope AND t.transaction_id = u.transaction_id;

    UPDATE transactions t SET bet_state = 'settled'
    FROM unnest(r_partner_id, r_player_id, r_scope, r_round_id) AS u(partner_id, player_id, scope, round_id)
    WHERE t.bet_state = 'open' AND t.partner_id = u.partner_id AND t.player_id = u.player_id
      AND t.scope = u.scope AND t.round_id = u.round_id;

    INSERT INTO audit_log (shard_id, seq, batch_id, recorded_at, kind, scope, transaction_id,
                           partner_id, player_id, code, record, prev_hash, hash)
    SELECT p_shard_id, u.* FROM unnest(l_seq, l_batch_id, l_recorded_at, l_kind, l_scope,
                                       l_transaction_id, l_partner_id, l_player_id, l_code,
                                       l_record, l_prev_hash, l_hash) AS u;
    RETURN inserted;
END $$;
