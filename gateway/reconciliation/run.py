"""One reconciliation run: a settlement report streamed through ``matching.classify`` against
the ledger read in batches (docs/RECONCILIATION.md, "A run").

The whole run is one database transaction: a malformed file (``lines.ReportError``) books
nothing, and a run either records every line or none. Lines are recorded under their key,
so running the same file again records nothing new and changes nothing; a line that an
earlier report already recorded is a ``duplicate_line``. Memory is bounded by
``chunk_lines`` (the lines of one batch, their ledger rows) plus one running total per
settlement batch; the file is never held whole.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from gateway import clock
from gateway.reconciliation import adyen_report, matching, stripe_report
from gateway.reconciliation.lines import ReportLine
from gateway.reconciliation.matching import LEDGER_KIND, LedgerRow, Verdict
from gateway.reconciliation.store import ReconStore

PARSERS: dict[str, Callable[[Iterable[str]], Iterator[ReportLine]]] = {
    "adyen": adyen_report.parse, "stripe": stripe_report.parse,
}
DAY_US = 86_400_000_000
UNSETTLED_MAX = 100_000  # ledger transactions one run examines for "missing at the PSP"


@dataclass
class Summary:
    """What a run found: lines per (line kind, outcome), the new exceptions, the match rate."""

    report: str  # the file's sha256
    lines: int = 0
    recorded: int = 0  # new lines (0 when the same file runs again)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # line kind -> outcome -> lines
    missing_at_psp: int = 0
    pending: int = 0  # ledger transactions of the period left for a later report (timing)
    exceptions_open: int = 0
    seen_before: bool = False  # this file was reconciled before (a rerun)
    fees_minor: dict[str, int] = field(default_factory=dict)  # currency -> fees booked by this run

    def match_rate(self) -> dict[str, float]:
        """Per line kind: the share of lines matched automatically (not an exception), in
        percent, to two places (a figure for people, not money)."""
        rates = {}
        for kind, outcomes in self.outcomes.items():
            total = sum(outcomes.values())
            matched = sum(n for outcome, n in outcomes.items() if outcome not in matching.EXCEPTIONS)
            rates[kind] = round(100 * matched / total, 2) if total else 100.0
        return rates


def line_key(line: ReportLine) -> str:
    return "|".join(line.key())


def _evidence(line: ReportLine | None, rows: list[LedgerRow], webhooks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"line": msgspec.to_builtins(line) if line is not None else None,
            "ledger": [row._asdict() for row in rows], "webhooks": webhooks}


class _Counter:
    """Reads a text file line by line, counting bytes for the progress bar."""

    def __init__(self, path: Path, progress: Callable[[int], None] | None) -> None:
        self.path = path
        self.progress = progress

    def __iter__(self) -> Iterator[str]:
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            for text in handle:
                if self.progress is not None:
                    self.progress(len(text))
                yield text


async def reconcile(conn: asyncpg.Connection, psp: str, integration: str, scope: str, path: Path, *,
                    chunk_lines: int = 20_000, grace_days: int = 3,
                    progress: Callable[[int], None] | None = None) -> Summary:
    """Reconcile the report at ``path`` (``psp``: "adyen" or "stripe") for the PSP
    integration ``integration`` (ledger scope ``scope``). Raises lines.ReportError (nothing
    recorded) for a malformed file."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    summary = Summary(report=digest.hexdigest())
    store = ReconStore(conn, integration, scope)
    reader = _Reader(PARSERS[psp], _Counter(path, progress), chunk_lines, asyncio.get_running_loop())
    async with conn.transaction():
        await store.lock()
        previous = await store.seen(summary.report)
        summary.seen_before = previous is not None
        producing = asyncio.get_running_loop().run_in_executor(None, reader.produce)
        try:
            while (chunk := await reader.chunks.get()) is not None:
                if isinstance(chunk, BaseException):
                    raise chunk
                await _chunk(store, summary, chunk)  # the reader parses the next chunk meanwhile
        finally:
            reader.stop()
            await producing
        summary.lines = reader.lines
        await _payouts(store, summary, reader.payouts, reader.batch_net)
        if summary.lines:
            await _unsettled(store, summary, reader.first_us, reader.last_us - grace_days * DAY_US, reader.last_us)
        if previous is not None:  # this file again: its totals as first found
            summary.outcomes = previous
        await store.book_fees(summary.report, summary.fees_minor, clock.now_us())
        await store.finish(summary.report, summary.lines, summary.outcomes, clock.now_us())
        summary.exceptions_open = int(await conn.fetchval(
            "SELECT count(*) FROM recon_exceptions WHERE integration = $1 AND status = 'open'", integration))
    return summary


class _Reader:
    """Parses the report on a thread, a chunk ahead of the matching (which waits on the
    database meanwhile): at most two chunks are held at once (``chunks`` is bounded). Keeps
    the run's totals: lines, the period, each settlement batch's net, the merchant payouts."""

    def __init__(self, parse: Callable[[Iterable[str]], Iterator[ReportLine]], rows: Iterable[str],
                 chunk_lines: int, loop: asyncio.AbstractEventLoop) -> None:
        self.parse = parse
        self.rows = rows
        self.chunk_lines = chunk_lines
        self.loop = loop
        self.chunks: asyncio.Queue[list[ReportLine] | BaseException | None] = asyncio.Queue(maxsize=1)
        self.lines = 0
        self.first_us, self.last_us = 1 << 62, 0
        self.batch_net: dict[str, int] = {}
        self.payouts: list[ReportLine] = []
        self._stopped = threading.Event()

    def stop(self) -> None:
        """The consumer is done (or failed): let a blocked producer finish."""
        self._stopped.set()
        while not self.chunks.empty():
            self.chunks.get_nowait()

    def _put(self, item: list[ReportLine] | BaseException | None) -> bool:
        while not self._stopped.is_set():
            future = asyncio.run_coroutine_threadsafe(self.chunks.put(item), self.loop)
            try:
                future.result(timeout=0.5)
                return True
            except TimeoutError:
                future.cancel()  # the queue is full and the consumer may have stopped: look again
        return False

    def produce(self) -> None:
        chunk: list[ReportLine] = []
        try:
            for line in self.parse(self.rows):
                self.lines += 1
                self.first_us, self.last_us = min(self.first_us, line.created_us), max(self.last_us, line.created_us)
                if line.kind == "merchant_payout":
                    self.payouts.append(line)
                    continue
                if line.batch:
                    self.batch_net[line.batch] = self.batch_net.get(line.batch, 0) + line.net_minor
                chunk.append(line)
                if len(chunk) >= self.chunk_lines:
                    if not self._put(chunk):
                        return
                    chunk = []
            if chunk and not self._put(chunk):
                return
            self._put(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._put(exc)


async def _chunk(store: ReconStore, summary: Summary, chunk: list[ReportLine]) -> None:
    if not chunk:
        return
    keyed = [(line_key(line), line, matching.references_of(line)) for line in chunk]
    repeat_keys = [f"{key}#{line.line_no}" for key, line, _ in keyed]
    # A repeat of this report's own lines can only be recorded if this report ran before.
    known = await store.recorded([k for k, _, _ in keyed] + (repeat_keys if summary.seen_before else []))
    refs = sorted({r for _, _, names in keyed for r in names})
    ledger = await store.ledger(refs, [])
    # The second key, only where the first found no deposit (payments.md: the strongest key first)
    merchants = sorted({line.merchant_reference for _, line, names in keyed
                        if line.kind == "payment" and line.merchant_reference
                        and not any(r.kind == "deposit" for n in names for r in ledger.get(n, ()))})
    if merchants:
        for name, rows in (await store.ledger([], merchants)).items():
            ledger.setdefault(name, []).extend(r for r in rows if r not in ledger.get(name, ()))
    refunded = sorted({line.psp_reference for _, line, _ in keyed if line.kind == "refund" and line.psp_reference})
    deposits = await store.deposit_amounts(refunded) if refunded else {}
    consumed: set[int] = set()
    seen: set[str] = set()
    items: list[tuple[str, ReportLine, Verdict]] = []
    evidence_rows: dict[str, list[LedgerRow]] = {}
    for (key, line, names), repeat_key in zip(keyed, repeat_keys, strict=True):
        if repeat_key in known:
            continue  # recorded by an earlier run of this file as a repeat
        earlier = known.get(key)
        if earlier is not None and earlier[0] == summary.report and earlier[1] == line.line_no:
            continue  # this file again: nothing changes
        duplicate = earlier is not None or key in seen
        seen.add(key)
        wanted = LEDGER_KIND.get(line.kind)
        if line.kind == "payment" and line.merchant_reference:
            names = (*names, line.merchant_reference)
        candidates: list[LedgerRow] = []
        for name in names:
            for row in ledger.get(name, ()):
                if row.kind == wanted and row.txn_id not in consumed and row not in candidates:
                    candidates.append(row)
        verdict = matching.classify(line, candidates, deposits.get(line.psp_reference), duplicate)
        final = repeat_key if duplicate else key
        if verdict.exception:
            evidence_rows[final] = [r for r in candidates if r.txn_id in verdict.txn_ids]
        else:
            consumed.update(verdict.txn_ids)
        items.append((final, line, verdict))
    await store.record(summary.report, items, clock.now_us())
    summary.recorded += len(items)
    _count(summary, items)
    exceptional = [(key, line, v) for key, line, v in items if v.exception]
    if exceptional:
        hooks = await store.webhooks(sorted({r for _, line, _ in exceptional for r in matching.references_of(line)}))
        await store.add_exceptions([
            (f"line:{key}", v.outcome, _evidence(line, evidence_rows.get(key, []),
                                                 [h for name in matching.references_of(line) for h in hooks.get(name, ())])
             | {"detail": v.detail})
            for key, line, v in exceptional], clock.now_us())


def _count(summary: Summary, items: list[tuple[str, ReportLine, Verdict]]) -> None:
    """The run's totals: lines per outcome, and the fees to book (a payment line's fees; a
    fee line's net, which is the fee itself; duplicates book nothing)."""
    fees = summary.fees_minor
    for _, line, verdict in items:
        outcomes = summary.outcomes.setdefault(line.kind, {})
        outcomes[verdict.outcome] = outcomes.get(verdict.outcome, 0) + 1
        if verdict.outcome == "duplicate_line":
            continue
        fee = -line.net_minor if line.kind == "fee" else line.fee_minor
        if fee:
            fees[line.net_currency] = fees.get(line.net_currency, 0) + fee


async def _payouts(store: ReconStore, summary: Summary, payouts: list[ReportLine], batch_net: dict[str, int]) -> None:
    """Merchant payouts against their batches' totals (classified once the whole file is read)."""
    if not payouts:
        return
    keys = [line_key(p) for p in payouts]
    known = await store.recorded(keys)
    items = [(key, p, matching.batch_check(p, batch_net.get(p.batch, 0))) for key, p in zip(keys, payouts, strict=True)
             if key not in known]
    await store.record(summary.report, items, clock.now_us())
    summary.recorded += len(items)
    _count(summary, items)
    await store.add_exceptions([(f"line:{key}", v.outcome, _evidence(p, [], []) | {"detail": v.detail})
                                for key, p, v in items if v.exception], clock.now_us())


async def _unsettled(store: ReconStore, summary: Summary, first_us: int, cutoff_us: int, last_us: int) -> None:
    """Ledger movements of the report's period that no line explains: those older than the
    grace are ``missing_at_psp`` exceptions, the newer ones wait for a later report."""
    rows = await store.unsettled(first_us, last_us, UNSETTLED_MAX)
    missing = [r for r in rows if r.created_at_us <= cutoff_us]
    waiting = [r.txn_id for r in rows if r.created_at_us > cutoff_us]
    if missing:
        hooks = await store.webhooks(sorted({r.psp_reference for r in missing if r.psp_reference}))
        await store.add_exceptions([
            (f"txn:{r.txn_id}", "missing_at_psp", _evidence(None, [r], hooks.get(r.psp_reference, [])) | {
                "detail": f"the wallet moved {r.amount_minor} {r.currency} ({r.kind}); the PSP never settled it"})
            for r in missing], clock.now_us())
    await store.mark_pending(waiting, summary.report, clock.now_us())
    summary.missing_at_psp = len(missing)
    summary.pending = len(waiting)
