"""Cash-out decisions: an open bet settled now at the sportsbook's quoted price, in full or
in part. Pure: no I/O (the edge moves the money, gateway/edge/api_sportsbook.py).

- **Full** (``stake_minor`` absent or the whole outlay): the quoted ``amount_minor`` is the
  bet's return; the bet becomes ``cashed_out``, final, never re-settled.
- **Partial** (``stake_minor`` < outlay): the bet is cashed out and the stake kept running
  is placed again, at the same accepted odds, as its *continuation*: a new bet
  ``<bet_id>~<n>`` with the same legs and type, stake convention ``total`` and stake
  ``outlay - stake_minor``. The original bet's return is the cash paid plus that stake
  (which the continuation's debit takes straight back), so the ledger's stakes and returns
  stay whole per bet, and the payout key ``<bet_id>:payout`` stays the one key a
  settlement and a cash-out compete for (docs/SPORTSBOOK.md, "Cash-out").

Quoted amounts: at most the bet's potential return (pro rata for a partial cash-out, rounded
down), at least 0. Refusals (``SportsbookRefused``): ``invalid_amount``, ``invalid_stake``
(a continuation below one minor unit per line and part), ``cashout_unavailable`` (partial
cash-out disabled, or the continuation's id would be over 128 characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.money import round_payout_down
from gateway.sportsbook.bets import Bet, SettlementError, StakeConvention, staking
from gateway.sportsbook.markets import SportsbookRefused
from gateway.sportsbook.resolve import model_of
from gateway.sportsbook.settlement import RoundingMode, potential_return
from gateway.sportsbook.store import StoredBet

BET_ID_CHARS_MAX = 128
_CONTINUATION = re.compile(r"^(?P<base>.+)~(?P<n>[1-9][0-9]{0,5})\Z")


@dataclass(frozen=True, slots=True)
class CashoutPlan:
    """What a cash-out does. ``payout_minor`` is credited on the bet's payout key and is its
    return; ``cash_minor`` of it is the player's cash; ``continuation`` (partial only) is the
    bet placed with the rest of the stake, its debit ``payout_minor - cash_minor``."""

    payout_minor: int
    cash_minor: int
    continuation: StoredBet | None
    continuation_model: Bet | None


def continuation_id(bet_id: str) -> str:
    """``abc`` -> ``abc~1``, ``abc~1`` -> ``abc~2``: the id of the bet carrying a partial
    cash-out's remaining stake."""
    m = _CONTINUATION.match(bet_id)
    return f"{bet_id}~1" if m is None else f"{m['base']}~{int(m['n']) + 1}"


def plan_cashout(stored: StoredBet, amount_minor: int, stake_minor: int | None, *, partial_allowed: bool,
                 payout_max_minor: int, rounding: RoundingMode) -> CashoutPlan:
    """Decide a cash-out of an open ``stored`` bet (module docstring)."""
    assert stored.state == "open"
    outlay = stored.outlay_minor
    if stake_minor is None or stake_minor == outlay:
        if not 0 <= amount_minor <= stored.potential_return_minor:
            raise SportsbookRefused("invalid_amount", "a cash-out pays at most the bet's potential return")
        return CashoutPlan(amount_minor, amount_minor, None, None)
    if not partial_allowed:
        raise SportsbookRefused("cashout_unavailable", "partial cash-out is not enabled")
    if not 0 < stake_minor < outlay:
        raise SportsbookRefused("invalid_stake", f"stake_minor must be within 1..{outlay} (the outlay)")
    share_max = round_payout_down(stored.potential_return_minor * stake_minor, outlay)
    if not 0 <= amount_minor <= share_max:
        raise SportsbookRefused("invalid_amount", f"a cash-out of this part of the stake pays at most {share_max}")
    remaining = outlay - stake_minor
    new_id = continuation_id(stored.bet_id)
    if len(new_id) > BET_ID_CHARS_MAX:
        raise SportsbookRefused("cashout_unavailable", "the bet id is too long to carry a partial cash-out")
    terms = stored.terms
    cont_terms = type(terms)(terms.player_id, terms.currency, terms.bet_type, remaining, StakeConvention.TOTAL.value,
                             terms.each_way, terms.system, terms.odds_change, terms.legs)
    probe = StoredBet(stored.partner_id, new_id, cont_terms, stored.legs, stored.lines, remaining, 0, "open", None, None)
    try:
        model = model_of(probe)
        stake = staking(model)
        potential = potential_return(model, rounding=rounding,
                                     max_payout_minor=min(payout_max_minor, max(stored.potential_return_minor, 1)))
    except SettlementError as e:
        raise SportsbookRefused(e.code, f"the stake kept running: {e.detail}") from None
    assert stake.outlay_minor == remaining and stake.lines == stored.lines
    continuation = StoredBet(stored.partner_id, new_id, cont_terms, stored.legs, stored.lines, remaining,
                             potential.return_minor, "open", None, None)
    return CashoutPlan(amount_minor + remaining, amount_minor, continuation, model)
