"""Fetching a large one-shot poll in forked helper processes.

A 304 costs the client more CPU than the server (httpx and h11 are pure Python), so a
one-shot poll of a thousand feeds that changed little is bound by one core's fetching.
Forked helpers, which share every module the main process has loaded, fetch a share
each and send back their results; the main process only stores them and hands the
changed documents to the parser pool. (A share of its own would be fetched by an event
loop that shares the interpreter lock with the storing thread: in a poll where a tenth
of the feeds changed, it ended a third of a second after the helper's.) The service
does not fan out: its pool stays warm and the CPU per cycle, not one poll's wall
time, is what it is measured by.

Politeness stays that of one process: a host's requests go to at most `per_host`
processes, each allowed `per_host // processes` (at least one) at once, so no host sees
more than `per_host` concurrent requests in all. A host with many feeds (as in a
benchmark, all on one address) is still shared; then each process asks it one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
from collections import defaultdict
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from monitor.fetch import FetchOptions, FetchRequest, FetchResult, fetch_stream, host_of

log = logging.getLogger("monitor.fanout")

# Requests a process must have to be worth a fork (a fork and its pipe cost a few ms;
# a 304 about one).
SHARE_MIN = 150
# Results a helper sends at once: fewer, larger writes.
SEND_EVERY = 16


def helpers_for(requests: int, processes: int) -> int:
    """How many helpers fetch a poll of `requests` feeds, `processes` being how many
    processes may fetch in all: none (the main process fetches) unless at least two
    would each get a worthwhile share."""
    helpers = min(processes, requests // SHARE_MIN)
    return helpers if helpers > 1 else 0


def shares(
    requests: Sequence[FetchRequest], processes: int, per_host: int
) -> list[list[FetchRequest]]:
    """`requests` dealt to `processes` processes, a host's to at most `per_host` of them:
    the largest host first, each to the processes that hold the fewest so far, each of
    its requests to the one of those that holds the fewest."""
    out: list[list[FetchRequest]] = [[] for _ in range(processes)]
    spread = max(1, min(processes, per_host // max(1, per_host // processes)))
    by_host: dict[str, list[FetchRequest]] = defaultdict(list)
    for r in requests:
        by_host[host_of(r.url)].append(r)
    for reqs in sorted(by_host.values(), key=len, reverse=True):
        allowed = sorted(range(processes), key=lambda k: len(out[k]))[:spread]
        for r in reqs:
            min((out[k] for k in allowed), key=len).append(r)
    return out


class Fanout:
    """One poll's fetching, over `processes` forked helpers.

    The helpers are forked when it is made, before the poll starts any thread (the parser
    pool starts in one), so a child never inherits a lock some other thread held."""

    def __init__(
        self, requests: Sequence[FetchRequest], opts: FetchOptions, processes: int
    ) -> None:
        self.options = replace(
            opts,
            per_host=max(1, opts.per_host // processes),
            concurrency=max(1, opts.concurrency // processes),
        )
        context = multiprocessing.get_context("fork")
        self.helpers: list[tuple[BaseProcess, Connection, list[FetchRequest]]] = []
        for share in shares(requests, processes, opts.per_host):
            reading, writing = context.Pipe(duplex=False)
            process = context.Process(
                target=_helper, args=(share, self.options, writing), daemon=True
            )
            process.start()
            writing.close()
            self.helpers.append((process, reading, share))

    async def results(self) -> AsyncGenerator[FetchResult, None]:
        """Every request's result as it comes. A helper that dies costs its unanswered
        feeds one poll (a `worker` failure), not the poll."""
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[list[FetchResult] | None] = asyncio.Queue()
        for _, reading, _ in self.helpers:
            threading.Thread(
                target=_relay, args=(reading, loop, inbox), name="fanout-relay", daemon=True
            ).start()
        answered: set[int] = set()
        try:
            open_ = len(self.helpers)
            while open_:
                batch = await inbox.get()
                if batch is None:
                    open_ -= 1
                    continue
                for result in batch:
                    answered.add(result.feed_id)
                    yield result
            for process, _, share in self.helpers:
                process.join()
                for r in share:
                    if r.feed_id not in answered:
                        yield FetchResult(
                            r.feed_id,
                            r.url,
                            error="the fetching process ended before this feed's answer",
                            error_kind="worker",
                        )
        finally:
            self.close()

    def close(self) -> None:
        for process, _, _ in self.helpers:
            if process.is_alive():
                process.terminate()
            process.join()


def _relay(
    reading: Connection,
    loop: asyncio.AbstractEventLoop,
    inbox: asyncio.Queue[list[FetchResult] | None],
) -> None:
    """A helper's results, from its pipe to the event loop, until the helper ends."""
    try:
        while True:
            try:
                batch: list[FetchResult] = reading.recv()
            except (EOFError, OSError):
                return
            loop.call_soon_threadsafe(inbox.put_nowait, batch)
    finally:
        reading.close()
        loop.call_soon_threadsafe(inbox.put_nowait, None)


def _helper(requests: list[FetchRequest], opts: FetchOptions, writing: Connection) -> None:
    """A forked helper: fetch `requests`, send the results in small batches."""
    signal.set_wakeup_fd(-1)  # the parent's event loop's, not ours
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    async def run() -> None:
        batch: list[FetchResult] = []
        async for result in fetch_stream(requests, opts):
            batch.append(result)
            if len(batch) >= SEND_EVERY or result.body:
                writing.send(batch)
                batch = []
        if batch:
            writing.send(batch)

    try:
        asyncio.run(run())
    except BaseException:
        log.exception("fetching helper %d failed", os.getpid())
        raise
    finally:
        writing.close()
