"""A large poll in parallel: worker processes ("lanes") that fetch shares of the feeds and
prepare the documents that changed, while the main process stores what they send.

Fetching costs about as much CPU per feed as an unchanged feed's whole processing, and
parsing and matching a changed one several times more; one process would spend both on
one core. The feeds are split into one share per core. The main process fetches one
share itself, in its event loop, since most feeds of most polls answer 304 and a lane
fewer to start saves a tenth of a second of CPU; the documents that changed in it go to
a lane started for them at the first one (at once if the share was never polled: then
every document is new). Each other share goes to a lane that fetches it (fetch.py, with
the concurrency limits divided between shares, so a host never sees more connections
than configured) and prepares each changed body as it arrives (prepare.py). A lane
writes each result, body included, to its stdout pipe, so it waits when the storing
side falls behind and memory stays flat. A lane is a fresh interpreter importing only
what it needs (multiprocessing's spawn would re-run the command that started the poll).

A lane that dies (killed for memory on a hostile document, say) costs the document it
was reading: that feed is reported failed, and what the lane had not answered goes to a
new lane. Lanes ignore SIGINT and SIGTERM (Ctrl-C and systemd signal the whole process
group): the main process decides when they stop, and they die with it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeAlias

from monitor.fetch import (
    FetchOptions,
    FetchRequest,
    FetchResult,
    fetch_stream,
    host_of,
    ssl_context,
)

if TYPE_CHECKING:
    from monitor.match import Matcher
    from monitor.prepare import Prepared

log = logging.getLogger("monitor.lanes")

# Below this many feeds in one poll, fetching and preparing in-process is cheaper than
# starting lanes (a fifth of a second of CPU each).
LANES_MIN_FEEDS = 16
# A share is given to a fresh lane at most this many times in one poll, then failed.
MAX_RESTARTS = 3
DIED = "the parser process died while reading this document"
FRAME_HEADER = 8  # bytes of a frame's length, before its pickle
INBOX = 16  # messages read ahead of the storing side, from all lanes
MAX_SENT = 8  # documents fetched here and sent to a lane to prepare, not yet answered


@dataclass(frozen=True, slots=True)
class FeedState:
    """What a lane needs to know of a feed besides its request."""

    url: str  # as configured (relative links in the document resolve against it)
    body_hash: str | None  # of the last body stored: the same body needs no parsing
    first_sight: bool  # never polled: nothing of it is stored yet


@dataclass(frozen=True, slots=True)
class Share:
    """One lane's work: its requests and how to prepare what they bring."""

    requests: list[FetchRequest]
    feeds: dict[int, FeedState]
    options: FetchOptions
    topics: Path | None
    threshold: float | None
    now: datetime


def changed(result: FetchResult, feed: FeedState) -> bool:
    """A body that differs from the one stored: it must be parsed (the rest is a few
    column updates)."""
    return result.ok and result.body is not None and result.body_hash != feed.body_hash


def split(
    requests: Sequence[FetchRequest], options: FetchOptions, lanes: int
) -> list[tuple[list[FetchRequest], FetchOptions]]:
    """Requests divided between `lanes` lanes, with the limits divided too.

    A host allowed at least one connection per lane has its feeds dealt out to every lane
    (one connection each); a host allowed fewer goes whole to the least loaded lane.
    """
    by_host: dict[str, list[FetchRequest]] = {}
    for r in requests:
        by_host.setdefault(host_of(r.url), []).append(r)
    shares: list[list[FetchRequest]] = [[] for _ in range(lanes)]
    spread = options.per_host >= lanes
    for host_requests in sorted(by_host.values(), key=len, reverse=True):
        start = shares.index(min(shares, key=len))
        if spread:
            for i, r in enumerate(host_requests):
                shares[(start + i) % lanes].append(r)
        else:
            shares[start].extend(host_requests)
    limits = replace(
        options,
        concurrency=max(1, options.concurrency // lanes),
        per_host=max(1, options.per_host // lanes),
    )
    return [(s, limits) for s in shares if s]


# ------------------------------------------------------------------ in the lane --


def lane_main() -> None:
    """A lane's process (`python -c "...lane_main()"`). Frames (8-byte length, pickle) in
    both directions. On stdin: its share first, then ("prepare", (FetchResult, FeedState))
    for documents the main process fetched, ("known", answer) for its questions, and
    ("done", None) once nothing more will be sent to prepare. On stdout:
    ("preparing", feed_id) before a document is read (so its death is charged to that
    document), ("known?", (feed_id, guids)) for what is stored of a document's entries,
    and ("result", (FetchResult, Prepared | None)) for every feed, fetched or sent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The frames own stdout; anything else printed goes to stderr, as log lines do.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    ssl_context()  # nearly every lane fetches: httpx and the CA bundle load before freezing

    gc.freeze()  # modules live as long as the lane: full collections need not rescan them
    asyncio.run(_lane(out))
    out.close()


async def _lane(out: BinaryIO) -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stdin), os.fdopen(0, "rb", buffering=0)
    )
    try:
        share: Share = await _receive(stdin)
    except asyncio.IncompleteReadError:
        return  # the poll ended before giving this lane a share
    answers: asyncio.Queue[dict[str, str] | None] = asyncio.Queue()
    sent: asyncio.Queue[tuple[FetchResult, FeedState] | None] = asyncio.Queue()

    async def read_input() -> None:
        try:
            while True:
                kind, payload = await _receive(stdin)
                if kind == "known":
                    answers.put_nowait(payload)
                elif kind == "prepare":
                    sent.put_nowait(payload)
                else:  # "done"
                    sent.put_nowait(None)
        except asyncio.IncompleteReadError:  # the poll is over
            sent.put_nowait(None)
            answers.put_nowait(None)

    def send(message: tuple[str, Any]) -> None:
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        out.write(len(data).to_bytes(FRAME_HEADER, "big") + data)
        out.flush()

    async def known(feed_id: int, guids: list[str]) -> dict[str, str]:
        send(("known?", (feed_id, guids)))
        answer = await answers.get()
        if answer is None:
            raise ConnectionError("the poll ended before answering")
        return answer

    reader = asyncio.create_task(read_input())
    try:
        await _run_share(share, send, known, sent)
    finally:
        reader.cancel()


async def _receive(stream: asyncio.StreamReader) -> Any:
    size = int.from_bytes(await stream.readexactly(FRAME_HEADER), "big")
    return pickle.loads(await stream.readexactly(size))


async def _run_share(
    share: Share,
    send: Callable[[tuple[str, Any]], None],
    known: Callable[[int, list[str]], Awaitable[dict[str, str]]],
    sent: asyncio.Queue[tuple[FetchResult, FeedState] | None],
) -> None:
    """Fetch the share, preparing each changed document, and prepare the documents the
    main process sends, one document at a time, until the share is done and the main
    process says nothing more will come."""
    one_at_a_time = asyncio.Lock()  # a death is charged to the one document being read
    matcher: Matcher | None = None

    async def prepare(result: FetchResult, feed: FeedState) -> None:
        nonlocal matcher
        # The parser and the profile are loaded at the first changed document: a lane
        # of unchanged feeds only fetches.
        from monitor.match import Matcher, load_profile
        from monitor.parse import ParseError
        from monitor.prepare import Prepared, prepare_document, read_document

        async with one_at_a_time:
            send(("preparing", result.feed_id))
            try:
                matcher = matcher or Matcher(load_profile(share.topics), share.threshold)
                doc = read_document(
                    result.body or b"",
                    result.permanent_url or feed.url,
                    result.content_type,
                    feed.url,
                    share.now,
                )
                stored = {} if feed.first_sight else await known(result.feed_id, doc.guids)
                prepared = prepare_document(doc, matcher, stored)
            except ParseError as exc:
                prepared = Prepared(error=str(exc))
            except Exception as exc:  # a bug: this feed only
                log.exception("feed %s: preparing failed", result.url)
                prepared = Prepared(error=f"processing failed: {exc}", error_kind="store")
            send(("result", (result, prepared)))

    async def own() -> None:
        if not share.requests:
            return
        async for result in fetch_stream(share.requests, share.options):
            feed = share.feeds[result.feed_id]
            if changed(result, feed):
                await prepare(result, feed)
            else:
                send(("result", (result, None)))

    async def others() -> None:
        while (item := await sent.get()) is not None:
            await prepare(*item)

    await asyncio.gather(own(), others())


# ------------------------------------------------------------ in the main process --

Outcome: TypeAlias = "tuple[FetchResult, Prepared | None]"
# How a lane is started: its own interpreter importing only what a lane needs (not the
# command that started the poll, as multiprocessing's spawn would).
LANE_COMMAND = (sys.executable, "-c", "from monitor.lanes import lane_main; lane_main()")


@dataclass(eq=False)  # one lane is one process: identity, not field equality
class _Lane:
    """A lane process, its share, and its pipes as seen from this event loop."""

    process: subprocess.Popen[bytes]
    requests: list[FetchRequest]
    output: asyncio.StreamReader
    transports: tuple[asyncio.ReadTransport, asyncio.WriteTransport]
    reading: int | None = None  # the feed whose document it is reading
    pump: asyncio.Task[None] | None = None
    # Documents fetched by the main process and sent here to prepare, not yet answered.
    sent: dict[int, FetchResult] = field(default_factory=dict)

    @classmethod
    async def adopt(cls, process: subprocess.Popen[bytes], requests: list[FetchRequest]) -> _Lane:
        """Read and write the pipes of a process started earlier, perhaps before this loop
        ran (lanes started ahead, see Lanes.prestart)."""
        assert process.stdout is not None and process.stdin is not None
        loop = asyncio.get_running_loop()
        output = asyncio.StreamReader()
        reading, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(output), process.stdout
        )
        writing, _ = await loop.connect_write_pipe(asyncio.Protocol, process.stdin)
        return cls(process, requests, output, (reading, writing))

    def tell(self, message: Any) -> None:
        """Send a frame; the loop writes it as the pipe takes it. Messages to a lane are a
        share, answers about a few dozen entries and at most MAX_SENT documents awaiting
        preparation, so little piles up; to a dead lane they are dropped (its output
        ends, and the poll learns it there)."""
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        self.transports[1].write(len(data).to_bytes(FRAME_HEADER, "big") + data)

    async def wait(self) -> int:
        return await asyncio.to_thread(self.process.wait)

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


class Lanes:
    """Starts the lanes of one poll and yields their outcomes as they come."""

    def __init__(
        self,
        processes: int,
        topics: Path | None,
        threshold: float | None,
        known: Callable[[int, list[str]], dict[str, str]],
        command: Sequence[str] = LANE_COMMAND,
    ) -> None:
        self.processes = processes
        self.topics = topics
        self.threshold = threshold
        self.known = known  # what is stored of a feed's entries, by guid (a database read)
        self.command = list(command)  # what starts a lane (tests give one that dies)
        self.ready: list[subprocess.Popen[bytes]] = []  # started ahead, waiting for a share

    def use(self, feeds: int) -> bool:
        return self.processes > 0 and feeds >= LANES_MIN_FEEDS

    def prestart(self) -> None:
        """Start the lanes now, before the feeds are claimed: their interpreters start and
        import (a tenth of a second each) while this process reads the database, and
        `run` hands them their shares. Lanes no poll uses are ended by `discard`."""
        while len(self.ready) < self.processes - 1:  # this process fetches a share too
            self.ready.append(self._spawn())

    def discard(self) -> None:
        for process in self.ready:
            with process:  # closes its pipes and reaps it
                process.kill()
        self.ready.clear()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Same process group: Ctrl-C and systemd's stop reach lanes, which ignore them
        # (lane_main) and end when this process closes their input or kills them.
        return subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    async def run(
        self,
        requests: Sequence[FetchRequest],
        feeds: dict[int, FeedState],
        options: FetchOptions,
        now: datetime,
    ) -> AsyncGenerator[Outcome, None]:
        """Every request's outcome, in the order they finish: the fetch result and, for a
        changed body, the prepared document (None: the caller prepares it).

        The requests are split into `processes` shares. This process fetches one itself
        (most feeds of most polls answer 304, and a lane fewer to start is a tenth of a
        second of CPU saved) and sends the documents that changed in it to a lane
        started for them when the first one arrives (at once on the share's first poll);
        each other share goes to a lane that fetches and prepares it."""
        lanes: list[_Lane] = []
        inbox: asyncio.Queue[tuple[_Lane | None, Any]] = asyncio.Queue(INBOX)
        answered: set[int] = set()
        restarts = 0
        fetching_here = True
        failed_here: list[BaseException] = []
        room = asyncio.Semaphore(MAX_SENT)  # documents sent to lanes, not yet answered
        helper: _Lane | None = None  # the lane preparing what this process fetched
        (mine, limits), *theirs = split(requests, options, self.processes)

        async def start(
            share_requests: list[FetchRequest], resend: Sequence[FetchResult] = ()
        ) -> _Lane:
            share = Share(
                share_requests,
                {r.feed_id: feeds[r.feed_id] for r in share_requests},
                limits,
                self.topics,
                self.threshold,
                now,
            )
            process = self.ready.pop() if self.ready else self._spawn()
            lane = await _Lane.adopt(process, share_requests)
            lane.tell(share)
            for result in resend:
                hand(lane, result)
            if not fetching_here:
                lane.tell(("done", None))
            lane.pump = asyncio.create_task(_pump(lane, inbox, self.known))
            lanes.append(lane)
            return lane

        async def fetch_here() -> None:
            nonlocal fetching_here, helper
            try:
                async for result in fetch_stream(mine, limits):
                    if not changed(result, feeds[result.feed_id]):
                        await inbox.put((None, result))
                        continue
                    await room.acquire()
                    if helper is None or helper not in lanes:
                        helper = await start([])
                    hand(helper, result)
            except Exception as exc:  # a bug: the poll fails, as it would in-process
                failed_here.append(exc)
            fetching_here = False
            for lane in lanes:
                lane.tell(("done", None))
            await inbox.put((None, None))

        def hand(lane: _Lane, result: FetchResult) -> None:
            """Send a document fetched here to `lane` to prepare."""
            lane.sent[result.feed_id] = result
            lane.tell(("prepare", (result, feeds[result.feed_id])))

        def answer(lane: _Lane, feed_id: int) -> None:
            answered.add(feed_id)
            if lane.sent.pop(feed_id, None) is not None:
                room.release()

        for share_requests, _ in theirs:
            await start(share_requests)
        if any(feeds[r.feed_id].first_sight for r in mine):
            helper = await start([])  # a first poll's documents are all new: no waiting
        here = asyncio.create_task(fetch_here())
        try:
            while lanes or fetching_here:
                lane, message = await inbox.get()
                if lane is None:  # from fetch_here: a result, or its end
                    if failed_here:
                        raise failed_here[0]
                    if message is not None:
                        answered.add(message.feed_id)
                        yield message, None
                    continue
                if message is not None:
                    kind, payload = message
                    if kind == "preparing":
                        lane.reading = payload
                    elif payload[0].feed_id not in answered:
                        lane.reading = None
                        answer(lane, payload[0].feed_id)
                        yield payload
                    continue
                lanes.remove(lane)  # its output ended: it finished, or died
                lane.close()
                for outcome in _ended(lane, answered):
                    answer(lane, outcome[0].feed_id)
                    yield outcome
                left = [r for r in lane.requests if r.feed_id not in answered]
                resend = [r for r in lane.sent.values() if r.feed_id not in answered]
                if not left and not resend:
                    continue
                if restarts < MAX_RESTARTS:
                    restarts += 1
                    log.warning(
                        "a lane process ended (exit %s) with %d feeds unanswered; "
                        "a new one takes them",
                        lane.process.returncode,
                        len(left) + len(resend),
                    )
                    replacement = await start(left, resend)
                    if lane is helper:
                        helper = replacement
                    continue
                for r in left:
                    answered.add(r.feed_id)
                    yield FetchResult(r.feed_id, r.url, error=DIED, error_kind="worker"), None
                for result in resend:
                    answer(lane, result.feed_id)
                    yield (
                        FetchResult(result.feed_id, result.url, error=DIED, error_kind="worker"),
                        None,
                    )
        finally:
            here.cancel()
            self.discard()
            for lane in lanes:
                if lane.process.poll() is None:
                    lane.process.kill()
                if lane.pump is not None:
                    lane.pump.cancel()
                await lane.wait()
                lane.close()


async def _pump(
    lane: _Lane,
    inbox: asyncio.Queue[tuple[_Lane | None, Any]],
    known: Callable[[int, list[str]], dict[str, str]],
) -> None:
    """Move a lane's messages to the inbox, None once its output ends; its questions are
    answered here, so a lane never waits for the storing side to catch up."""
    stream = lane.output
    try:
        while True:
            size = int.from_bytes(await stream.readexactly(FRAME_HEADER), "big")
            message = pickle.loads(await stream.readexactly(size))
            if message[0] == "known?":
                lane.tell(("known", await asyncio.to_thread(known, *message[1])))
            else:
                await inbox.put((lane, message))
    except (asyncio.IncompleteReadError, pickle.UnpicklingError, EOFError):
        pass  # the lane finished (or died mid-frame)
    await lane.wait()
    await inbox.put((lane, None))


def _ended(lane: _Lane, answered: set[int]) -> list[Outcome]:
    """A lane's output ended: if it died reading a document, that feed failed."""
    victim = lane.reading
    if victim is None or victim in answered:
        return []
    answered.add(victim)
    url = (
        lane.sent[victim].url
        if victim in lane.sent
        else next(r.url for r in lane.requests if r.feed_id == victim)
    )
    log.error(
        "feed %s: the parser process died while reading it (exit %s)", url, lane.process.returncode
    )
    return [(FetchResult(victim, url, error=DIED, error_kind="worker"), None)]
