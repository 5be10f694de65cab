-- Responsible gaming (docs/RESPONSIBLE_GAMING.md): each player's financial limits (with any
-- increase waiting for its cooling-off), time-out or self-exclusion and time zone, stored
-- whole as the shard's RgSettings (gateway/shards/responsible.py) in the same transaction
-- as the batch that changed them. Every change is also in the audit chain.
--
-- The window sums (deposits, stakes, winnings per period) are not stored here: they are
-- the ledger's own transactions, summed per bucket when a player with limits is loaded
-- (gateway/ledger/store.py, "usage"), so they survive eviction, restart and a bucket move
-- without a write per bet.
CREATE TABLE player_rg (
    partner_id  text NOT NULL,
    player_id   text NOT NULL,
    settings    jsonb NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (partner_id, player_id),
    FOREIGN KEY (partner_id, player_id) REFERENCES players (partner_id, player_id)
);
