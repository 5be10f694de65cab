"""The ledger: PostgreSQL schema, migrations, batch writes, prefetch reads and checks."""
