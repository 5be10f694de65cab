"""Which buckets move where (gateway/cluster/resharding.py): pure, against a simple model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.cluster.resharding import Move, parse_buckets, plan_move, plan_resize, shares


def apply_plan(owners: list[int], plan: list[Move]) -> list[int]:
    out = list(owners)
    for move in plan:
        for bucket in move.buckets:
            assert out[bucket] == move.from_shard, "a move takes a bucket from its current owner"
            out[bucket] = move.to_shard
    return out


def test_one_to_two_moves_half_and_two_to_one_moves_it_back():
    owners = [0] * 4096
    grow = plan_resize(owners, 2, 256)
    assert sum(len(m.buckets) for m in grow) == 2048
    assert all(len(m.buckets) <= 256 and (m.from_shard, m.to_shard) == (0, 1) for m in grow)
    grown = apply_plan(owners, grow)
    assert grown.count(0) == grown.count(1) == 2048
    shrink = plan_resize(grown, 1, 256)
    assert sum(len(m.buckets) for m in shrink) == 2048
    assert apply_plan(grown, shrink) == owners


def test_three_to_four_moves_a_quarter():
    owners = [b % 3 for b in range(4096)]
    plan = plan_resize(owners, 4, 100)
    assert sum(len(m.buckets) for m in plan) == 1024
    after = apply_plan(owners, plan)
    assert sorted(after.count(s) for s in range(4)) == [1024] * 4


def test_a_balanced_map_needs_no_move():
    assert plan_resize([b % 4 for b in range(64)], 4, 8) == []


@given(st.lists(st.integers(0, 7), min_size=8, max_size=300), st.integers(1, 8), st.integers(1, 50))
def test_resize_balances_with_the_fewest_moves(owners, shard_count, group_size):
    plan = plan_resize(owners, shard_count, group_size)
    after = apply_plan(owners, plan)
    want = shares(len(owners), shard_count)
    assert sorted((after.count(s) for s in range(shard_count)), reverse=True) == sorted(want, reverse=True)
    assert all(s < shard_count for s in after)
    # The fewest moves: a bucket moves only if its shard is gone or holds more than its share.
    kept = sum(min(owners.count(s), want[s]) for s in range(shard_count))
    assert sum(len(m.buckets) for m in plan) == len(owners) - kept
    assert all(1 <= len(m.buckets) <= group_size for m in plan)


def test_move_skips_buckets_already_there_and_groups_per_owner():
    owners = [0, 1, 2, 1, 0]
    plan = plan_move(owners, [0, 1, 2, 3, 4], 1, 10)
    assert plan == [Move(0, 1, (0, 4)), Move(2, 1, (2,))]
    with pytest.raises(ValueError, match="outside"):
        plan_move(owners, [5], 1, 10)


def test_resize_refuses_more_shards_than_buckets():
    with pytest.raises(ValueError, match=r"within 1\.\.4"):
        plan_resize([0, 0, 0, 0], 5, 1)


def test_parse_buckets():
    assert parse_buckets("0-3, 7,5-5", 16) == [0, 1, 2, 3, 5, 7]
    for bad in ("", "3-1", "a", "0-16", "1-", "-3"):
        with pytest.raises(ValueError):
            parse_buckets(bad, 16)
