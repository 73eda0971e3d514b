#!/usr/bin/env python3
"""Writes benchmark values for the bench scripts: SIZE_MIB MiB of values of VALUE_KIB KiB each
(environment; default 1024), one per line, or put straight into an etcd as /bench/<i> through
its JSON gateway (--put CLIENT_URL). Smaller values keep a big fill lean: etcd holds its recent
raft entries (up to --snapshot-count plus 5,000) in memory, values included.

  gen-values.py k8s SIZE_MIB   Kubernetes-like objects (JSON manifests with random uids,
                               labels, managed fields, env vars and a base64 payload), the shape
                               of what a cluster keeps in etcd; Deflate takes it to ~45%.
  gen-values.py hex SIZE_MIB   random hex text: literal-heavy, the slow case for LZ77.
  gen-values.py b64 SIZE_MIB   random base64 text (tokens, certificates, encrypted payloads
                               as text): nothing repeats, 6 bits of information per byte.
  gen-values.py mix SIZE_MIB   half and half: b64 and k8s values in turns.
"""
import base64
import json
import os
import random
import signal
import sys
import urllib.request

MIB = 1024 * 1024


def k8s_object(rng: random.Random, i: int) -> str:
    uid = "%08x-%04x-%04x-%04x-%012x" % tuple(rng.getrandbits(b) for b in (32, 16, 16, 16, 48))
    app = rng.choice(["api", "web", "worker", "cache", "ingress", "metrics", "db"])
    obj = {
        "apiVersion": "v1",
        "kind": rng.choice(["Pod", "ConfigMap", "Secret", "Service", "Endpoints"]),
        "metadata": {
            "name": f"{app}-{rng.getrandbits(40):010x}",
            "namespace": rng.choice(["default", "kube-system", "prod", "staging"]),
            "uid": uid,
            "resourceVersion": str(1000000 + i),
            "creationTimestamp": "2026-0%d-%02dT%02d:%02d:%02dZ"
            % (rng.randint(1, 9), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
            "labels": {"app": app, "pod-template-hash": "%x" % rng.getrandbits(36), "tier": "backend"},
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}, "f:spec": {"f:containers": {}}},
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": app,
                    "image": f"registry.example.com/{app}:v1.{rng.randint(0, 40)}.{rng.randint(0, 9)}",
                    "env": [{"name": f"VAR_{k}", "value": "%x" % rng.getrandbits(64)} for k in range(rng.randint(2, 8))],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                }
            ],
            "nodeName": f"node-{rng.randint(1, 50)}",
        },
        "data": {"payload": base64.b64encode(rng.randbytes(rng.randint(64, 1024))).decode()},
    }
    return json.dumps(obj, separators=(",", ":"))


def value(kind: str, rng: random.Random, i: int, size: int) -> str:
    if kind == "mix":
        kind = "b64" if i % 2 == 0 else "k8s"
    if kind == "hex":
        return rng.randbytes(size // 2).hex()
    if kind == "b64":
        return base64.b64encode(rng.randbytes(size * 3 // 4)).decode()
    if kind != "k8s":
        sys.exit(f"unknown kind {kind!r}: expected k8s, hex, b64 or mix")
    parts, length = [], 0
    while length < size:
        obj = k8s_object(rng, i)
        parts.append(obj)
        length += len(obj)
    return "".join(parts)[:size]


def put(url: str, key: str, text: str) -> None:
    body = {"key": base64.b64encode(key.encode()).decode(), "value": base64.b64encode(text.encode()).decode()}
    request = urllib.request.Request(
        url.rstrip("/") + "/v3/kv/put", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request).read()


def main() -> None:
    kind, size_mib = sys.argv[1], int(sys.argv[2])
    url = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--put" else None
    rng = random.Random(42)
    out = sys.stdout
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    size = int(os.environ.get("VALUE_KIB", "1024")) * 1024
    if not 1024 <= size <= MIB:
        sys.exit(f"VALUE_KIB={size // 1024}: expected 1 to 1024")
    for i in range(size_mib * MIB // size):
        text = value(kind, rng, i, size)
        if url:
            put(url, f"/bench/{i}", text)
        else:
            out.write(text)
            out.write("\n")


if __name__ == "__main__":
    main()
