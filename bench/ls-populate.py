"""Fills <bucket>/<folder>/ with COUNT snapshot objects as `etcd-snapshot save --s3` writes them.

Each snapshot is `<folder>/etcd-snapshot-<node>-<unix>` (3 nodes, one second apart, 1 KiB body,
RKE2's three user-metadata entries plus our checksum) and its `<folder>/.metadata/<name>` JSON.
Used by bench/ls-bench.sh; population time is not measured, so it only needs to be quick:
PUTs go out from a thread pool.

    python3 bench/ls-populate.py ENDPOINT BUCKET FOLDER COUNT
Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

import hashlib
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

endpoint, bucket, folder, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    config=Config(max_pool_connections=32, s3={"addressing_style": "path"}),
)
body = b"x" * 1024
body_sha256 = hashlib.sha256(body).hexdigest()
token_hash = hashlib.sha256(b"bench-token").hexdigest()[:12]


def put(i: int) -> None:
    node = f"node{i % 3}"
    name = f"etcd-snapshot-{node}-{1700000000 + i}"
    s3.put_object(
        Bucket=bucket,
        Key=f"{folder}/{name}",
        Body=body,
        ContentType="application/octet-stream",
        Metadata={
            "Rke2-Cluster-Id": "0f4c1a52-5b0e-4c3e-9d0a-6e2b7c1d9f00",
            "Rke2-Node-Name": node,
            "Rke2-Token-Hash": token_hash,
            "Etcd-Snapshot-Sha256": body_sha256,
        },
    )
    # The extra-metadata JSON save writes beside the snapshot (a string map).
    meta = json.dumps({"bench": "ls", "node": node}, separators=(",", ":")).encode()
    s3.put_object(
        Bucket=bucket,
        Key=f"{folder}/.metadata/{name}",
        Body=meta,
        ContentType="application/json",
    )


existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
if bucket not in existing:
    s3.create_bucket(Bucket=bucket)
with ThreadPoolExecutor(max_workers=16) as pool:
    for _ in pool.map(put, range(count)):
        pass
print(f"put {count} snapshots and {count} metadata objects", file=sys.stderr)
