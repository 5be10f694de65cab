"""Reconciliation routes for a partner key with the ``finance`` role (docs/RECONCILIATION.md).

- ``POST /v1/payments/reconciliations/{integration}``: the settlement report itself as the
  body (``Content-Type: text/csv``, at most ``payments.report_bytes_max``), streamed to a
  temporary file and reconciled as ``gateway reconcile`` does; 200 with the summary.
- ``GET /v1/payments/reconciliations/{integration}/exceptions``: the open exceptions with
  their evidence.
- ``POST /v1/payments/reconciliations/{integration}/exceptions/{exception_id}/resolve``
  ``{"note", "actor"}``: mark one resolved.

The upload is not JSON, so it has its own small shell (authentication, role, media type,
size) instead of ``Api._wrap``; the two JSON routes go through ``Api``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
import msgspec
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import clock, metrics
from gateway.edge.api_v1 import Refused, _decode
from gateway.edge.problems import problem
from gateway.reconciliation.lines import ReportError
from gateway.reconciliation.run import reconcile
from gateway.reconciliation.store import ReconStore

if TYPE_CHECKING:
    from gateway.edge.api_v1 import Api

FINANCE_ROLE = "finance"
EXCEPTIONS_MAX = 1_000  # exceptions one GET answers, oldest first


class ResolveBody(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=1024, pattern=r"^[^\x00]*\Z")]
    actor: Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[^\x00]*\Z")] = ""


class ReconExceptionOut(msgspec.Struct):
    id: int
    subject: str  # "line:<line key>" or "txn:<ledger transaction id>"
    outcome: str  # the exception (docs/RECONCILIATION.md)
    created_at: str
    evidence: dict[str, Any]  # the PSP's line, the ledger rows, the PSP's notifications


class ReconExceptionsOut(msgspec.Struct):
    integration: str
    exceptions: list[ReconExceptionOut]


class ResolvedOut(msgspec.Struct):
    id: int
    status: str


_encoder = msgspec.json.Encoder()


class ReconciliationApi:
    def __init__(self, api: Api, pool: asyncpg.Pool) -> None:
        self.api = api
        self.ctx = api.ctx
        self.pool = pool
        self.psps = api.ctx.settings.payments.psps
        self.report_bytes_max = api.ctx.settings.payments.report_bytes_max

    def handlers(self) -> dict[str, tuple[str, Callable[[Request, str, bytes], Awaitable[Response]]]]:
        return {
            "GET /v1/payments/reconciliations/{integration}/exceptions":
                ("GET /v1/payments/reconciliations/exceptions", self.exceptions),
            "POST /v1/payments/reconciliations/{integration}/exceptions/{exception_id}/resolve":
                ("POST /v1/payments/reconciliations/exceptions/resolve", self.resolve),
        }

    def routes(self) -> list[Route]:
        return [Route("/v1/payments/reconciliations/{integration}", self.upload, methods=["POST"])]

    def _integration(self, request: Request, partner: str) -> str:
        """The partner's PSP integration of the path; another partner's is as unknown as none."""
        name = request.path_params["integration"]
        psp = self.psps.get(name)
        if psp is None or psp.partner_id != partner:
            raise Refused("unknown_psp", f"no PSP integration {name[:64]!r} of yours")
        return name

    async def exceptions(self, request: Request, partner: str, raw: bytes) -> Response:
        """200 the open exceptions (oldest first, at most EXCEPTIONS_MAX); 400 unknown_psp."""
        name = self._integration(request, partner)
        async with self.pool.acquire() as conn:
            rows = await ReconStore(conn, name, "").open_exceptions(EXCEPTIONS_MAX)
        out = ReconExceptionsOut(name, [ReconExceptionOut(r["id"], r["subject"], r["outcome"],
                                                          r["created_at"].isoformat(), orjson.loads(r["evidence"]))
                                        for r in rows])
        return Response(_encoder.encode(out), media_type="application/json")

    async def resolve(self, request: Request, partner: str, raw: bytes) -> Response:
        """200 resolved; 404 unknown_exception (none open with that id); 400 unknown_psp."""
        name = self._integration(request, partner)
        text = request.path_params["exception_id"]
        if not text.isdigit() or len(text) > 18:
            raise Refused("invalid_request", "an exception id is a number")
        body = _decode(ResolveBody, raw)
        key_id = getattr(request.state, "key_id", "") or "key"
        actor = f"{key_id}:{body.actor}" if body.actor else key_id
        async with self.pool.acquire() as conn:
            done = await ReconStore(conn, name, "").resolve(int(text), body.note, actor, clock.now_us())
        if not done:
            return problem("unknown_exception", f"no open exception {text} of {name}")
        return Response(_encoder.encode(ResolvedOut(int(text), "resolved")), media_type="application/json")

    async def upload(self, request: Request) -> Response:
        """200 the run's summary; 400 invalid_report (with ``line`` and ``column``) or
        unknown_psp; 401; 403 forbidden (not a finance key); 413; 415 (not text/csv); 429."""
        started = time.perf_counter()
        response = await self._upload(request)
        label = "POST /v1/payments/reconciliations"
        code = getattr(response, "code", "ok" if response.status_code < 400 else "error")
        metrics.requests_total.labels(label, "", str(response.status_code), code).inc()
        metrics.request_latency_seconds.labels(label, "", str(response.status_code), code).observe(
            time.perf_counter() - started)
        return response

    async def _upload(self, request: Request) -> Response:
        principal = self.api.keys.authenticate(request.headers.get("authorization"))
        if principal is None:
            return problem("unauthorized", "send Authorization: Bearer <api key>")
        if FINANCE_ROLE not in principal.roles:
            return problem("forbidden", f"this key lacks the {FINANCE_ROLE!r} role")
        retry_after_s = await self.ctx.admit("partner", principal.partner_id)
        if retry_after_s is not None:
            return problem("rate_limited", "over the partner's rate limit", retry_after_s=retry_after_s)
        try:
            name = self._integration(request, principal.partner_id)
        except Refused as refused:
            return problem(refused.code, refused.detail)
        media = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
        if media not in ("text/csv", "application/csv"):
            return problem("unsupported_media_type", "send the report as Content-Type: text/csv")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.report_bytes_max:
            return problem("payload_too_large", f"a report is at most {self.report_bytes_max} bytes")
        psp = self.psps[name].psp
        with tempfile.TemporaryDirectory(prefix="gateway-recon-") as tmp:
            path = Path(tmp) / "report.csv"
            size = 0
            with path.open("wb") as handle:
                async for block in request.stream():
                    size += len(block)
                    if size > self.report_bytes_max:
                        return problem("payload_too_large", f"a report is at most {self.report_bytes_max} bytes")
                    handle.write(block)
            try:
                async with self.pool.acquire() as conn:
                    summary = await reconcile(conn, psp, name, f"{principal.partner_id}:{name}", path)
            except ReportError as exc:
                return problem("invalid_report", f"{exc} (nothing recorded)", line=exc.line_no, column=exc.column)
            except UnicodeDecodeError:
                return problem("invalid_report", "the report is not UTF-8 text (nothing recorded)")
        return Response(orjson.dumps({
            "integration": name, "report": summary.report, "lines": summary.lines, "recorded": summary.recorded,
            "outcomes": summary.outcomes, "match_rate_pct": summary.match_rate(),
            "missing_at_psp": summary.missing_at_psp, "pending": summary.pending,
            "exceptions_open": summary.exceptions_open, "fees_booked_minor": summary.fees_minor,
        }), media_type="application/json")
