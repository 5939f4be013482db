"""A closed-loop load generator: `concurrency` clients each send the next request as soon
as the last one is answered, for `seconds`; prints JSON (requests/s, p50, p95, errors).

    python -m tests.bench.hammer URL --cookie sessionid=… -c 8 -t 10

Used by fig 7 to find a page's ceiling (requests/s at saturation). Plain http.client on
threads (the waiting releases the GIL); one process, small next to the server's work.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from urllib.parse import urlsplit


def hammer(url: str, cookie: str, concurrency: int, seconds: float) -> dict[str, float]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Cookie": cookie} if cookie else {}
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        mine, bad = [], 0
        while time.perf_counter() < stop:
            start = time.perf_counter()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            try:
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    bad += 1
            except OSError:
                bad += 1
            finally:
                conn.close()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "errors": errors[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--cookie", default="")
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("-t", "--seconds", type=float, default=10)
    args = parser.parse_args()
    print(json.dumps(hammer(args.url, args.cookie, args.concurrency, args.seconds)))


if __name__ == "__main__":
    main()
