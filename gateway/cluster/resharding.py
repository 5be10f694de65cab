"""Which buckets move where: plans for ``gateway shards move`` and ``resize``. Pure, no I/O.

A plan is a list of ``Move`` groups, each at most ``group_size`` buckets from one shard to
another; gateway/cluster/mover.py carries them out one at a time, so a group's players are
unavailable only for the time one group takes to hand over (docs/SCALING.md).

``plan_resize`` moves as few buckets as possible: every shard below the new count keeps
what it has up to its share (``bucket_count // n``, the first ``bucket_count % n`` shards
one more), the surplus and every bucket of a shard at or above the new count go to the
shards below their share. Going from 1 to 2 shards moves half the buckets; 2 to 1 moves
the other half back; 3 to 4 moves a quarter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Move:
    """``buckets`` (sorted) go from shard ``from_shard`` to shard ``to_shard``."""

    from_shard: int
    to_shard: int
    buckets: tuple[int, ...]


def shares(bucket_count: int, shard_count: int) -> list[int]:
    """How many buckets each of ``shard_count`` shards owns when balanced."""
    assert 1 <= shard_count <= bucket_count
    base, extra = divmod(bucket_count, shard_count)
    return [base + (1 if i < extra else 0) for i in range(shard_count)]


def plan_resize(owners: Sequence[int], shard_count: int, group_size: int) -> list[Move]:
    """The moves that balance ``owners`` (bucket -> shard id) over shards 0..shard_count-1.

    Raises ValueError when ``shard_count`` is not within 1..len(owners).
    """
    if not 1 <= shard_count <= len(owners):
        raise ValueError(f"the shard count must be within 1..{len(owners)} (the bucket count)")
    assert group_size >= 1
    target = shares(len(owners), shard_count)
    held: dict[int, list[int]] = {}
    for bucket, shard_id in enumerate(owners):
        held.setdefault(shard_id, []).append(bucket)
    leaving: list[tuple[int, int]] = []  # (from shard, bucket), in a stable order
    for shard_id in sorted(held):
        buckets = held[shard_id]
        keep = target[shard_id] if shard_id < shard_count else 0
        leaving += [(shard_id, b) for b in buckets[keep:]]  # the highest buckets leave
    moves: dict[tuple[int, int], list[int]] = {}
    cursor = 0
    for to_shard in range(shard_count):
        room = target[to_shard] - min(len(held.get(to_shard, [])), target[to_shard])
        for from_shard, bucket in leaving[cursor:cursor + room]:
            moves.setdefault((from_shard, to_shard), []).append(bucket)
        cursor += room
    assert cursor == len(leaving), "every leaving bucket has a new owner"
    return _grouped(moves, group_size)


def plan_move(owners: Sequence[int], buckets: Sequence[int], to_shard: int, group_size: int) -> list[Move]:
    """The moves that give ``buckets`` to ``to_shard`` (buckets it already owns are skipped).

    Raises ValueError for a bucket outside the map.
    """
    assert group_size >= 1
    moves: dict[tuple[int, int], list[int]] = {}
    for bucket in sorted(set(buckets)):
        if not 0 <= bucket < len(owners):
            raise ValueError(f"bucket {bucket} is outside 0..{len(owners) - 1}")
        if owners[bucket] != to_shard:
            moves.setdefault((owners[bucket], to_shard), []).append(bucket)
    return _grouped(moves, group_size)


def parse_buckets(text: str, bucket_count: int) -> list[int]:
    """Buckets written as ``0-255,300,310-319``. Raises ValueError naming the bad part."""
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise ValueError(f"{part!r} is not a bucket or a range like 0-255")
        first, last = int(low), int(high) if sep else int(low)
        if first > last or last >= bucket_count:
            raise ValueError(f"{part!r} is outside 0..{bucket_count - 1} or reversed")
        out.update(range(first, last + 1))
    if not out:
        raise ValueError("no buckets given")
    return sorted(out)


def _grouped(moves: dict[tuple[int, int], list[int]], group_size: int) -> list[Move]:
    plan: list[Move] = []
    for (from_shard, to_shard), buckets in sorted(moves.items()):
        buckets.sort()
        for start in range(0, len(buckets), group_size):
            plan.append(Move(from_shard, to_shard, tuple(buckets[start:start + group_size])))
    return plan
