-- 0006: the shard map's revision and the shard processes' addresses (issue "Edge
-- processes, one process per shard").
--
-- shard_buckets (0001) maps every bucket to its owning shard; shard_map_state.revision
-- counts every change of that mapping, so an edge that cached the map can tell it is old
-- (a shard answers "not owner, map revision R"). shard_leases.address is where a shard
-- process listens for its edges (a Unix socket path on one host; later host:port).

CREATE TABLE shard_map_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision   bigint NOT NULL,
    bucket_count integer NOT NULL,
    shard_count  integer NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE shard_leases ADD COLUMN address text;
