-- 0007: sportsbook markets, bets and results (issue "Sportsbook", docs/SPORTSBOOK.md).
--
-- The money of a bet never lives here: its stake is a debit in `transactions` under the
-- idempotency key (<partner>:sportsbook, bet_id), its payout a credit naming that debit, a
-- void the rollback of it, all applied by the player's shard. These tables hold the terms
-- the settlement math needs (legs, exact odds, stake convention) and the trading side's
-- markets and results. Every row belongs to one partner (docs/SECURITY.md, "Tenancy").
--
-- Odds are stored exactly: "decimal" is the decimal odds as a fraction "num/den" in lowest
-- terms (gateway/sportsbook/odds.py), beside the notation and text the bettor was shown.

CREATE TABLE sportsbook_markets (
    partner_id    text NOT NULL,
    market_id     text NOT NULL,
    event         text NOT NULL,
    status        text NOT NULL CHECK (status IN ('open', 'suspended', 'closed')),
    price_version bigint NOT NULL CHECK (price_version >= 0),
    selections    jsonb NOT NULL,   -- [{"selection_id", "odds": {"exact", "style", "text"}}]
    limits        jsonb NOT NULL,   -- {"market_liability_max_minor", ...} (absent: unlimited)
    each_way      jsonb,            -- {"fraction": "1/4", "places": 3}; JSON null: win only
    currency      text NOT NULL,    -- the currency its limits are written in
    revision      bigint NOT NULL,  -- +1 on every change: orders the Redis mirror's updates
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, market_id)
);

CREATE TABLE sportsbook_bets (
    partner_id     text NOT NULL,
    bet_id         text NOT NULL,
    player_id      text NOT NULL,
    currency       text NOT NULL,
    bet_type       text NOT NULL,
    terms          jsonb NOT NULL,  -- the canonical request: the idempotency comparison
    legs           jsonb NOT NULL,  -- [{"market_id", "selection_id", "odds": {...}, "place_fraction"}] as accepted
    lines          integer NOT NULL CHECK (lines > 0),
    outlay_minor   bigint NOT NULL CHECK (outlay_minor > 0),
    potential_return_minor bigint NOT NULL CHECK (potential_return_minor >= 0),
    -- placing: terms stored, stake not yet debited; refused: see refusal_code;
    -- open: stake debited; settled: paid (return_minor, by payout_txn); cashed_out: paid
    -- at the caller's price, final
    state          text NOT NULL CHECK (state IN ('placing', 'open', 'refused', 'settled', 'cashed_out')),
    refusal_code   text,
    return_minor   bigint CHECK (return_minor >= 0),
    settled_by     text,            -- the result_id whose arrival settled it (last), or 'cashout'
    payout_txn     text,            -- the transaction id of the payout credit now standing
    created_at     timestamptz NOT NULL DEFAULT now(),
    settled_at     timestamptz,
    PRIMARY KEY (partner_id, bet_id)
);

CREATE TABLE sportsbook_bet_legs (
    partner_id   text NOT NULL,
    bet_id       text NOT NULL,
    leg_no       integer NOT NULL CHECK (leg_no >= 0),
    market_id    text NOT NULL,
    selection_id text NOT NULL,
    PRIMARY KEY (partner_id, bet_id, leg_no),
    FOREIGN KEY (partner_id, bet_id) REFERENCES sportsbook_bets (partner_id, bet_id)
);
-- Settlement finds the bets of a market through this index.
CREATE INDEX sportsbook_bet_legs_market ON sportsbook_bet_legs (partner_id, market_id, bet_id);

-- Results as the trading side sent them, one row per result_id (idempotency key); a later
-- result_id for the same selection corrects an earlier one. `settled_at` is set once the
-- settlement driver has settled every bet the result completed.
CREATE TABLE sportsbook_results (
    partner_id  text NOT NULL,
    result_id   text NOT NULL,
    market_id   text NOT NULL,
    results     jsonb NOT NULL,     -- [{"selection_id", "outcome", "dead_heat_factor", ...}]
    recorded_at timestamptz NOT NULL DEFAULT now(),
    settled_at  timestamptz,
    PRIMARY KEY (partner_id, result_id),
    FOREIGN KEY (partner_id, market_id) REFERENCES sportsbook_markets (partner_id, market_id)
);
CREATE INDEX sportsbook_results_pending ON sportsbook_results (recorded_at) WHERE settled_at IS NULL;
