-- Reconciliation of PSP settlement reports (docs/RECONCILIATION.md): every report line with
-- its verdict, which ledger transaction explains which line, the exceptions routed to
-- review with their evidence, and the ledger transactions a report left unsettled (timing).
-- A line is recorded once under its key, so running the same file again changes nothing.

CREATE TABLE recon_lines (
    integration             text NOT NULL,
    line_key                text NOT NULL,          -- type|psp ref|modification ref|batch (#n for a repeat)
    report                  text NOT NULL,          -- the file's sha256
    line_no                 integer NOT NULL,
    kind                    text NOT NULL,
    psp_type                text NOT NULL,
    currency                text NOT NULL,
    gross_minor             bigint NOT NULL,
    fee_minor               bigint NOT NULL,
    net_minor               bigint NOT NULL,
    psp_reference           text NOT NULL,
    modification_reference  text NOT NULL,
    merchant_reference      text NOT NULL,
    batch                   text NOT NULL,
    outcome                 text NOT NULL,          -- a category or an exception (gateway/reconciliation/matching.py)
    detail                  text NOT NULL,
    txn_id                  bigint,                 -- the ledger transaction that explains it (none for an exception)
    recorded_at             timestamptz NOT NULL,
    PRIMARY KEY (integration, line_key)
);
-- A ledger transaction explains at most one line.
CREATE UNIQUE INDEX recon_lines_txn ON recon_lines (integration, txn_id) WHERE txn_id IS NOT NULL;

-- Each report file run: its totals, so a rerun answers with them at once.
CREATE TABLE recon_reports (
    integration  text NOT NULL,
    report       text NOT NULL,                     -- the file's sha256
    lines        bigint NOT NULL,
    outcomes     jsonb NOT NULL,                    -- line kind -> outcome -> lines
    first_run_at timestamptz NOT NULL,
    PRIMARY KEY (integration, report)
);

-- Ledger transactions a report's period covered but the PSP had not settled yet.
CREATE TABLE recon_pending (
    integration  text NOT NULL,
    txn_id       bigint NOT NULL,
    report       text NOT NULL,
    noted_at     timestamptz NOT NULL,
    PRIMARY KEY (integration, txn_id)
);

CREATE TABLE recon_exceptions (
    id           bigserial PRIMARY KEY,
    integration  text NOT NULL,
    subject      text NOT NULL,                     -- "line:<line key>" or "txn:<txn id>"
    outcome      text NOT NULL,
    evidence     jsonb NOT NULL,
    status       text NOT NULL DEFAULT 'open',      -- open|resolved
    created_at   timestamptz NOT NULL,
    resolved_at  timestamptz,
    resolved_by  text,
    note         text,
    UNIQUE (integration, subject, outcome)
);
CREATE INDEX recon_exceptions_open ON recon_exceptions (integration, created_at) WHERE status = 'open';

-- Who did what to an exception, append-only.
CREATE TABLE recon_exception_history (
    id            bigserial PRIMARY KEY,
    exception_id  bigint NOT NULL REFERENCES recon_exceptions (id),
    action        text NOT NULL,
    note          text NOT NULL,
    actor         text NOT NULL,
    at            timestamptz NOT NULL
);

-- Fee postings of reconciliation runs are ledger transactions of their own (house accounts
-- only: psp_clearing -> psp_fee of the PSP integration), numbered in a range no shard uses:
-- shard id 65535 (gateway/reconciliation/store.py, book_fees).
CREATE SEQUENCE recon_txn_seq;

-- The PSP money movements of the ledger by the PSP's reference (transactions.game_id), for
-- matching; partial, so the game traffic's inserts do not pay for it.
CREATE INDEX transactions_psp_reference ON transactions (scope, game_id)
    WHERE kind IN ('deposit', 'refund', 'refund_reversal', 'chargeback', 'chargeback_reversal', 'withdrawal_paid');
-- Deposits by their intent (the operator's merchant reference), the second key of matching.
CREATE INDEX transactions_deposit_reference ON transactions (scope, reference_id) WHERE kind = 'deposit';
