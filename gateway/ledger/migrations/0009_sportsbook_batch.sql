-- 0009: the sportsbook inside the shard's batch (issue 13, docs/SPORTSBOOK.md "Placement").
--
-- 1. A bet's row is written by the same statement as its stake debit: gateway_write_batch
--    takes the batch's bet slips (k_* arrays, legs in g_*), so a bet exists exactly when
--    its stake does, and the two share the batch's one commit.
-- 2. A payout's credit carries the bet's new state (m_* arrays): settled, re-settled or
--    cashed out in the same commit as the money.
-- 3. Partial cash-out settles the bet (cashed out) and places the stake kept running as a
--    new bet, its continuation: `continued_as` names it, `cashout_minor` is the cash paid
--    (the return less the stake carried over).
-- 4. Per-player stake factors set by the trading desk (docs/SPORTSBOOK.md, "Stake factor").

ALTER TABLE sportsbook_bets
    ADD COLUMN continued_as text,
    ADD COLUMN cashout_minor bigint CHECK (cashout_minor >= 0);

-- The stake factor scales a player's per-bet stake and payout limits (1: none, no row).
CREATE TABLE sportsbook_stake_factors (
    partner_id  text NOT NULL,
    player_id   text NOT NULL,
    factor      text NOT NULL,      -- an exact fraction "num/den" in lowest terms, 0 < factor < 1
    set_by      text NOT NULL,      -- the API key id that set it
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, player_id),
    FOREIGN KEY (partner_id, player_id) REFERENCES players (partner_id, player_id)
);

DROP FUNCTION gateway_write_batch(
    integer, bigint, bigint[], text[], text[], text[], text[], text[], text[], bigint[], text[], bigint[], bigint[], bigint[], bigint[], text[], text[], text[], text[], text[], timestamptz[], text[], text[], text[], text[], text[], timestamptz[], text[], text[], text[], text[], bigint[], text[], text[], bigint[], bigint[], text[], text[], bigint[], text[], text[], text[], text[], text[], text[], text[], bigint[], bigint[], timestamptz[], text[], text[], text[], text[], text[], text[], text[], bytea[], bytea[], text[], text[], text[], bigint[], text[], text[], text[], text[], timestamptz[]
);

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
    s_partner_id text[], s_player_id text[], s_status text[],
    v_txn_id bigint[], v_partner_id text[], v_player_id text[], v_scope text[], v_reason text[],
    v_created_at timestamptz[],
    k_partner_id text[], k_bet_id text[], k_player_id text[], k_currency text[], k_bet_type text[],
    k_terms text[], k_legs text[], k_lines integer[], k_outlay bigint[], k_potential bigint[],
    k_created_at timestamptz[],
    g_partner_id text[], g_bet_id text[], g_leg_no integer[], g_market_id text[], g_selection_id text[],
    m_partner_id text[], m_bet_id text[], m_state text[], m_return bigint[], m_settled_by text[],
    m_payout_txn text[], m_from_states text[], m_continued_as text[], m_cash bigint[],
    m_settled_at timestamptz[]
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
    INSERT INTO operator_reviews (txn_id, partner_id, player_id, scope, reason, created_at)
    SELECT * FROM unnest(v_txn_id, v_partner_id, v_player_id, v_scope, v_reason, v_created_at);

    -- Sportsbook bets placed by this batch's stake debits (issue 13): the bet and its stake
    -- commit together. A row left 'placing' or 'refused' by the placement path before this
    -- migration takes the committed terms.
    INSERT INTO sportsbook_bets (partner_id, bet_id, player_id, currency, bet_type, terms, legs, lines,
                                 outlay_minor, potential_return_minor, state, created_at)
    SELECT u.p, u.b, u.pl, u.c, u.t, u.terms::jsonb, u.legs::jsonb, u.l, u.o, u.r, 'open', u.at
    FROM unnest(k_partner_id, k_bet_id, k_player_id, k_currency, k_bet_type, k_terms, k_legs, k_lines,
                k_outlay, k_potential, k_created_at) AS u(p, b, pl, c, t, terms, legs, l, o, r, at)
    ON CONFLICT (partner_id, bet_id) DO UPDATE SET terms = EXCLUDED.terms, legs = EXCLUDED.legs,
        lines = EXCLUDED.lines, outlay_minor = EXCLUDED.outlay_minor,
        potential_return_minor = EXCLUDED.potential_return_minor, state = 'open', refusal_code = NULL
    WHERE sportsbook_bets.state IN ('placing', 'refused');
    INSERT INTO sportsbook_bet_legs (partner_id, bet_id, leg_no, market_id, selection_id)
    SELECT * FROM unnest(g_partner_id, g_bet_id, g_leg_no, g_market_id, g_selection_id)
    ON CONFLICT DO NOTHING;

    -- Sportsbook bets paid by this batch's credits: settled, re-settled or cashed out, in
    -- the same commit as the money. One mark per bet (the batch folds a bet's marks into
    -- its last, with the first one's from-states).
    UPDATE sportsbook_bets b SET state = u.state, return_minor = u.ret, settled_by = u.by,
        payout_txn = u.txn, continued_as = u.cont, cashout_minor = u.cash,
        settled_at = CASE WHEN u.state IN ('settled', 'cashed_out') THEN u.at END
    FROM unnest(m_partner_id, m_bet_id, m_state, m_return, m_settled_by, m_payout_txn, m_from_states,
                m_continued_as, m_cash, m_settled_at) AS u(p, bet, state, ret, by, txn, froms, cont, cash, at)
    WHERE b.partner_id = u.p AND b.bet_id = u.bet AND b.state = ANY(string_to_array(u.froms, ','));
    RETURN inserted;
END $$;
