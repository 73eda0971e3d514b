#!/usr/bin/env python3
"""Prints bench/matrix.sh's results as Markdown: every row, how ours compares with its
contender, how time and memory scale with the database, and what the largest size took.

    matrix-report.py RESULTS.tsv RUNS

Rows of RESULTS.tsv (tab-separated, from bench/matrix-ops.sh):
    mix size_mib db_bytes operation contender wall_s cpu_s peak_rss_mib output_bytes ours
"""
import sys
from collections import defaultdict

# Time is linear when the seconds per GB at every size stay within this factor of each other.
LINEAR_SPREAD = 1.25
# Peak RSS is flat when it moves by at most this many MiB, or this fraction of the smallest.
FLAT_MIB, FLAT_FRACTION = 16, 0.25


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            mix, size, db, op, who, wall, cpu, rss, out, ours = line.rstrip("\n").split("\t")
            rows.append(dict(mix=mix, size=size, db=int(db), op=op, who=who, wall=float(wall),
                             cpu=float(cpu), rss=int(rss), out=int(out), ours=ours == "1"))
    return rows


def main_table(rows, runs):
    print(f"| mix | size MiB | db GB | operation | contender | wall s (median of {runs}) | CPU s | peak RSS MiB | output bytes | x contender |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    baseline = {(r["mix"], r["size"], r["op"]): r["wall"] for r in rows if not r["ours"]}
    for r in rows:
        base = baseline.get((r["mix"], r["size"], r["op"]))
        ratio = f"{r['wall'] / base:.2f}x" if r["ours"] and base else ""
        print(f"| {r['mix']} | {r['size']} | {r['db'] / 1e9:.2f} | {r['op']} | {r['who']} | {r['wall']:.2f} "
              f"| {r['cpu']:.2f} | {r['rss']} | {r['out']} | {ratio} |")


def verdicts(points):
    """(time verdict, RSS verdict) over [(db_bytes, wall, rss)] at two sizes or more."""
    per_gb = [wall / (db / 1e9) for db, wall, _ in points if db > 0]
    rss = [p[2] for p in points]
    linear = per_gb and min(per_gb) > 0 and max(per_gb) / min(per_gb) <= LINEAR_SPREAD
    flat = max(rss) - min(rss) <= max(FLAT_MIB, FLAT_FRACTION * min(rss))
    return ("linear" if linear else "NOT linear"), ("flat" if flat else "GROWS")


def scaling_table(rows):
    groups = defaultdict(list)
    for r in rows:
        if r["db"] > 0:
            groups[(r["mix"], r["op"], r["who"])].append((r["db"], r["wall"], r["rss"]))
    print()
    print("| mix | operation | contender | s per GB at each size | time | peak RSS MiB at each size | RSS |")
    print("|---|---|---|---|---|---|---|")
    for (mix, op, who), points in groups.items():
        points.sort()
        if len(points) < 2:
            continue
        time_verdict, rss_verdict = verdicts(points)
        per_gb = ", ".join(f"{wall / (db / 1e9):.2f}" for db, wall, _ in points)
        rss = ", ".join(str(p[2]) for p in points)
        print(f"| {mix} | {op} | {who} | {per_gb} | {time_verdict} | {rss} | {rss_verdict} |")


def largest_table(rows):
    ours = [r for r in rows if r["ours"] and r["db"] > 0]
    if not ours:
        return
    largest = max(int(r["size"]) for r in ours)
    mixes = sorted({r["mix"] for r in ours})
    print()
    print(f"At {largest} MiB of values: wall seconds of etcd-snapshot (x its contender)")
    print()
    print("| operation | " + " | ".join(mixes) + " |")
    print("|---|" + "---|" * len(mixes))
    baseline = {(r["mix"], r["op"]): r["wall"] for r in rows if not r["ours"] and r["size"] == str(largest)}
    for op in dict.fromkeys(r["op"] for r in ours):
        cells = []
        for mix in mixes:
            hit = [r for r in ours if r["op"] == op and r["mix"] == mix and r["size"] == str(largest)]
            base = baseline.get((mix, op))
            cells.append(f"{hit[0]['wall']:.1f} ({hit[0]['wall'] / base:.2f}x)" if hit and base else "")
        print(f"| {op} | " + " | ".join(cells) + " |")


def main():
    rows = load(sys.argv[1])
    runs = sys.argv[2] if len(sys.argv) > 2 else "?"
    main_table(rows, runs)
    scaling_table(rows)
    largest_table(rows)


if __name__ == "__main__":
    main()
