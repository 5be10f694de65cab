-- 0008: moving buckets while serving (issue "Live resharding, shards on several hosts").
--
-- shard_map_state.shards_wanted: the shard count an operator asked for with
-- `gateway shards resize N`; `gateway serve`'s supervisor starts or stops shard processes to
-- match it (NULL: the count it was started with).
--
-- shard_moves: one row per group of buckets handed from one shard to another, written in
-- the same transaction as the map change, for the operator and the auditor: when, which
-- buckets, from and to which shard, under which map revision, and whether the old owner
-- confirmed the hand-over (released) or was fenced (its lease epoch moved on, so any batch
-- it still had could not commit).

ALTER TABLE shard_map_state ADD COLUMN shards_wanted integer CHECK (shards_wanted >= 1);

CREATE TABLE shard_moves (
    move_id     bigserial PRIMARY KEY,
    moved_at    timestamptz NOT NULL DEFAULT now(),
    revision    bigint NOT NULL,
    from_shard  integer NOT NULL,
    to_shard    integer NOT NULL,
    buckets     integer[] NOT NULL,
    fenced      boolean NOT NULL,
    moved_by    text NOT NULL
);
