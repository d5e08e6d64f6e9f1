"""Running the desk: in the service's process, on a thread of its own (`monitor run`), or
alone in the foreground (`monitor web`, for a deployment where workers and the web run
apart)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import TYPE_CHECKING

from monitor.config import Settings, web_address
from monitor.db import Database

if TYPE_CHECKING:
    import uvicorn
    from fastapi import FastAPI

log = logging.getLogger("monitor.web")


def server(settings: Settings, db: Database, app: FastAPI | None = None) -> uvicorn.Server:
    """A uvicorn server of the desk (`app`, or one made here) on `[web] listen` (not
    started; checked by config)."""
    import uvicorn

    from monitor.web import create_app

    host, port = web_address(settings.web.listen)
    config = uvicorn.Config(
        app or create_app(settings, db),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    return _server_class()(config)


# How often the desk's server wakes while idle to see whether it should stop. uvicorn's own
# loop wakes every 0.1 s: 0.23 s of CPU a minute in the soak, for nothing.
TICK = 1.0


def _server_class() -> type[uvicorn.Server]:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, waking once a TICK rather than ten times a second; `on_tick`
        is told a counter that refreshes the Date header at every wake."""

        async def main_loop(self) -> None:
            counter = 0
            while not await self.on_tick(counter):
                counter += 10
                await asyncio.sleep(TICK)

    return Server


class Desk:
    """The desk on a thread of the service's process, stopped with the service. A port
    in use is logged by uvicorn and ends the desk only, not the service."""

    def __init__(self, settings: Settings, db: Database) -> None:
        from monitor.web import create_app

        self.listen = settings.web.listen
        self.app = create_app(settings, db)  # its state: where the service hands pushes
        self.server = server(settings, db, self.app)
        self.thread = threading.Thread(target=self.server.run, name="web-desk", daemon=True)
        self.indexer = Indexer(db)

    def start(self, wait: float = 10.0) -> bool:
        """Start serving; whether the desk is up within `wait` seconds (a busy address
        is logged by uvicorn, and here once more, in words)."""
        self.thread.start()
        self.indexer.start()
        deadline = time.monotonic() + wait
        while not self.server.started and self.thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if self.server.started:
            log.info("web desk on http://%s/", self.listen)
            return True
        log.warning("the web desk is not served on %s (see the error above)", self.listen)
        return False

    def stop(self) -> None:
        self.server.should_exit = True
        self.indexer.stop()
        self.thread.join(timeout=10)


class Indexer:
    """Keeps the search index caught up with what the writers store (store/search.py
    says why it runs behind them): a chunk at a time, each its own short transaction,
    then a pause while there is nothing new."""

    CHUNK = 2000
    PAUSE = 2.0
    # The pause when the service's polls wake the indexer (`nudge`): it then only needs
    # to look now and then for what other workers stored.
    NUDGED_PAUSE = 30.0

    def __init__(self, db: Database) -> None:
        self.db = db
        self.pause = self.PAUSE
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="search-index", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def nudge(self) -> None:
        """Something was stored: index it now. The first nudge makes the pause long,
        so that a service's idle desk does not look every PAUSE seconds."""
        self.pause = self.NUDGED_PAUSE
        self.wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)

    def _run(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        from monitor.store import search

        while not self.stopping.is_set():
            try:
                with self.db.session() as s:
                    done = search.catch_up(s, self.CHUNK)
            except SQLAlchemyError as exc:  # busy, or the database went away: later
                log.warning("search index: %s", exc.__class__.__name__)
                done = 0
            if done < self.CHUNK:
                self.wake.wait(self.pause)
                self.wake.clear()


def start_desk(settings: Settings, db: Database) -> Desk | None:
    """The service's desk, started, unless `[web] listen` is empty."""
    if not settings.web.listen:
        return None
    desk = Desk(settings, db)
    desk.start()
    return desk
