"""Payments, the pure parts: signatures against the PSPs' published recipes (computed here
independently with hmac/hashlib), the event tables, the rules and the review reasons."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.payments import rules
from gateway.payments.adyen import mapping as adyen_mapping
from gateway.payments.adyen import signature as adyen_signature
from gateway.payments.adyen.wire import NotificationRequestItem
from gateway.payments.events import PspEvent
from gateway.payments.store import Payment
from gateway.payments.stripe import mapping as stripe_mapping
from gateway.payments.stripe import signature as stripe_signature
from gateway.payments.stripe.wire import Event
from tests.payments_helpers import ADYEN_HMAC_KEY, adyen_item, stripe_event

# ---- signatures ------------------------------------------------------------------------


def spec_adyen_signature(item: dict, key_hex: str) -> str:
    """payments.md: the eight values joined by ':', HMAC-SHA256 with the hex-decoded key, Base64."""
    values = [item.get("pspReference", ""), item.get("originalReference", ""), item.get("merchantAccountCode", ""),
              item.get("merchantReference", ""), str(item["amount"]["value"]), item["amount"]["currency"],
              item.get("eventCode", ""), item.get("success", "")]
    digest = hmac.new(bytes.fromhex(key_hex), ":".join(values).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


@given(st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=1, max_size=16),
       st.integers(0, 10**10), st.sampled_from(["AUTHORISATION", "REFUND", "CHARGEBACK"]), st.booleans(),
       st.text(alphabet="abc-_:;123 ", max_size=20))
def test_adyen_signature_is_the_spec_recipe(psp_ref, amount, code, success, merchant_ref):
    item = adyen_item(code, psp_ref, amount, merchant_reference=merchant_ref, success=success)
    assert item["additionalData"]["hmacSignature"] == spec_adyen_signature(item, ADYEN_HMAC_KEY)
    assert adyen_signature.valid(item, ADYEN_HMAC_KEY)
    tampered = {**item, "amount": {"value": amount + 1, "currency": "EUR"}}
    assert not adyen_signature.valid(tampered, ADYEN_HMAC_KEY)


def test_adyen_signature_refuses_what_is_missing_or_malformed():
    item = adyen_item("AUTHORISATION", "P1", 100)
    assert not adyen_signature.valid({k: v for k, v in item.items() if k != "additionalData"}, ADYEN_HMAC_KEY)
    assert not adyen_signature.valid({**item, "additionalData": {"hmacSignature": ""}}, ADYEN_HMAC_KEY)
    assert not adyen_signature.valid(item, "not hex")
    assert not adyen_signature.valid({**item, "amount": "x"}, ADYEN_HMAC_KEY)


def test_stripe_signature_is_the_spec_recipe_with_its_tolerance():
    raw = b'{"id":"evt_1","type":"x","data":{"object":{"id":"o","object":"o"}}}'
    t = int(time.time())
    v1 = hmac.new(b"whsec_s", f"{t}.".encode() + raw, hashlib.sha256).hexdigest()
    assert stripe_signature.sign(raw, "whsec_s", t) == f"t={t},v1={v1}"
    assert stripe_signature.valid(raw, f"t={t},v1={v1}", "whsec_s", 300)
    assert not stripe_signature.valid(raw + b" ", f"t={t},v1={v1}", "whsec_s", 300)
    old = t - 301
    assert not stripe_signature.valid(raw, stripe_signature.sign(raw, "whsec_s", old), "whsec_s", 300)
    assert not stripe_signature.valid(raw, None, "whsec_s", 300)
    assert not stripe_signature.valid(raw, "garbage", "whsec_s", 300)
    assert not stripe_signature.valid(b"\xff", stripe_signature.sign(b"x", "whsec_s"), "whsec_s", 300)


# ---- event tables ----------------------------------------------------------------------


@pytest.mark.parametrize(("code", "success", "kind"), [
    ("AUTHORISATION", True, "deposit_succeeded"), ("AUTHORISATION", False, "deposit_failed"),
    ("CAPTURE", True, "ignored"), ("CANCELLATION", True, "deposit_failed"), ("REFUND", True, "refund"),
    ("REFUND", False, "ignored"), ("REFUND_FAILED", True, "refund_failed"), ("CHARGEBACK", True, "chargeback"),
    ("SECOND_CHARGEBACK", True, "chargeback"), ("CHARGEBACK_REVERSED", True, "chargeback_reversed"),
    ("PAYOUT_THIRDPARTY", True, "payout_paid"), ("PAYOUT_THIRDPARTY", False, "payout_failed"),
    ("PAYOUT_DECLINE", True, "payout_failed"), ("PAYOUT_EXPIRE", True, "payout_failed"),
    ("PAIDOUT_REVERSED", True, "payout_reversed"), ("REPORT_AVAILABLE", True, "ignored"),
])
def test_adyen_event_table(code, success, kind):
    item = msgspec.convert(adyen_item(code, "PSP1", 500, original_reference="ORIG", merchant_reference="m1",
                                      success=success), NotificationRequestItem)
    event = adyen_mapping.event_of(item)
    assert event.kind == kind
    assert event.event_key == f"PSP1:{code}:{'true' if success else 'false'}"  # Adyen's unique key
    assert event.amount_minor == 500 and event.currency == "EUR"


def test_stripe_refunds_are_one_event_each_and_a_lost_dispute_moves_nothing():
    raw = stripe_event("charge.refunded", {"id": "ch_1", "object": "charge", "amount": 900, "currency": "eur",
                                           "payment_intent": "pi_1", "refunds": {"data": [
                                               {"id": "re_1", "amount": 100, "currency": "eur"},
                                               {"id": "re_2", "amount": 200, "currency": "eur"}]}}, "evt_9")
    events = stripe_mapping.events_of(msgspec.json.decode(raw, type=Event))
    assert [(e.kind, e.money_key, e.amount_minor, e.related_reference, e.currency) for e in events] == [
        ("refund", "re:re_1", 100, "pi_1", "EUR"), ("refund", "re:re_2", 200, "pi_1", "EUR")]
    lost = stripe_event("charge.dispute.closed", {"id": "dp_1", "object": "dispute", "amount": 5, "currency": "eur",
                                                  "status": "lost", "payment_intent": "pi_1"})
    assert [e.kind for e in stripe_mapping.events_of(msgspec.json.decode(lost, type=Event))] == ["ignored"]


# ---- rules -----------------------------------------------------------------------------

NOW = datetime(2026, 12, 7, tzinfo=UTC)


def payment(kind: str = "deposit", state: str = "open", currency: str = "EUR") -> Payment:
    return Payment(kind, "demo", "m1", "u1", currency, 1_000, "adyen", state, "P1", None, (), NOW, NOW)


def event(kind: str, **fields) -> PspEvent:
    return PspEvent(event_key="k", event_type="T", kind=kind, money_key=fields.pop("money_key", "M1"),
                    currency=fields.pop("currency", "EUR"), amount_minor=fields.pop("amount_minor", 1_000), **fields)


def test_a_deposit_is_credited_in_any_state_and_once_per_money_key():
    for state in ("opening", "open", "refused", "failed", "credited"):
        d = rules.decide(event("deposit_succeeded"), payment(state=state), True, block_on_chargeback=True)
        assert d.outcome == "apply" and d.apply is not None and d.apply.transaction_id == "deposit:M1"


def test_out_of_order_items_wait_and_unmatched_ones_go_to_review():
    assert rules.decide(event("refund"), None, True, block_on_chargeback=True).outcome == "park"
    assert rules.decide(event("refund"), payment(state="open"), True, block_on_chargeback=True).outcome == "park"
    assert rules.decide(event("chargeback_reversed"), payment(state="credited"), False,
                        block_on_chargeback=True).outcome == "park"
    assert rules.decide(event("deposit_succeeded", merchant_reference="zz"), None, True,
                        block_on_chargeback=True).outcome == "unmatched"
    assert rules.decide(event("deposit_succeeded", currency="USD"), payment(), True,
                        block_on_chargeback=True).outcome == "unmatched"
    chargeback = rules.decide(event("chargeback"), payment(state="credited"), True, block_on_chargeback=True)
    assert chargeback.apply is not None and chargeback.apply.block_player


def test_payout_answers_follow_the_withdrawal_state():
    for state in rules.PAYOUT_OPEN:
        paid = rules.decide(event("payout_paid"), payment("withdrawal", state), True, block_on_chargeback=True)
        assert paid.move is not None and paid.move.to_state == "paid"
        failed = rules.decide(event("payout_failed"), payment("withdrawal", state), True, block_on_chargeback=True)
        assert failed.apply is not None and failed.apply.action == "withdrawal_returned"
    assert rules.decide(event("payout_failed"), payment("withdrawal", "cancelled"), True,
                        block_on_chargeback=True).outcome == "ignore"
    late = rules.decide(event("payout_paid"), payment("withdrawal", "cancelled"), True, block_on_chargeback=True)
    assert late.outcome == "apply" and late.move is None  # the shard records it for review, nothing moves
    assert rules.decide(event("payout_reversed"), payment("withdrawal", "sent"), True,
                        block_on_chargeback=True).outcome == "ignore"


def test_review_reasons():
    assert rules.review_reasons(100, 1_000, "verified") == []
    assert rules.review_reasons(1_001, 1_000, "verified") == ["amount above 1000 minor units"]
    assert rules.review_reasons(1, 1_000, None) == ["KYC not set"]
    assert rules.review_reasons(1, 1_000, "pending") == ["KYC pending"]


# ---- report amounts --------------------------------------------------------------------


@given(st.integers(0, 10**12), st.sampled_from(["EUR", "JPY", "BHD", "BTC"]))
def test_report_amounts_read_exactly_as_money_reads_them(minor, currency):
    from gateway import money
    from gateway.reconciliation.adyen_report import minor_of

    text = money.minor_to_decimal_str(minor, currency)
    assert minor_of(text, currency, 2, "x") == money.minor_from_decimal_str(text, currency) == minor
    for variant in (text + "0" if "." in text else text + ".0", " " + text):
        try:
            expected = money.minor_from_decimal_str(variant, currency)
        except money.AmountError:
            expected = None
        try:
            got = minor_of(variant, currency, 2, "x")
        except Exception:  # noqa: BLE001 - ReportError
            got = None
        assert got == expected
