#!/usr/bin/env python3
"""Time `monitor poll` on N synthetic feeds served on loopback: cold, warm and churn.

Usage: python bench/poll.py [--feeds 200] [--entries 50] [--cmd monitor] [--seed 1]

Feeds are RSS documents of news-like entries (bench/throughput.py's generator: ordinary
filler, and 3% English and Russian items on the profile's topics), answered with ETags so an
unchanged feed costs a 304. Three runs, each its own process on one SQLite database:
  cold   an empty database: every entry parsed, matched and stored;
  warm   again, nothing changed: every feed answers 304;
  churn  a tenth of the feeds gain five entries each.
For each: wall seconds, CPU seconds (user + system, worker processes included) and the
peak resident memory of the largest process. Matching and clustering alone:
bench/throughput.py. The shared ../shared/bench/feedload.py adds the fetch-and-parse
floor and the reader library beside these.
"""

from __future__ import annotations

import argparse
import email.utils
import hashlib
import os
import random
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import entry  # the same synthetic news as the throughput bench


class Feeds:
    """N feeds of `entries` items each; `churn` adds items to some of them."""

    def __init__(self, n: int, entries: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.count = 0
        self.items = [[self._item(f) for _ in range(entries)] for f in range(n)]
        self.entries = entries
        self.bodies = [self._render(f) for f in range(n)]

    def _item(self, f: int, at: datetime | None = None) -> tuple[str, str, str, datetime]:
        self.count += 1
        # throughput.entry picks the kind by index: multiples of 5 are English items on the
        # profile's topics, 3 mod 10 Russian ones, the rest filler. Here about 3% are on
        # topic, as in a general news feed.
        k, roll = self.rng.randrange(10**6), self.rng.random()
        title, text, _ = entry(
            self.rng, 5 * k if roll < 0.02 else 10 * k + 3 if roll < 0.03 else 10 * k + 1
        )
        when = at or self.now - timedelta(minutes=self.rng.randint(1, 600))
        return title, text, f"https://outlet{f % 50}.example/{f}/{self.count}", when

    def _render(self, f: int) -> bytes:
        items = sorted(self.items[f], key=lambda i: i[3], reverse=True)[: self.entries]
        out = [
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Outlet {f}</title><link>https://outlet{f % 50}.example/</link>"
            "<description>synthetic</description>"
        ]
        for title, text, url, when in items:
            out.append(
                f"<item><title>{escape(title)}</title><link>{url}</link>"
                f"<guid>{url}</guid><pubDate>{email.utils.format_datetime(when)}"
                f"</pubDate><description>{escape('<p>' + text + '</p>')}"
                "</description></item>"
            )
        out.append("</channel></rss>")
        return "".join(out).encode()

    def churn(self, share: float = 0.1, new: int = 5) -> None:
        for f in range(0, len(self.items), round(1 / share)):
            self.items[f] += [self._item(f, datetime.now(UTC)) for _ in range(new)]
            self.bodies[f] = self._render(f)


def serve(feeds: Feeds) -> tuple[ThreadingHTTPServer, dict[str, int]]:
    counts = {"200": 0, "304": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = feeds.bodies[int(self.path.strip("/").removesuffix(".xml"))]
            etag = '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'
            fresh = self.headers.get("If-None-Match") == etag
            counts["304" if fresh else "200"] += 1
            self.send_response(304 if fresh else 200)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            self.send_header("Content-Length", "0" if fresh else str(len(body)))
            self.end_headers()
            if not fresh:
                self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, counts


def measure(cmd: list[str], cwd: Path) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak MiB, exit code) of one process and the children it waited for."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    assert proc.stderr is not None
    if os.waitstatus_to_exitcode(status):
        sys.stderr.write(proc.stderr.read().decode()[-2000:])
    return (
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        os.waitstatus_to_exitcode(status),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--feeds", type=int, default=200)
    ap.add_argument("--entries", type=int, default=50)
    ap.add_argument("--cmd", default="monitor")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    feeds = Feeds(args.feeds, args.entries, args.seed)
    httpd, counts = serve(feeds)
    folder = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    lines = [
        "[database]",
        f'url = "sqlite:///{(folder / "bench.db").as_posix()}"',
        "[[channels]]",
        'type = "console"',
    ]
    for f in range(args.feeds):
        lines += [
            "[[feeds]]",
            f'url = "http://127.0.0.1:{httpd.server_address[1]}/{f}.xml"',
            f'name = "Outlet {f}"',
        ]
    (folder / "monitor.toml").write_text("\n".join(lines) + "\n")
    cmd = [*shlex.split(args.cmd), "--config", str(folder / "monitor.toml"), "poll"]
    print(f"{args.feeds} feeds x {args.entries} entries, in {folder}")
    failed = 0
    for phase in ("cold", "warm", "churn"):
        if phase == "churn":
            feeds.churn()
        before = dict(counts)
        wall, cpu, peak, rc = measure(cmd, folder)
        answers = {k: counts[k] - before[k] for k in counts}
        print(
            f"{phase:6} {wall:8.2f} s  cpu {cpu:8.2f} s  peak {peak:7.1f} MiB  rc {rc}  "
            f"200: {answers['200']}  304: {answers['304']}"
        )
        failed |= rc
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
