#!/usr/bin/env python3
"""Writes kine rows into a SQLite database in WAL mode, as k3s does, until killed.

    sqlite-writer.py DB [rows-per-second (0: as fast as it can)]

Each transaction inserts 20 rows of ~1 KiB (Kubernetes-object-sized values) into the kine
table; the writer's throughput is read from outside as the growth of max(id).
"""
import os
import sqlite3
import sys
import time

db, rate = sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
conn = sqlite3.connect(db, timeout=30, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
value = os.urandom(1024)
# Rows continue from the highest id, so (name, prev_revision) stays unique across writers.
base = conn.execute("SELECT coalesce(max(id), 0) FROM kine").fetchone()[0]
start, written = time.monotonic(), 0
while True:
    conn.execute("BEGIN IMMEDIATE")
    for _ in range(20):
        conn.execute(
            "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value) "
            "VALUES (?, 0, 0, 0, ?, 0, ?)",
            ("/registry/events/ns/e%d" % ((base + written) % 100000), base + written, value),
        )
        written += 1
    conn.execute("COMMIT")
    if rate > 0:
        ahead = written / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
