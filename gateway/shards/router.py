"""player -> bucket -> shard (docs/DESIGN.md section 6).

``bucket_of`` is crc32 of the player's full identity, ``partner_id`` UTF-8, one 0x1F byte
(the ASCII unit separator, which neither id may contain), ``player_id`` UTF-8, modulo
``bucket_count``: stable across processes, hosts and Python versions (never Python's
``hash()``), and two partners' players with the same id land independently. The bucket -> shard map
lives in PostgreSQL (``shard_buckets``); this process hosts the shard(s) it runs locally.
"""

from __future__ import annotations

import zlib

from gateway.shards.commands import Command, PlayerKey, Result, ShardUnavailable, player_key_of
from gateway.shards.shard import Shard
from gateway.telemetry.command import CommandTrace


def bucket_of(partner_id: str, player_id: str, bucket_count: int) -> int:
    """Bucket of a player: crc32(partner_id UTF-8 || 0x1F || player_id UTF-8) mod bucket_count."""
    return zlib.crc32(b"%s\x1f%s" % (partner_id.encode(), player_id.encode())) % bucket_count


class LocalShards:
    """Routes commands to shards running in this process.

    With one shard process every bucket belongs to shard 0. Commands without a player (a
    refusal the edge could not attribute) go to the first shard's audit chain.
    """

    def __init__(self, shards: dict[int, Shard], bucket_owner: dict[int, int] | None, bucket_count: int) -> None:
        assert shards, "at least one shard"
        self.shards = shards
        self.bucket_owner = bucket_owner
        self.bucket_count = bucket_count
        self._default = shards[min(shards)]

    def shard_for(self, player: PlayerKey | None) -> Shard:
        if player is None or self.bucket_owner is None:
            return self._default
        owner = self.bucket_owner.get(bucket_of(player[0], player[1], self.bucket_count))
        shard = self.shards.get(owner) if owner is not None else None
        if shard is None:
            raise ShardUnavailable(f"no local shard owns player {player!r}")
        return shard

    async def submit(self, command: Command, trace: CommandTrace | None = None) -> Result:
        """Submit to the owning shard and wait for the durable result."""
        return await self.shard_for(player_key_of(command)).submit(command, trace)

    @property
    def ready(self) -> bool:
        return all(s.ready for s in self.shards.values())
