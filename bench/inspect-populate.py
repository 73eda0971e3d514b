"""Fills an etcd (its client URL is argv[1]) through the JSON gateway for bench/inspect-bench.sh:
1,000 puts of 1 MiB random values over 300 keys (about 1 GiB of revisions), 100,000 small
keys in transactions of 100, then 10,000 deletes: a database with large values, many small
keys, history and tombstones."""
import base64, json, os, sys, urllib.request
URL=sys.argv[1].rstrip("/")+"/v3/kv/"
def post(path, body):
    req=urllib.request.Request(URL+path, data=json.dumps(body).encode(), headers={"Content-Type":"application/json"})
    return urllib.request.urlopen(req).read()
b64=lambda b: base64.b64encode(b).decode()
# ~1 GiB of large values (like secrets/configmaps with big payloads), 1 MiB each, over 300 keys
for i in range(1000):
    post("put", {"key": b64(f"/registry/configmaps/big/c{i%300}".encode()), "value": b64(os.urandom(1024*1024))})
# 100,000 small keys in transactions of 100
for t in range(1000):
    ops=[{"requestPut":{"key":b64(f"/registry/pods/ns{t%50}/p{t*100+j}".encode()),"value":b64(os.urandom(300))}} for j in range(100)]
    post("txn", {"success": ops})
# 10,000 deletes
for t in range(100):
    ops=[{"requestDeleteRange":{"key":b64(f"/registry/pods/ns{t%50}/p{t*100+j}".encode())}} for j in range(100)]
    post("txn", {"success": ops})
print("filled", file=sys.stderr)
