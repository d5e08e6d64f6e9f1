"""`monitor run`: the long-running service, driven by APScheduler on an asyncio loop.

One tick job claims the feeds that are due (each feed keeps its own next poll time in the
database, so intervals survive restarts) and then delivers what is due. On SIGTERM or SIGINT
the scheduler stops starting ticks, the tick in flight finishes (within a grace period),
leases are released and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor import store
from monitor.pipeline import Pipeline

log = logging.getLogger("monitor.service")

GRACE = timedelta(seconds=15)


def tick_interval(pipeline: Pipeline) -> float:
    """How often to look for due feeds: fine enough for the shortest feed interval."""
    intervals = [f.interval.total_seconds() for f in pipeline.settings.feeds if f.enabled]
    shortest = min(intervals, default=600.0)
    return max(0.25, min(10.0, shortest / 4))


async def serve(pipeline: Pipeline) -> None:
    stop = asyncio.Event()
    busy = asyncio.Lock()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def tick() -> None:
        if stop.is_set():
            return
        async with busy:
            try:
                stats = await pipeline.poll(only_due=True, fresh_for=fresh_for)
                if stats.feeds:
                    log.info("polled %d feeds: %d changed, %d not modified, %d errors, "
                             "%d new entries, %d alerts", stats.feeds, stats.fetched,
                             stats.not_modified + stats.unchanged, stats.errors,
                             stats.new_entries, stats.alerts)
                await pipeline.deliver_due()
            except Exception:
                log.exception("tick failed; the next one will retry")

    scheduler = AsyncIOScheduler(timezone="UTC")
    every = tick_interval(pipeline)
    # Feeds are polled at different moments within their interval: a development opened
    # by another feed's poll within the shortest interval still counts as this poll's.
    fresh_for = timedelta(seconds=min((f.interval.total_seconds() for f in
                                       pipeline.settings.feeds if f.enabled), default=600))
    scheduler.add_job(tick, "interval", seconds=every, id="tick", max_instances=1,
                      coalesce=True)
    scheduler.start()
    log.info("monitor running: %d feeds, tick every %.1fs; SIGTERM or Ctrl-C to stop",
             len(pipeline.settings.feeds), every)
    first = asyncio.create_task(tick())
    await stop.wait()
    log.info("stopping: finishing in-flight work")
    scheduler.shutdown(wait=False)
    try:
        await asyncio.wait_for(asyncio.shield(first), GRACE.total_seconds())
        async with asyncio.timeout(GRACE.total_seconds()):
            async with busy:
                pass
    except TimeoutError:
        log.warning("in-flight work did not finish within %s; its leases will expire", GRACE)
    with pipeline.db.session() as s:
        store.clear_feed_leases(s, pipeline.owner)
    log.info("stopped")
