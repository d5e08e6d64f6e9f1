"""The clustering index of one worker: recent development members in memory, with the pool
of word weights, so placing an article costs about the same with a thousand members as
with ten. Pure; developments.py keeps it in step with the database."""

from __future__ import annotations

import bisect
import heapq
import sys
from collections import deque
from collections.abc import Sequence
from datetime import datetime

from monitor.cluster import (
    CROWD,
    CROWD_CAP,
    KEY_SEP,
    Assignment,
    ClusterParams,
    Features,
    Idf,
    JoinModel,
    Member,
    Shift,
    Vectors,
    assign,
)


class ClusterIndex:
    """Recent development members in memory, with their IDF pool; pure, no I/O.

    Candidates for a new article come from an inverted index over the informative features
    (those in at most a fifth of the pool), best overlap first, so assigning costs about
    the same with a thousand members as with ten.
    """

    MAX_CANDIDATES = 64

    def __init__(self, params: ClusterParams | None = None, model: JoinModel | None = None) -> None:
        self.params = params or ClusterParams()
        self.model = model  # None: the built-in one
        self.members: dict[int, Member] = {}
        self._by_dev: dict[int, set[int]] = {}
        self._idf = Idf()
        self.max_entry_id = 0
        # Articles that count for word weights only (off-topic ones are not clustered, but
        # they are the background that tells a telling word from a common one).
        self._background: dict[int, tuple[datetime, tuple[str, ...]]] = {}
        # Background articles observed but not yet counted, oldest first. A large poll
        # observes far more than the background holds: counting each only for a later one
        # to push it out again was most of that poll's clustering work. What reads the
        # weights counts them first (`idf`); those pushed out while waiting never are.
        self._waiting: deque[tuple[int, datetime, str | Sequence[str]]] = deque()
        self._oldest_waiting: datetime | None = None  # (or older: it is not raised on a pop)
        # (published_at, entry id) of everything held, oldest first, so pruning costs
        # O(log n) per article dropped rather than a scan per poll; stale pairs (an entry
        # re-added with another date) are skipped when they surface.
        self._by_time: list[tuple[datetime, int]] = []
        self._postings: dict[str, set[int]] = {}
        self._by_url: dict[str, set[int]] = {}
        self._by_hash: dict[str, set[int]] = {}
        self._vectors = Vectors(self._idf)
        # (published_at, entry id) of every member, in order: the developments of a
        # period (`crowd`) without a scan of all members
        self._times: list[tuple[datetime, int]] = []

    def observe(self, entry_id: int, published_at: datetime, f: Features) -> None:
        """Count an article that is not clustered towards the word weights."""
        self.observe_keys(entry_id, published_at, tuple(Idf.keys(f)))

    def observe_keys(
        self, entry_id: int, published_at: datetime, keys: str | Sequence[str]
    ) -> None:
        """`observe`, given the article's `Idf.keys` (as a parser worker computes them),
        as a sequence or packed (cluster.pack_keys), kept as given (not copied)."""
        # Only what the weights need, not the whole article.
        self._waiting.append((entry_id, published_at, keys))
        if self._oldest_waiting is None or published_at < self._oldest_waiting:
            self._oldest_waiting = published_at
        self.max_entry_id = max(self.max_entry_id, entry_id)
        if len(self._waiting) > self.params.background:
            # It would be counted, then pushed out by the later ones: what is left of
            # that is that no earlier copy of it stays.
            self._drop(self._waiting.popleft()[0])

    @property
    def idf(self) -> Idf:
        """The word weights, every observed article counted."""
        self._count_waiting()
        return self._idf

    def _count_waiting(self) -> None:
        """Count the observed articles still waiting, in order: the first thing every
        method that reads or changes what is held does."""
        waiting = self._waiting
        self._oldest_waiting = None
        while waiting:
            entry_id, published_at, given = waiting.popleft()
            # Interned, so the many articles that share a word share its string.
            keys = tuple(map(sys.intern, given.split(KEY_SEP) if isinstance(given, str) else given))
            self._drop(entry_id)
            self._background[entry_id] = (published_at, keys)
            self._idf.add_keys(keys)
            while len(self._background) > self.params.background:  # oldest observed first
                self._drop(next(iter(self._background)))
            heapq.heappush(self._by_time, (published_at, entry_id))

    def add(self, m: Member) -> None:
        self._count_waiting()
        self._drop(m.entry_id)
        self.members[m.entry_id] = m
        self._by_dev.setdefault(m.development_id, set()).add(m.entry_id)
        self._idf.add(m.features)
        for key in Idf.keys(m.features):
            self._postings.setdefault(key, set()).add(m.entry_id)
        if m.canonical_url:
            self._by_url.setdefault(m.canonical_url, set()).add(m.entry_id)
        self._by_hash.setdefault(m.content_hash, set()).add(m.entry_id)
        bisect.insort(self._times, (m.published_at, m.entry_id))
        heapq.heappush(self._by_time, (m.published_at, m.entry_id))
        self.max_entry_id = max(self.max_entry_id, m.entry_id)

    def _drop(self, entry_id: int) -> None:
        background = self._background.pop(entry_id, None)
        if background is not None:
            self._idf.remove_keys(background[1])
        old = self.members.pop(entry_id, None)
        if old is None:
            return
        self._idf.remove(old.features)
        del self._times[bisect.bisect_left(self._times, (old.published_at, entry_id))]
        same = self._by_dev[old.development_id]
        same.discard(entry_id)
        if not same:
            del self._by_dev[old.development_id]
        for key in Idf.keys(old.features):
            self._postings[key].discard(entry_id)
            if not self._postings[key]:
                del self._postings[key]
        if old.canonical_url:
            self._by_url[old.canonical_url].discard(entry_id)
        self._by_hash[old.content_hash].discard(entry_id)

    def prune(self, before: datetime) -> None:
        """Forget what was published before `before`. When nothing held or waiting is
        that old (the usual case: each transaction of a poll asks), what waits stays
        waiting."""
        heap = self._by_time
        oldest = self._oldest_waiting
        if (not heap or heap[0][0] >= before) and (oldest is None or oldest >= before):
            return
        self._count_waiting()
        while heap and heap[0][0] < before:
            at, entry_id = heapq.heappop(heap)
            member = self.members.get(entry_id)
            background = self._background.get(entry_id)
            if (member is not None and member.published_at == at) or (
                background is not None and background[0] == at
            ):
                self._drop(entry_id)

    def candidates(self, url: str | None, content_hash: str, f: Features) -> list[Member]:
        """The members worth weighing for a new article: those with its URL or content,
        and every member of the developments whose reports overlap it most."""
        self._count_waiting()
        exact = set(self._by_url.get(url, ())) if url else set()
        exact |= self._by_hash.get(content_hash, set())
        limit = max(5, len(self.members) // 5)
        overlap: dict[int, float] = {}
        for key in Idf.keys(f):
            posting = self._postings.get(key)
            if not posting or len(posting) > limit:
                continue
            weight = self.idf.get(key)
            for mid in posting:
                overlap[mid] = overlap.get(mid, 0.0) + weight
        best = sorted(overlap, key=overlap.__getitem__, reverse=True)[: self.MAX_CANDIDATES]
        devs = {self.members[i].development_id for i in best}
        found = set(exact)
        for dev in devs:
            found |= self._by_dev[dev]
        return [self.members[i] for i in found]

    def crowd(self, at: datetime) -> int:
        """`cluster.crowd_of` over the members: how many developments (up to CROWD_CAP)
        have a report within CROWD of `at`. Reads outward from `at` and stops at the cap,
        so a busy period costs no more than a quiet one."""
        self._count_waiting()
        times, members = self._times, self.members
        i = bisect.bisect_left(times, (at, -1))
        devs: set[int] = set()
        for j in range(i, len(times)):
            if len(devs) >= CROWD_CAP or times[j][0] - at >= CROWD:
                break
            devs.add(members[times[j][1]].development_id)
        for j in range(i - 1, -1, -1):
            if len(devs) >= CROWD_CAP or at - times[j][0] >= CROWD:
                break
            devs.add(members[times[j][1]].development_id)
        return min(len(devs), CROWD_CAP)

    def assign(
        self,
        url: str | None,
        content_hash: str,
        published_at: datetime,
        f: Features,
        shift: Shift | None = None,
    ) -> Assignment:
        if self._vectors.stamp != self.idf.stamp:  # the word weights moved
            self._vectors = Vectors(self._idf)
        return assign(
            url,
            content_hash,
            published_at,
            f,
            self.candidates(url, content_hash, f),
            self.params,
            self.idf,
            shift,
            self.model,
            self._vectors,
            self.crowd(published_at),
        )
