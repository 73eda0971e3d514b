#!/usr/bin/env python3
"""Creates a kine-schema SQLite database in WAL mode of about SIZE MiB.

    sqlite-populate.py DB SIZE_MIB

Rows of 16 KiB incompressible-ish values (random bytes hex-encoded: Deflate halves them), over
Kubernetes-like key names, each key written a few times (kine keeps every revision).
"""
import os
import sqlite3
import sys

SCHEMA = """
CREATE TABLE IF NOT EXISTS kine (id INTEGER PRIMARY KEY AUTOINCREMENT, name INTEGER, created INTEGER,
  deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, lease INTEGER, value BLOB, old_value BLOB);
CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name);
CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name, id);
CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id, deleted);
CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision);
CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision);
"""

db, size_mib = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(db, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.executescript(SCHEMA)
rows = size_mib * 1024 // 16
conn.execute("BEGIN")
for i in range(rows):
    value = os.urandom(8192).hex().encode()
    name = "/registry/configmaps/ns%d/cm%d" % (i % 50, i % 5000)
    conn.execute(
        "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value) "
        "VALUES (?, 0, 0, 0, ?, 0, ?)",
        (name, i, value),
    )
    if i % 2000 == 1999:
        conn.execute("COMMIT")
        conn.execute("BEGIN")
conn.execute("COMMIT")
conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
conn.close()
