-- Payments (docs/PAYMENTS.md): the cashier's deposits and withdrawals and every PSP
-- notification, kept raw. The money itself moves in the shards' batches (transactions,
-- entries); these tables hold the payment's state machine, the PSP's references for
-- reconciliation, and the evidence.

-- A deposit intent opened by the operator's cashier (POST /v1/payments/deposits).
CREATE TABLE payment_deposits (
    partner_id          text NOT NULL,
    merchant_reference  text NOT NULL,         -- the operator's, unique per partner
    player_id           text NOT NULL,
    currency            text NOT NULL,
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    psp                 text NOT NULL,         -- the PSP integration's name
    state               text NOT NULL,         -- opening|open|refused|credited|failed
    psp_reference       text,                  -- Adyen pspReference / Stripe payment_intent
    refusal_code        text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (partner_id, merchant_reference),
    FOREIGN KEY (partner_id, player_id) REFERENCES players (partner_id, player_id)
);
CREATE INDEX payment_deposits_psp_reference ON payment_deposits (partner_id, psp, psp_reference)
    WHERE psp_reference IS NOT NULL;

-- A withdrawal requested by the player (POST /v1/payments/withdrawals).
CREATE TABLE payment_withdrawals (
    partner_id          text NOT NULL,
    merchant_reference  text NOT NULL,
    player_id           text NOT NULL,
    currency            text NOT NULL,
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    psp                 text NOT NULL,
    state               text NOT NULL,         -- requested|refused|pending_review|approved|sending|sent|paid|declined|cancelled|failed|reversed
    review_reasons      text[] NOT NULL DEFAULT '{}',
    psp_reference       text,                  -- the payout's reference at the PSP
    refusal_code        text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (partner_id, merchant_reference),
    FOREIGN KEY (partner_id, player_id) REFERENCES players (partner_id, player_id)
);
CREATE INDEX payment_withdrawals_open ON payment_withdrawals (partner_id, state)
    WHERE state IN ('pending_review', 'approved', 'sending', 'sent');

-- Every state change of a deposit or withdrawal: who or what moved it, and why.
CREATE TABLE payment_history (
    id                  bigserial PRIMARY KEY,
    partner_id          text NOT NULL,
    payment_kind        text NOT NULL,         -- deposit|withdrawal
    merchant_reference  text NOT NULL,
    state               text NOT NULL,
    cause               text NOT NULL,         -- e.g. "api", "operator:<key>", "adyen:AUTHORISATION:<psp ref>"
    detail              text NOT NULL DEFAULT '',
    at                  timestamptz NOT NULL
);
CREATE INDEX payment_history_payment ON payment_history (partner_id, payment_kind, merchant_reference, id);

-- Every PSP notification item, raw, under the PSP's own identity of it (Adyen: pspReference,
-- eventCode, success; Stripe: the event id and the object). Stored before it is applied, so
-- a notification is never lost (the PSP retries until it is answered) and never applied twice
-- (the wallet's transaction id is derived from the PSP's reference of the money movement).
CREATE TABLE psp_events (
    integration         text NOT NULL,         -- the PSP integration's name
    event_key           text NOT NULL,
    partner_id          text NOT NULL,
    event_type          text NOT NULL,         -- the PSP's: AUTHORISATION, charge.refunded, ...
    kind                text NOT NULL,         -- ours: deposit_succeeded, refund, chargeback, ... or ignored
    money_key           text,                  -- the PSP's reference of the money movement
    psp_reference       text,                  -- the PSP's reference of the notified object
    related_reference   text,                  -- the payment it refers to (the deposit's PSP reference)
    merchant_reference  text,
    currency            text,
    amount_minor        bigint,
    state               text NOT NULL,         -- received|applied|parked|ignored|unmatched
    detail              text NOT NULL DEFAULT '',
    raw                 text NOT NULL,
    received_at         timestamptz NOT NULL,
    deliveries          integer NOT NULL DEFAULT 1,
    applied_at          timestamptz,
    PRIMARY KEY (integration, event_key)
);
CREATE INDEX psp_events_parked ON psp_events (integration, related_reference) WHERE state = 'parked';
CREATE INDEX psp_events_related ON psp_events (integration, related_reference, kind);
CREATE INDEX psp_events_merchant ON psp_events (partner_id, merchant_reference);

-- A player's KYC status as the operator set it (PUT /v1/players/{id}/kyc): a withdrawal of
-- a player whose status is not "verified" waits for review.
CREATE TABLE player_kyc (
    partner_id  text NOT NULL,
    player_id   text NOT NULL,
    status      text NOT NULL,                 -- unverified|pending|verified|rejected
    updated_at  timestamptz NOT NULL,
    updated_by  text NOT NULL,
    PRIMARY KEY (partner_id, player_id),
    FOREIGN KEY (partner_id, player_id) REFERENCES players (partner_id, player_id)
);
