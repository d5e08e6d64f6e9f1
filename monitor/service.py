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
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor import metrics, store
from monitor.fetch import FetchResult
from monitor.hubs import subscribe_due
from monitor.pipeline import Pipeline
from monitor.poller import log_failure
from monitor.web.serve import Desk, start_desk

log = logging.getLogger("monitor.service")

GRACE = timedelta(seconds=15)


def tick_interval(pipeline: Pipeline) -> float:
    """How often to look for due feeds: fine enough for the shortest feed interval."""
    intervals = [f.poll_interval.total_seconds() for f in pipeline.settings.feeds if f.enabled]
    shortest = min(intervals, default=600.0)
    return max(0.25, min(10.0, shortest / 4))


async def serve(pipeline: Pipeline) -> None:
    stop = asyncio.Event()
    busy = asyncio.Lock()  # polling and retention, one at a time
    delivering = asyncio.Lock()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    desk: Desk | None = None  # started below, once the jobs are scheduled
    running: set[asyncio.Task[Any]] = set()
    kicks: set[asyncio.Future[None]] = set()  # deliveries started by a poll that alerted

    def tracked(job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """A scheduler job whose run the shutdown can wait for."""

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            running.add(task)
            try:
                await job()
            finally:
                running.discard(task)

        return run

    async def tick() -> None:
        if stop.is_set():
            return
        async with busy:
            if stop.is_set():  # waited for the lock while the service was stopping
                return
            metrics.mark_tick()
            try:
                stats = await pipeline.poll(only_due=True)
                metrics.tick_done(stats.feeds, stats.errors)
                if desk is not None and stats.new_entries + stats.updated_entries:
                    desk.indexer.nudge()
                if stats.alerts:  # deliver now, beside the next polls, not a tick later
                    kicked = asyncio.ensure_future(tracked(deliver)())
                    kicks.add(kicked)
                    kicked.add_done_callback(kicks.discard)
                if stats.feeds:
                    log.info(
                        "polled %d feeds: %d changed, %d not modified, %d errors, "
                        "%d new entries, %d alerts",
                        stats.feeds,
                        stats.fetched,
                        stats.not_modified + stats.unchanged,
                        stats.errors,
                        stats.new_entries,
                        stats.alerts,
                    )
            except Exception as exc:
                metrics.tick_failed(f"{type(exc).__name__}: {exc}")
                log_failure("tick failed; the next one will retry")

    async def deliver() -> None:
        """Deliveries run beside polling, not inside its tick: a receiver that is slow to
        answer (each send has a total deadline) never holds back the next poll."""
        if stop.is_set() or delivering.locked():
            return
        async with delivering:
            try:
                await pipeline.deliver_due()
                with pipeline.db.session() as s:
                    metrics.QUEUE.set(store.count_due(s, pipeline.clock()))
            except Exception:
                log_failure("delivering failed; the next round will retry")

    async def cleanup() -> None:
        async with busy:
            if stop.is_set():
                return
            try:
                before = pipeline.clock() - pipeline.settings.service.retention
                with pipeline.db.session() as s:
                    n = store.cleanup(s, before)
                log.info(
                    "retention: removed %d entries last seen before %s",
                    n,
                    before.date().isoformat(),
                )
            except Exception:
                log_failure("retention clean-up failed; it runs again tomorrow")

    async def first_then_deliver(poll: asyncio.Task[None]) -> None:
        await asyncio.wait({poll})
        await deliver()
        await subscribe()  # the first poll found which feeds name a hub

    async def take_push(result: FetchResult) -> None:
        """A hub's push, processed at once as the fetch it stands for, then delivered."""
        async with busy:
            if stop.is_set():
                return
            try:
                alerts = pipeline.process_result(result).alerts + pipeline.settle().alerts
            except Exception:
                log_failure("processing a WebSub push failed; the next poll reads the feed")
                return
        log.info("WebSub push for feed %d processed: %d alerts", result.feed_id, alerts)
        if alerts:
            await deliver()

    def on_push(result: FetchResult) -> None:
        """Called on the desk's thread: hand the push to this loop."""

        def start() -> None:
            task = asyncio.ensure_future(take_push(result))
            pushes.add(task)
            task.add_done_callback(pushes.discard)  # a service of months keeps none

        loop.call_soon_threadsafe(start)

    pushes: set[asyncio.Future[None]] = set()

    async def subscribe() -> None:
        if stop.is_set():
            return
        try:
            await subscribe_due(pipeline.settings, pipeline.db, pipeline.clock())
        except Exception:
            log_failure("asking WebSub hubs for subscriptions failed; it is tried again")

    scheduler = AsyncIOScheduler(timezone="UTC")
    every = tick_interval(pipeline)
    scheduler.add_job(
        tracked(tick), "interval", seconds=every, id="tick", max_instances=1, coalesce=True
    )
    scheduler.add_job(
        tracked(deliver), "interval", seconds=every, id="deliver", max_instances=1, coalesce=True
    )
    scheduler.add_job(tracked(cleanup), "cron", hour=3, minute=17, id="retention", coalesce=True)
    if pipeline.settings.websub.callback:
        scheduler.add_job(
            tracked(subscribe), "interval", seconds=60, id="websub", max_instances=1, coalesce=True
        )
    scheduler.start()
    endpoint = start_endpoint(pipeline, every)
    desk = start_desk(pipeline.settings, pipeline.db)
    if desk is not None:
        desk.app.state.on_push = on_push
    with pipeline.db.session() as s:
        enabled, _ = store.feed_health(s)
    if not enabled:
        log.warning("no enabled feeds: add [[feeds]] to the config, or `monitor feeds add URL`")
    log.info(
        "monitor running: %d feeds, tick every %.1fs; SIGTERM or Ctrl-C to stop",
        len(pipeline.settings.feeds),
        every,
    )
    first = asyncio.create_task(tick())
    first_delivery = asyncio.create_task(first_then_deliver(first))
    await stop.wait()
    log.info("stopping: finishing in-flight work")
    # Pause, not shut down, until the work in flight is done: APScheduler's asyncio
    # executor cancels the jobs still running when it shuts down.
    scheduler.pause()
    _, late = await asyncio.wait(
        {first, first_delivery, *running, *pushes}, timeout=GRACE.total_seconds()
    )
    if late:
        log.warning("in-flight work did not finish within %s; its leases will expire", GRACE)
    scheduler.shutdown(wait=False)
    with pipeline.db.session() as s:
        store.clear_feed_leases(s, pipeline.owner)
    if endpoint is not None:
        endpoint.close()
    if desk is not None:
        desk.stop()
    log.info("stopped")


def health_report(pipeline: Pipeline, every: float) -> dict[str, object]:
    """What /healthz answers: healthy while the database answers, the scheduler ticks,
    ticks succeed (fewer than metrics.FAILED_TICKS failed in a row, a tick whose every
    feed failed counting as failed) and not every enabled feed is failing."""
    report: dict[str, object] = {"scheduler_tick_age_s": round(metrics.tick_age(), 1)}
    feeds_ok = True
    try:
        with pipeline.db.session() as s:
            total, failing = store.feed_health(s)
        report["database"] = "ok"
        report["feeds"] = {"enabled": total, "failing": failing}
        feeds_ok = not (total and failing >= total)
    except Exception as exc:
        report["database"] = f"error: {type(exc).__name__}"
    alive = metrics.tick_age() < 3 * every + 30
    failed, why = metrics.tick_health()
    report["scheduler"] = "ok" if alive else "stalled"
    report["ticks"] = "ok" if failed < metrics.FAILED_TICKS else f"{failed} failed in a row"
    if why:
        report["last_failure"] = why
    report["ok"] = (
        alive and report["database"] == "ok" and failed < metrics.FAILED_TICKS and feeds_ok
    )
    return report


def start_endpoint(pipeline: Pipeline, every: float) -> metrics.Endpoint | None:
    """/healthz and /metrics on [service] listen; a busy port is logged, not fatal."""
    listen = pipeline.settings.service.listen
    if not listen:
        return None
    host, _, port = listen.rpartition(":")

    try:
        endpoint = metrics.Endpoint(
            host or "127.0.0.1", int(port), lambda: health_report(pipeline, every)
        )
    except OSError as exc:
        log.warning("cannot serve /healthz and /metrics on %s: %s", listen, exc)
        return None
    log.info("health and metrics on http://%s:%d/healthz and /metrics", host, endpoint.port)
    return endpoint
