#!/usr/bin/env python3
# The cluster test's load client (tests/cluster/run.sh): THREADS keep-alive
# connections sending GET (or POST) requests to URL until STOP_FILE exists
# (or --count requests are done), counting every request exactly: a request
# succeeds when the answer is 200 and its x-version header is one of
# --versions; anything else (a refused or reset connection, a timeout, a
# 502/503, an unknown version) is a failure, counted by kind. Prints one
# JSON object: {"ok", "failed", "failures": {kind: n}, "versions": {v: n},
# "seconds"}. Python's standard library only: no load tool is needed.
import argparse
import http.client
import json
import os
import threading
import time
import urllib.parse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--stop-file")
    parser.add_argument("--count", type=int, default=0, help="requests per thread (0: until --stop-file)")
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--versions", default="", help="comma-separated accepted x-version values (empty: any)")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    accepted = set(v for v in args.versions.split(",") if v)
    lock = threading.Lock()
    totals = {"ok": 0, "failed": 0, "failures": {}, "versions": {}}
    started = time.monotonic()

    def record(ok, kind=None, version=None):
        with lock:
            if ok:
                totals["ok"] += 1
                totals["versions"][version] = totals["versions"].get(version, 0) + 1
            else:
                totals["failed"] += 1
                totals["failures"][kind] = totals["failures"].get(kind, 0) + 1

    def worker():
        conn = None
        done = 0
        while True:
            if args.count and done >= args.count:
                break
            if not args.count and args.stop_file and os.path.exists(args.stop_file):
                break
            if time.monotonic() - started > args.max_seconds:
                break
            done += 1
            if conn is None:
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=15)
            body = b"x" * 64 if args.method == "POST" else None
            try:
                conn.request(args.method, url.path or "/", body=body)
                response = conn.getresponse()
                response.read()
                version = response.getheader("x-version")
                if response.status != 200:
                    record(False, "status %d" % response.status)
                elif accepted and version not in accepted:
                    record(False, "version %s" % version)
                else:
                    record(True, version=version)
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                record(False, type(e).__name__)
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(totals, sort_keys=True))


main()
