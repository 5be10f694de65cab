"""A migration that has shipped never changes, not even a comment.

``gateway migrate`` refuses to start when an applied migration's checksum differs
(gateway/ledger/migrate.py), so editing a shipped file would stop every deployed gateway
at its next start. A repository-wide search-and-replace once rewrote comments in 0001 and
0002; this test would have caught it. A new migration is appended here when it ships.
"""

from __future__ import annotations

import hashlib

from gateway.ledger.migrate import available

SHIPPED_SHA256 = {
    "0001_ledger": "26ebf71281ecbbd14acf998e49c8a362f946e4811b70127c3a9a00041b08011c",
    "0002_write_batch": "6a608d0ca7eea6ed0eae70d7daf28934249213c24ee5ff3a69e367c420a84568",
    "0003_player_status": "05dbfff914786e68c2719b60fcb24075677b1fb9fb130ee6adce2d771e7c4349",
    "0004_tenancy": "6cee1cac0fa3b7cad6ba699d6d3363516a0e680cda12c8604b25d6e24f40d409",
    "0005_certification": "98b76c33d3c0fe623481e764bc65b477abd90fdbc5f1c13cf432494a53747e2f",
    "0006_shard_map": "6cc7b640bff2a4f876e05167ad9e2e7aeedc70aa9df049bc5137aec1f0822cfa",
    "0007_sportsbook": "5a7df2049877326c941daa6e76d95e07e32d962fbf0f85b2be69dde7d4fb5024",
    "0008_resharding": "6f3a8b1381a2cb167df3eafb5877325205eadbc0be663992c783d3b2d9aedf1f",
    "0009_sportsbook_batch": "7414dadff3083e268d97397258b93b080e12d9e786f29253ef92154fa239c5dd",
    "0010_responsible_gaming": "72b5b64650162f222ce9a8b0c72a5d66db1439bb126ab14a333190f41d15c9e7",
    "0011_payments": "f69476d83215dfdd20eb122acfc3f4a5d14f73a37e175522477c8a5294baf241",
    "0012_reconciliation": "bb9153914172373b84f8987408858b8664d3bf0d9e8c36d8bd7f98bbfb144174",
}


def test_shipped_migrations_are_unchanged():
    found = {name: hashlib.sha256(sql.encode()).hexdigest() for _, name, sql in available()}
    for name, digest in SHIPPED_SHA256.items():
        assert found.get(name) == digest, f"{name} changed after it shipped: add a new migration instead"
