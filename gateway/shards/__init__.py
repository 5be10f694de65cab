"""Single-writer shards: hot state, apply(), the shard loop and its write-behind batcher."""
