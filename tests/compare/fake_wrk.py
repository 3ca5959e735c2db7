#!/usr/bin/env python3
"""A stand-in for wrk, for testing `compare --http` without it.

Accepts the arguments compare gives wrk (-tN -cN -dNs --timeout T -s SCRIPT
URL [-- SIZE SPAN PATH...]), keeps N keep-alive HTTP/1.1 connections busy for the
duration (the paths after "--" in turn, each a random SPAN-byte range when SPAN > 0,
else the URL's path), checks every
response's status, and prints the one JSON line compare's Lua done() hook
prints. Standard library only; not a load generator worth measuring.
"""
import http.client
import json
import sys
import threading
import time
import urllib.parse


def main(argv):
    conns, dur, url, paths = 1, 1, None, []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == '--':
            paths = argv[i + 1:]
            break
        if a.startswith('-c'):
            conns = int(a[2:])
        elif a.startswith('-d'):
            dur = int(a[2:].rstrip('s'))
        elif a in ('--timeout', '-s'):
            i += 1
        elif a.startswith('-t') or a == '--latency':
            pass
        elif a.startswith('http://'):
            url = urllib.parse.urlsplit(a)
        else:
            print('fake_wrk: unexpected argument %r' % a, file=sys.stderr)
            return 1
        i += 1
    if url is None:
        print('fake_wrk: no URL', file=sys.stderr)
        return 1
    size = span = 0
    if paths:
        # compare's stream.lua arguments: SIZE SPAN PATH...
        size, span, paths = int(paths[0]), int(paths[1]), paths[2:]
    paths = paths or [url.path or '/']
    lat, errs = [], {'connect': 0, 'read': 0, 'status': 0}
    total = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + dur

    def worker(k):
        try:
            c = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        except OSError:
            with lock:
                errs['connect'] += 1
            return
        n = k
        while time.monotonic() < deadline:
            path = paths[n % len(paths)]
            n += 1
            t0 = time.monotonic()
            try:
                hdrs = {}
                if span:
                    first = (n * 7919 % max(1, (size - span) // 4096)) * 4096
                    hdrs['Range'] = 'bytes=%d-%d' % (first, first + span - 1)
                c.request('GET', path, headers=hdrs)
                r = c.getresponse()
                body = r.read()
            except (OSError, http.client.HTTPException):
                with lock:
                    errs['read'] += 1
                return
            us = (time.monotonic() - t0) * 1e6
            with lock:
                lat.append(us)
                total[0] += len(body)
                if r.status >= 400:
                    errs['status'] += 1

    start = time.monotonic()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.monotonic() - start
    lat.sort()

    def pct(p):
        return int(lat[min(len(lat) - 1, int(len(lat) * p / 100.0))]) if lat else 0

    print(json.dumps({
        'requests': len(lat), 'duration_us': int(elapsed * 1e6), 'bytes': total[0],
        'err_connect': errs['connect'], 'err_read': errs['read'], 'err_write': 0,
        'err_status': errs['status'], 'err_timeout': 0,
        'lat_mean_us': sum(lat) / len(lat) if lat else 0, 'lat_p50_us': pct(50),
        'lat_p99_us': pct(99), 'lat_p999_us': pct(99.9),
        'lat_max_us': int(lat[-1]) if lat else 0}))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
