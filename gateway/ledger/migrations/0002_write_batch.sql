-- 0002: one round trip per write-behind batch.
--
-- A batch used to be ten statements in an explicit transaction (BEGIN, fence, inserts, COPYs,
-- updates, COMMIT): ten network round trips and ten times the driver's per-statement cost,
-- paid while the next batch waits. gateway_write_batch does the same work in ONE statement,
-- which the client sends outside an explicit transaction, so the statement's implicit
-- transaction commits (and fsyncs) before the single reply comes back.
--
-- Errors it raises on purpose (the client maps them, see gateway/ledger/store.py):
--   GW001 fence: this shard's lease epoch moved (DESIGN.md section 6) -> stop the shard;
--   GW002 key conflict: some idempotency keys already exist; DETAIL is a JSON array of
--         [scope, transaction_id] pairs -> the shard re-applies (DESIGN.md section 5).
-- Raising aborts the statement, so nothing of the batch is written in either case.

CREATE FUNCTION gateway_write_batch(
    p_shard_id integer, p_epoch bigint,
    -- transactions, column-wise (TxRecord.row() order, shard_id implied)
    t_txn_id bigint[], t_scope text[], t_transaction_id text[], t_kind text[], t_player_id text[],
    t_currency text[], t_amount_minor bigint[], t_code text[], t_cash_after bigint[],
    t_bonus_after bigint[], t_cash_delta bigint[], t_bonus_delta bigint[], t_round_id text[],
    t_game_id text[], t_reference_id text[], t_bet_state text[], t_credit_type text[],
    t_created_at timestamptz[],
    -- new players
    n_player_id text[], n_country text[], n_status text[], n_created_by text[], n_created_at timestamptz[],
    -- player accounts: absolute balances
    a_account text[], a_currency text[], a_player_id text[], a_balance bigint[],
    -- house accounts: deltas
    h_account text[], h_currency text[], h_delta bigint[],
    -- entries
    e_txn_id bigint[], e_account text[], e_currency text[], e_delta bigint[],
    -- bet state changes by key, and round closes
    b_scope text[], b_transaction_id text[], b_state text[],
    r_player_id text[], r_scope text[], r_round_id text[],
    -- audit rows
    l_seq bigint[], l_batch_id bigint[], l_recorded_at timestamptz[], l_kind text[], l_scope text[],
    l_transaction_id text[], l_player_id text[], l_code text[], l_record text[], l_prev_hash bytea[],
    l_hash bytea[]
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

    INSERT INTO transactions (txn_id, shard_id, scope, transaction_id, kind, player_id, currency,
                              amount_minor, code, cash_after_minor, bonus_after_minor,
                              cash_delta_minor, bonus_delta_minor, round_id, game_id,
                              reference_id, bet_state, credit_type, created_at)
    SELECT u.txn_id, p_shard_id, u.scope, u.transaction_id, u.kind, u.player_id, u.currency,
           u.amount_minor, u.code, u.cash_after, u.bonus_after, u.cash_delta, u.bonus_delta,
           u.round_id, u.game_id, u.reference_id, u.bet_state, u.credit_type, u.created_at
    FROM unnest(t_txn_id, t_scope, t_transaction_id, t_kind, t_player_id, t_currency,
                t_amount_minor, t_code, t_cash_after, t_bonus_after, t_cash_delta, t_bonus_delta,
                t_round_id, t_game_id, t_reference_id, t_bet_state, t_credit_type, t_created_at)
         AS u(txn_id, scope, transaction_id, kind, player_id, currency, amount_minor, code,
              cash_after, bonus_after, cash_delta, bonus_delta, round_id, game_id,
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

    INSERT INTO players (player_id, country, status, created_by, created_at)
    SELECT * FROM unnest(n_player_id, n_country, n_status, n_created_by, n_created_at);

    INSERT INTO accounts (account, currency, player_id, balance_minor)
    SELECT * FROM unnest(a_account, a_currency, a_player_id, a_balance)
    ON CONFLICT (account, currency) DO UPDATE SET balance_minor = EXCLUDED.balance_minor;

    INSERT INTO accounts (account, currency, player_id, balance_minor)
    SELECT u.a, u.c, NULL, u.d FROM unnest(h_account, h_currency, h_delta) AS u(a, c, d)
    ON CONFLICT (account, currency)
    DO UPDATE SET balance_minor = accounts.balance_minor + EXCLUDED.balance_minor;

    INSERT INTO entries (txn_id, account, currency, delta_minor)
    SELECT * FROM unnest(e_txn_id, e_account, e_currency, e_delta);

    UPDATE transactions t SET bet_state = u.state
    FROM unnest(b_scope, b_transaction_id, b_state) AS u(scope, transaction_id, state)
    WHERE t.scope = u.scope AND t.transaction_id = u.transaction_id;

    UPDATE transactions t SET bet_state = 'settled'
    FROM unnest(r_player_id, r_scope, r_round_id) AS u(player_id, scope, round_id)
    WHERE t.bet_state = 'open' AND t.player_id = u.player_id AND t.scope = u.scope
      AND t.round_id = u.round_id;

    INSERT INTO audit_log (shard_id, seq, batch_id, recorded_at, kind, scope, transaction_id,
                           player_id, code, record, prev_hash, hash)
    SELECT p_shard_id, u.* FROM unnest(l_seq, l_batch_id, l_recorded_at, l_kind, l_scope,
                                       l_transaction_id, l_player_id, l_code, l_record,
                                       l_prev_hash, l_hash) AS u;
    RETURN inserted;
END $$;
