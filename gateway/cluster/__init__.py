"""Several processes: the supervisor, edge processes, shard processes and their channel."""
