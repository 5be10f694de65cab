"""``[integrations.<name>]`` with ``provider = "pragmatic"`` (README.md, "Hash" and
"Certification", case 25)."""

from __future__ import annotations

from typing import ClassVar, Final, Literal

from gateway.config_types import Secret
from gateway.providers.integration import IntegrationSettings

#: ``bonus_win`` values: what ``/bonusWin.html`` does with its ``amount``.
BONUS_WIN_RECORD: Final = "record"
BONUS_WIN_CREDIT: Final = "credit"


class PragmaticSettings(IntegrationSettings, tag="pragmatic"):
    """``secret_key``: appended to the sorted parameters before md5 (the ``hash``
    parameter; a secret). ``provider_id``: the ``providerId`` Pragmatic Play sends.

    ``bonus_win``: how this integration's free-round (FRB) wins are settled, as agreed with
    Pragmatic for the contract (README.md "Certification", case 25):

    * ``"record"`` (default): every free round's win arrives as a ``/result.html`` of its
      own, so ``/bonusWin.html`` is the bonus's total, sent for information. It is stored
      under its ``reference`` (replays answer the same ``transactionId``) and credits
      nothing: crediting it would pay the free-round wins twice. T1, IqSoft and a third
      operator implementation all answer it this way (T1: "NO BALANCE ADJUSTMENT NEEDED,
      already adjusted in "Result" api call").
    * ``"credit"``: the contract settles free rounds through ``/bonusWin.html`` only (the
      rounds' results carry no win), so its ``amount`` is credited, of type "bonus" -- what
      Pragmatic's own method description says ("Casino Operator will change a player balance
      in appliance with this request").
    """

    secret_key: Secret = ""
    provider_id: str = "PragmaticPlay"
    bonus_win: Literal["record", "credit"] = BONUS_WIN_RECORD

    secrets: ClassVar[tuple[str, ...]] = ("secret_key",)
