"""Group articles into developments. Pure: dataclasses in, dataclasses out.

An article joins an existing development when it is the same document (same canonical URL,
same content hash) or reports the same event. Whether it reports the same event is weighed
against each recent development as a whole, not against one member: how alike the article
is to the development's reports (words, the profile's and the lexicon's language-independent
keys, headlines, shared names and numbers), what contradicts it (another dateline, other
days or weekdays, other places, "again" when no report of it says so), how far apart in
time, whether the article is a reaction or commentary, and how this development compares
with the other candidates. Some marks are limits rather than evidence (`told_apart`):
other days of a running story, other places or venues never mentioned by the other
side, a phone call against a meeting. A small learned model (`JoinModel`, a conditional
logit trained by bench/train_cluster.py on our own evaluation sets, stored in
data/join_model.toml) turns that evidence into the probability that the article belongs;
it joins the most probable development at or above `ClusterParams.join`, else opens a new
one. The evidence is also what `monitor explain` prints: each feature's part in the
decision.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from monitor.match import MatchResult


@dataclass(frozen=True)
class Features:
    """What clustering compares: stemmed words (headline counted twice), entities, places,
    and the report's own marks of time (dateline, days, weekdays)."""

    words: Counter[str]
    entities: frozenset[str]
    keywords: frozenset[str]
    places: frozenset[str]
    numbers: frozenset[str]
    language: str | None
    commentary: bool = False
    names: frozenset[str] = frozenset()  # match.name_key() of names outside the profile
    days: frozenset[str] = frozenset()  # calendar days the text names, "MM-DD"
    heads: frozenset[str] = frozenset()  # entity keys that are a concept itself (israel)
    dateline: str = ""  # the day of a wire dateline, "MM-DD"
    weekdays: frozenset[str] = frozenset()  # days of the week named ("tue")
    again: bool = False  # the headline or lead presents the event as a repeat
    head: frozenset[str] = frozenset()  # the headline's keys (e:, w:, n:, x:)
    reaction: bool = False  # the headline reports what someone said or did about an event
    question: bool = False  # the headline asks (why, what next): analysis
    day_counts: frozenset[int] = frozenset()  # days of a running story it counts ("day 214")
    venues: frozenset[str] = frozenset()  # where its headline puts the event (e:, w: keys)
    concepts: frozenset[str] = frozenset()  # the profile concepts it names

    @cached_property
    def terms(self) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
        """(the words, what translates): each key of `_vector` with its weight before
        the word weights, built once per report rather than once per pair it is in."""
        same = tuple(("w:" + w, 1 + math.log(n)) for w, n in self.words.items()) + tuple(
            ("n:" + num, 1.0) for num in self.numbers
        )
        cross = (
            tuple(("e:" + e, 1.0) for e in self.entities)
            + tuple(("k:" + k, 0.5) for k in self.keywords)
            + tuple(("n:" + num, 0.5) for num in self.numbers)
            + tuple(("x:" + x, 1.0) for x in self.names)
            # a word the lexicon knows in both languages
            + tuple(("w:" + w, 0.5) for w in self.words if w[:1] == "~")
        )
        return same, cross

    @cached_property
    def head_places(self) -> frozenset[str]:
        """The places (profile place terms) its headline names."""
        return frozenset(p for p in self.places if "e:" + p in self.head)

    @cached_property
    def head_cross(self) -> frozenset[str]:
        """The headline's keys that translate (all but words the lexicon lacks)."""
        return frozenset(k for k in self.head if not k.startswith("w:") or k.startswith("w:~"))


_COMMENTARY = re.compile(
    r"^\s*(analysis|opinion|comment|commentary|editorial|explainer|explained|q&a|column|"
    r"review|op-ed|perspective|news analysis|анализ|мнение|комментарий|колонка|разбор|"
    r"объясняем)\s*[:|—–-]",
    re.IGNORECASE,
)

# "Lavrov: ...", "Leader: CIA behind ...": a headline that opens with who spoke; not
# "Report: ..." or "СМИ: ...", which attribute the news itself to unnamed reports.
_QUOTE = re.compile(
    r"^(?!\s*(?:(?:media|press|news|unconfirmed|initial)\s+)?(?:reports?|sources?|media|сми|"
    r"источник\w*|данные|сообщения\w*)\s*:)[^:]{2,40}:\s",
    re.IGNORECASE,
)

_QUESTION = re.compile(
    r"^\s*(why|what|how|can|will|is|are|does|who|зачем|почему|что|как|чем|кто)\b", re.IGNORECASE
)

# Lexicon concepts that make a headline a reaction to an event rather than the event.
REACTIONS = frozenset(
    "w:~" + c
    for c in (
        "condemnation warning threat demand promise criticism praise congratulations "
        "condolences welcome regret concern accusation denial response call statement support"
    ).split()
)


def is_commentary(title: str) -> bool:
    """A headline labelled as analysis, opinion or explainer: it discusses an event."""
    return bool(_COMMENTARY.match(title))


def is_question(title: str) -> bool:
    """A headline that asks (why, what next, can he...): it discusses an event."""
    return bool(_QUESTION.match(title)) or title.rstrip().endswith("?")


def features(match: MatchResult, language: str | None, title: str = "") -> Features:
    """What clustering needs from a match: words outside profile terms, the terms' keys
    (so "Russia" and "Russian", or "meeting" and "met", count as one), places, numbers,
    the report's marks of time, and what kind of headline it has."""
    words: Counter[str] = Counter(match.words)
    for key, n in match.terms.items():
        words["=" + key] += n
    return Features(
        words,
        match.entities,
        match.keywords,
        match.places,
        match.numbers,
        language,
        is_commentary(title),
        match.names,
        match.days,
        match.heads,
        match.dateline,
        match.weekdays,
        match.again,
        match.head,
        bool(match.head & REACTIONS) or bool(_QUOTE.match(title)),
        is_question(title),
        match.day_counts,
        match.venues,
        match.concepts,
    )


def features_to_json(f: Features) -> dict[str, Any]:
    return {
        "w": dict(f.words),
        "e": sorted(f.entities),
        "k": sorted(f.keywords),
        "p": sorted(f.places),
        "n": sorted(f.numbers),
        "l": f.language,
        "c": f.commentary,
        "x": sorted(f.names),
        "d": sorted(f.days),
        "h": sorted(f.heads),
        "dl": f.dateline,
        "wd": sorted(f.weekdays),
        "ag": f.again,
        "hd": sorted(f.head),
        "r": f.reaction,
        "q": f.question,
        "dc": sorted(f.day_counts),
        "v": sorted(f.venues),
        "cn": sorted(f.concepts),
    }


# Joins an article's `Idf.keys` into one string (no key holds it: they are words, names,
# numbers and profile terms). A parser worker sends an off-topic article's keys packed:
# one string to pickle and unpickle rather than forty, and the storing process splits
# only those of the articles it ends up counting (ClusterIndex keeps the latest 5,000).
KEY_SEP = "\x1f"


def pack_keys(keys: Iterable[str]) -> str:
    return KEY_SEP.join(keys)


def keys_from_json(d: dict[str, Any]) -> list[str]:
    """`Idf.keys` of stored features, without building them: all that word weights need
    of the many entries that are only background."""
    return (
        [f"w:{w}" for w in d.get("w") or ()]
        + [f"e:{e}" for e in d.get("e") or ()]
        + [f"k:{k}" for k in d.get("k") or ()]
        + [f"n:{n}" for n in d.get("n") or ()]
        + [f"x:{x}" for x in d.get("x") or ()]
    )


def features_from_json(d: dict[str, Any]) -> Features:
    return Features(
        Counter(d.get("w") or {}),
        frozenset(d.get("e") or ()),
        frozenset(d.get("k") or ()),
        frozenset(d.get("p") or ()),
        frozenset(d.get("n") or ()),
        d.get("l"),
        bool(d.get("c")),
        frozenset(d.get("x") or ()),
        frozenset(d.get("d") or ()),
        frozenset(d.get("h") or ()),
        d.get("dl") or "",
        frozenset(d.get("wd") or ()),
        bool(d.get("ag")),
        frozenset(d.get("hd") or ()),
        bool(d.get("r")),
        bool(d.get("q")),
        frozenset(int(n) for n in d.get("dc") or ()),
        frozenset(d.get("v") or ()),
        frozenset(d.get("cn") or ()),
    )


@dataclass(frozen=True)
class Member:
    """A stored article already in a development, as clustering sees it."""

    entry_id: int
    development_id: int
    canonical_url: str | None
    content_hash: str
    published_at: datetime
    features: Features


@dataclass(frozen=True)
class Assignment:
    development_id: int | None  # None: a new development
    reason: str  # new | same-url | same-content | similar
    similarity: float = 0.0  # for "similar": the probability that it belongs
    matched_entry_id: int | None = None
    feedback_id: int | None = None  # the readers' feedback that moved the decision, if any


# Readers' feedback on the clusterer (feedback.Links.shift over two reports' words): what
# is added to the log-odds that a report joins a development one of whose reports it pairs
# with, and which feedback said so.
Shift = Callable[["Features", "Features"], tuple[float, int | None]]


@dataclass(frozen=True)
class ClusterParams:
    """Where and how far clustering looks.

    `window`: how far apart in publication time two reports of one development may be.
    `join`: the probability (JoinModel) at which a report joins its most probable
    development. `background`: off-topic articles kept as the background of the word
    weights (the most recent ones; document frequencies settle long before this many, and
    a cap keeps memory and the start-up load flat however many feeds are watched).
    `members`: reports of one development weighed against a new one, the most recent
    first (a big story's hundredth report adds little and costs as much as the first).
    """

    window: timedelta = timedelta(days=5)
    join: float = 0.5
    background: int = 5000
    members: int = 8
    # A development is a candidate only if the report reads at least this much like it
    # (its most alike report, all its reports, or their headlines): whatever else they
    # have in common, a report that shares almost nothing with a development does not
    # belong to it. 99% of the true joins in our sets are above it, 70% of the rest below.
    least: float = 0.12
    # ... and a development of one report in the new one's language, at least this: in our
    # sets (replayed with the true developments, both modes) no true join to one read less,
    # 0 of 203, against 74 wrong ones that did (a minister's remark on another event).
    lone: float = 0.15


def _vector(f: Features, idf: Idf | Mapping[str, float], cross: bool) -> dict[str, float]:
    """Same language: the words themselves. Across languages: what the profile and the
    lexicon translate (entity, keyword and "~" word keys), numbers and names."""
    get = idf.get
    return {k: t * get(k, 1.0) for k, t in f.terms[cross]}


def _norm(v: Mapping[str, float]) -> float:
    return math.sqrt(sum(x * x for x in v.values()))


def _cosine_normed(a: Mapping[str, float], na: float, b: Mapping[str, float], nb: float) -> float:
    if not a or not b or not na or not nb:
        return 0.0
    # the shared keys, found in C (two reports share few of their words); summed exactly,
    # as a set's order changes from process to process
    return math.fsum([a[k] * b[k] for k in a.keys() & b.keys()]) / (na * nb)


class Vectors:
    """Each report's vectors and their norms, computed once for as long as the word
    weights hold (one placement at least; a whole poll in the pipeline, whose reports are
    counted in the weights before any is placed): a report's vectors are otherwise
    rebuilt for every pair it is in, which was most of clustering's time."""

    def __init__(self, idf: Idf | Mapping[str, float]) -> None:
        self.idf = idf
        self.stamp = idf.stamp if isinstance(idf, Idf) else 0
        # id of the report -> (the report, kept so that its id is not reused; its vector;
        # the vector's norm), for words (same language) and for what translates (cross)
        self._same: dict[int, tuple[Features, dict[str, float], float]] = {}
        self._cross: dict[int, tuple[Features, dict[str, float], float]] = {}
        self._centroids: dict[tuple[int, ...], tuple[dict[str, float], float]] = {}

    def get(self, f: Features, cross: bool) -> tuple[dict[str, float], float]:
        seen = self._cross if cross else self._same
        hit = seen.get(id(f))
        if hit is None:
            v = _vector(f, self.idf, cross)
            hit = seen[id(f)] = (f, v, _norm(v))
        return hit[1], hit[2]

    def centroid(self, members: Sequence[Member]) -> tuple[dict[str, float], float]:
        """The sum of the reports' key vectors, and its norm: a development is weighed
        for each report of a poll that resembles it."""
        ids = tuple(id(m.features) for m in members)
        hit = self._centroids.get(ids)
        if hit is None:
            c: dict[str, float] = {}
            for m in members:
                for k, v in self.get(m.features, True)[0].items():
                    c[k] = c.get(k, 0.0) + v
            # the reports are kept with their vectors (`get`), so their ids hold
            hit = self._centroids[ids] = (c, _norm(c))
        return hit


def document_frequencies(pool: Sequence[Features]) -> Idf:
    """Smoothed IDF over a pool: common words and names weigh less."""
    idf = Idf()
    for f in pool:
        idf.add(f)
    return idf


def is_cross(a: Features, b: Features) -> bool:
    return bool(a.language and b.language and a.language != b.language)


def similarity(
    a: Features, b: Features, idf: Idf | Mapping[str, float], vectors: Vectors | None = None
) -> tuple[float, bool]:
    """(how alike two reports read, whether they are compared across languages): word
    cosine in one language (or half the key cosine, if higher), key cosine across two."""
    sim, cross, _ = _similarity(a, b, vectors or Vectors(idf))
    return sim, cross


def _similarity(a: Features, b: Features, vectors: Vectors) -> tuple[float, bool, float]:
    """`similarity`, with the key cosine."""
    cross = is_cross(a, b)
    keys = _cosine_normed(*vectors.get(a, True), *vectors.get(b, True))
    if cross:
        return keys, True, keys
    words = _cosine_normed(*vectors.get(a, False), *vectors.get(b, False))
    return max(words, 0.5 * keys), False, keys


def _day_number(day: str) -> int:
    month, _, dom = day.partition("-")
    return (int(month) - 1) * 31 + int(dom)


def _days(a: str, b: str) -> int:
    """Days between two "MM-DD" days, the shorter way round the year."""
    d = abs(_day_number(a) - _day_number(b))
    return min(d, 12 * 31 - d)


def days_apart(a: frozenset[str], b: frozenset[str], slack: int = 2) -> bool:
    """Both texts name calendar days and no day of one is within `slack` days of a day of
    the other (across a new year too): they tell of different days' events."""
    if not a or not b:
        return False
    year = 12 * 31
    return all(
        min(abs(x - y), year - abs(x - y)) > slack
        for x in map(_day_number, a)
        for y in map(_day_number, b)
    )


class Idf:
    """Smoothed inverse document frequency over a pool that grows as articles arrive.

    `stamp` names the pool's content (its size and which keys it counts), so that weights
    and vectors computed from it can be kept while it is unchanged: placing a report
    takes it out of the background and adds it back as a member, which changes nothing.
    """

    def __init__(self) -> None:
        self.df: Counter[str] = Counter()
        self.n = 0
        self.stamp = 0
        # the weights asked for since the pool last changed: one report is weighed
        # against many that share its words; and the last pool's, in case it comes back
        self._memo: dict[str, float] = {}
        self._saved: tuple[int, dict[str, float]] | None = None

    @staticmethod
    def keys(f: Features) -> set[str]:
        return (
            {"w:" + w for w in f.words}
            | {"e:" + e for e in f.entities}
            | {"k:" + k for k in f.keywords}
            | {"n:" + n for n in f.numbers}
            | {"x:" + x for x in f.names}
        )

    def add(self, f: Features) -> None:
        self.add_keys(self.keys(f))

    def remove(self, f: Features) -> None:
        self.remove_keys(self.keys(f))

    def add_keys(self, keys: Iterable[str]) -> None:
        keys = tuple(keys)
        self.df.update(keys)
        self.n += 1
        self._moved(1 + sum(map(hash, keys)))

    def remove_keys(self, keys: Iterable[str]) -> None:
        keys = tuple(keys)
        df = self.df
        for key in keys:
            left = df[key] - 1
            if left > 0:
                df[key] = left
            else:  # a long-running service must not keep every word it ever saw
                del df[key]
        self.n -= 1
        self._moved(-1 - sum(map(hash, keys)))

    def _moved(self, delta: int) -> None:
        """The pool changed by `delta` (the hashes of what came in, less what went out)."""
        old, self.stamp = self.stamp, (self.stamp + delta) & _STAMP_MASK
        if self._memo:
            self._saved = (old, self._memo)
        if self._saved is not None and self._saved[0] == self.stamp:
            self._memo, self._saved = self._saved[1], None
        else:
            self._memo = {}

    def get(self, key: str, default: float = 1.0) -> float:
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = math.log((self.n + 2) / (self.df.get(key, 0) + 1)) + 1.0
        return value


_STAMP_MASK = (1 << 64) - 1


# ------------------------------------------------------------------ the evidence --


class Pair(NamedTuple):
    """How a new report compares with one report of a development (a tuple: one is made
    for every report of every candidate development)."""

    similarity: float
    headline: float  # cosine of the two headlines' keys
    specifics: float  # weight of the specific things both name: entities, names, numbers
    day_conflict: bool
    dateline_conflict: bool
    dateline_match: bool
    weekday_conflict: bool
    weekday_match: bool
    place_conflict: bool
    hours: float
    keys: float = 0.0  # cosine of what translates (the centroid of a lone report)


def _headline(a: Features, b: Features, idf: Idf | Mapping[str, float], cross: bool) -> float:
    """Cosine of the headlines' key sets; across languages only keys that translate."""
    ka = a.head_cross if cross else a.head
    kb = b.head_cross if cross else b.head
    if not ka or not kb:
        return 0.0
    get = idf.get
    shared = ka & kb
    if not shared:
        return 0.0
    # summed exactly: a set's order changes from process to process
    return math.fsum([get(k, 1.0) ** 2 for k in shared]) / math.sqrt(
        math.fsum([get(k, 1.0) ** 2 for k in ka]) * math.fsum([get(k, 1.0) ** 2 for k in kb])
    )


def pair(
    a: Features,
    b: Features,
    a_at: datetime,
    b_at: datetime,
    idf: Idf | Mapping[str, float],
    vectors: Vectors | None = None,
) -> Pair:
    sim, cross, keys = _similarity(a, b, vectors or Vectors(idf))
    heads = a.heads | b.heads
    specifics = (
        sum(idf.get("e:" + e, 1.0) for e in (a.entities & b.entities) - heads)
        + sum(idf.get("x:" + x, 1.0) for x in a.names & b.names)
        + sum(idf.get("n:" + n, 1.0) for n in a.numbers & b.numbers)
    )
    dl = bool(a.dateline and b.dateline)
    dl_apart = dl and days_apart(frozenset((a.dateline,)), frozenset((b.dateline,)), 1)
    return Pair(
        sim,
        _headline(a, b, idf, cross),
        specifics,
        days_apart(a.days, b.days),
        dl_apart,
        dl and not dl_apart,
        bool(a.weekdays and b.weekdays and not a.weekdays & b.weekdays),
        bool(a.weekdays & b.weekdays),
        bool(a.places and b.places and not a.places & b.places),
        abs((a_at - b_at).total_seconds()) / 3600,
        keys,
    )


# The evidence a development gives about a new report, in the order the model lists it.
EVIDENCE = (
    "sim_max",  # how alike the most alike report reads
    "sim_mean",  # how alike its reports read on average
    "centroid",  # how alike all its reports together read (key cosine: any language)
    "headline",  # how alike the headlines are, on average
    "specifics",  # the most specific things (names, numbers, entities) shared with one report
    "dateline_conflict",  # a report of it has a wire dateline another day
    "dateline_match",  # a report of it has the same dateline
    "day_conflict",  # a report of it names calendar days, none near the new one's
    "weekday_conflict",  # its reports name other days of the week
    "weekday_match",  # a report of it names the same day of the week
    "place_conflict",  # the share of its reports that name other places
    "again",  # the new report says "again" (a repeat); none of its reports does
    "new_numbers",  # numbers the new report gives that none of its reports does
    "gap",  # hours to the nearest of its reports (log of a quarter-days)
    "same_day",  # a report of it was published within 18 hours
    "within_3h",  # ... within 3 hours
    "within_2d",  # ... within 42 hours
    "size",  # how many reports it has (log)
    "crowd",  # how many developments had a report within 18 hours of the new one (log)
    "other_language",  # none of its reports is in the new one's language
    "commentary",  # the new report is labelled analysis or opinion, or asks a question
    "reaction",  # the new report is a reaction (condemns, welcomes, "X: ...")
    "closest",  # it is the most alike of the candidate developments
    "margin",  # how much more alike it is than the next candidate
    "closest_reaction",  # it is the most alike, and the new report reacts or comments
)


@dataclass(frozen=True)
class Weighed:
    """One candidate development weighed for a new report."""

    development_id: int
    evidence: dict[str, float]
    probability: float
    closest: Member  # its report most like the new one
    closest_similarity: float
    feedback_id: int | None = None
    shift: float = 0.0  # what readers' feedback added to the log-odds

    def reasons(self, model: JoinModel, top: int = 4) -> list[tuple[str, float]]:
        """The features that moved the decision most, with their part in the log-odds."""
        parts = model.parts(self.evidence)
        return sorted(parts.items(), key=lambda kv: -abs(kv[1]))[:top]


def _evidence(
    f: Features,
    at: datetime,
    members: Sequence[Member],
    idf: Idf | Mapping[str, float],
    vectors: Vectors | None = None,
) -> tuple[dict[str, float], Member, float]:
    vectors = vectors or Vectors(idf)
    pairs = [pair(f, m.features, at, m.published_at, idf, vectors) for m in members]
    sims = [p.similarity for p in pairs]
    best = max(range(len(pairs)), key=sims.__getitem__)
    numbers: set[str] = set()
    for m in members:
        numbers |= m.features.numbers
    if len(members) == 1:  # the centroid is the report itself
        centroid_cosine = pairs[0].keys
    else:
        centroid_cosine = _cosine_normed(*vectors.get(f, True), *vectors.centroid(members))
    hours = min(p.hours for p in pairs)
    dated = [m.features.dateline for m in members if m.features.dateline]
    fresh_numbers = sum(idf.get("n:" + n, 1.0) for n in f.numbers - numbers)
    any_weekday_match = any(p.weekday_match for p in pairs)
    return (
        {
            "sim_max": sims[best],
            "sim_mean": sum(sims) / len(sims),
            "centroid": centroid_cosine,
            "headline": sum(p.headline for p in pairs) / len(pairs),
            "specifics": max(math.log1p(p.specifics) for p in pairs),
            "dateline_conflict": float(any(p.dateline_conflict for p in pairs)),
            "dateline_match": float(any(p.dateline_match for p in pairs)),
            "day_conflict": float(any(p.day_conflict for p in pairs)),
            "weekday_conflict": float(
                any(p.weekday_conflict for p in pairs) and not any_weekday_match
            ),
            "weekday_match": float(any_weekday_match),
            "place_conflict": sum(p.place_conflict for p in pairs) / len(pairs),
            "again": float(f.again and not any(m.features.again for m in members)),
            "new_numbers": math.log1p(fresh_numbers),
            # flat within hours (the minutes between reports of one poll say nothing),
            # steeper over days
            "gap": math.log1p(hours / 6),
            "same_day": float(hours < 18),
            "within_3h": float(hours < 3),
            "within_2d": float(hours < 42),
            "size": math.log(len(members)),
            "other_language": float(all(m.features.language != f.language for m in members)),
            "commentary": float(f.commentary or f.question),
            "reaction": float(f.reaction),
            # days between the report's dateline and the nearest dateline of the
            # development's reports (-1: not both dated); not a feature, a limit (alike)
            "dateline_days": float(min(_days(f.dateline, d) for d in dated))
            if f.dateline and dated
            else -1.0,
        },
        members[best],
        sims[best],
    )


def _other_places(f: Features, members: Sequence[Member]) -> bool:
    """The new report's headline names a place none of the reports mention, and theirs
    name one it does not mention. One side naming a capital for its government ("Damascus
    said") while the other names the town struck is no conflict: the town is in both."""
    if not f.head_places:
        return False
    theirs = frozenset().union(*(m.features.head_places for m in members)) - f.entities
    if not theirs:
        return False
    return bool(f.head_places - frozenset().union(*(m.features.entities for m in members)))


def told_apart(f: Features, members: Sequence[Member]) -> bool:
    """Marks alone say a report is not of a development, however alike they read: they
    count days of a running story more than a day apart ("what we know on day 214" /
    "day 216": the same words on two days of a war are two days' news), or their
    headlines name different places that the other side never mentions (a strike on
    Aleppo's airport is not the one on Damascus's; in our sets no report of one event
    did so), or the new headline puts its event in another venue than theirs without
    mentioning it (talks in the Kremlin are not the ones in Sochi), or one side reports a
    phone call and the other a meeting in person. Checked before the evidence is
    weighed: it costs far less."""
    return (
        _count_gap(f, members) > 1
        or _other_places(f, members)
        or _other_venues(f, members)
        or _call_or_meeting(f, members)
    )


# Headline keys of a phone call ("speak by phone", "разговор": the lexicon's word, not
# the profile's "called", which also reads "called for") and of meeting in person.
CALL = frozenset({"w:~phone"})
IN_PERSON = frozenset({"e:meeting", "e:visit", "w:~trip", "w:~visit", "w:~arrival"})


def _call_or_meeting(f: Features, members: Sequence[Member]) -> bool:
    """One side's headlines report a phone call, the other's a meeting in person (a
    meeting, a visit, or talks in a named place), and neither the other: the same two
    leaders talking twice, not one event."""

    def in_person(g: Features) -> bool:
        return bool(g.head & IN_PERSON) or (
            "e:talks" in g.head and any(not v.startswith("c:") for v in g.venues)
        )

    call, person = bool(f.head & CALL), in_person(f)
    if call == person:
        return False
    theirs_call = any(m.features.head & CALL for m in members)
    theirs_person = any(in_person(m.features) for m in members)
    return (theirs_person and not theirs_call) if call else (theirs_call and not theirs_person)


def _mentions(f: Features, key: str) -> bool:
    name = key[2:]
    return name in f.words if key[0] == "w" else name in f.entities or name in f.concepts


def _countrywide(venues: frozenset[str]) -> bool:
    return any(v.startswith("c:") for v in venues)


def _other_venues(f: Features, members: Sequence[Member]) -> bool:
    """The new report's headline puts its event somewhere else ("meets Putin in the
    Kremlin") than the development's headlines do ("talks in Sochi"), and it never
    mentions where theirs took place. Only reports in the new one's language are
    compared: a venue's spelling is not a key across languages. A side that places its
    event in a whole country (a visit "to Israel") contradicts no town."""
    if not f.venues or _countrywide(f.venues):
        return False
    same = [m for m in members if m.features.language == f.language]
    theirs = frozenset().union(*(m.features.venues for m in same))
    if not theirs or theirs & f.venues or _countrywide(theirs):
        return False
    return any(not _mentions(f, k) for k in theirs)


def _count_gap(f: Features, members: Sequence[Member]) -> float:
    counted = [n for m in members for n in m.features.day_counts]
    if not f.day_counts or not counted:
        return -1.0
    return float(min(abs(a - b) for a in f.day_counts for b in counted))


def _relative(evidence: list[dict[str, float]], f: Features) -> None:
    """Each candidate measured against the others: is it the closest, and by how much."""
    raw = [e["centroid"] + e["sim_max"] + e["headline"] for e in evidence]
    top = max(raw, default=0.0)
    for i, e in enumerate(evidence):
        second = max((r for j, r in enumerate(raw) if j != i), default=raw[i])
        closest = float(raw[i] >= top)
        e["closest"] = closest
        e["margin"] = raw[i] - second  # 0 when there is nothing to compare with
        e["closest_reaction"] = closest * float(f.reaction or f.commentary or f.question)


@dataclass(frozen=True)
class JoinModel:
    """Weights over EVIDENCE: the log-odds that a report belongs to a development.

    `means` are the evidence's averages over the candidates the model was trained on: a
    decision is explained as each feature's part against a typical candidate,
    w * (value - mean), so that "published within a day" reads as what it adds to a
    typical candidate's odds, not as a large number the bias cancels."""

    weights: Mapping[str, float]
    bias: float
    source: str = "built-in"
    means: Mapping[str, float] = field(default_factory=dict)

    def parts(self, evidence: Mapping[str, float]) -> dict[str, float]:
        """Each feature's part in the log-odds, against a typical candidate."""
        return {
            k: w * (evidence.get(k, 0.0) - self.means.get(k, 0.0)) for k, w in self.weights.items()
        }

    @property
    def typical(self) -> float:
        """The log-odds of a typical candidate: what `parts` add to."""
        return self.bias + sum(w * self.means.get(k, 0.0) for k, w in self.weights.items())

    def log_odds(self, evidence: Mapping[str, float]) -> float:
        return self.bias + sum(w * evidence.get(k, 0.0) for k, w in self.weights.items())


def parse_join_model(data: Mapping[str, Any], source: str = "built-in") -> JoinModel:
    weights = {str(k): float(v) for k, v in (data.get("weights") or {}).items()}
    means = {str(k): float(v) for k, v in (data.get("means") or {}).items()}
    unknown = (set(weights) | set(means)) - set(EVIDENCE)
    if unknown:
        raise ValueError(f"join model {source}: unknown features {sorted(unknown)}")
    return JoinModel(weights, float(data.get("bias", 0.0)), source, means)


@lru_cache(maxsize=1)
def builtin_join_model() -> JoinModel:
    text = resources.files("monitor").joinpath("data/join_model.toml").read_text("utf-8")
    return parse_join_model(tomllib.loads(text))


def load_join_model(path: Path | None = None) -> JoinModel:
    """The join model at `path` (as bench/train_cluster.py writes it), else the built-in."""
    if path is None:
        return builtin_join_model()
    return parse_join_model(tomllib.loads(path.read_text("utf-8")), str(path))


def _sigmoid(z: float) -> float:
    if z < -30:
        return 0.0
    return 1.0 / (1.0 + math.exp(-z))


def alike(evidence: Mapping[str, float], params: ClusterParams) -> bool:
    """Whether a development can be a candidate for a report: it reads at least
    `params.least` alike, and either shares something specific (a name, a number, an
    entity beyond the subject's head actors such as Israel or Syria) or reads twice as
    alike (two events of one day that share only their head actors are two events); and
    the report's dateline, if both have datelines, is within the window of one of its
    reports' (a wire report's dateline is its own date: weeks apart, however alike the
    words of a recurring event's reports, they tell two events). `told_apart` is the
    other limit, on marks alone. A development of one report in the new one's language
    must read at least `params.lone` alike: one report shares too little to outweigh."""
    lone = evidence["size"] == 0 and not evidence["other_language"]
    if lone and evidence["sim_max"] < params.lone:
        return False
    content = max(evidence["sim_max"], evidence["centroid"], evidence["headline"])
    if content < params.least or (evidence["specifics"] <= 0 and content < 2 * params.least):
        return False
    return evidence["dateline_days"] <= params.window.days


def weigh(
    f: Features,
    at: datetime,
    candidates: Mapping[int, Sequence[Member]],
    idf: Idf | Mapping[str, float],
    model: JoinModel | None = None,
    shift: Shift | None = None,
    params: ClusterParams = ClusterParams(),
    vectors: Vectors | None = None,
    crowd: int = 0,
) -> list[Weighed]:
    """Each candidate development (its recent members, most recent first) that can be
    one for a new report `f` published at `at` (`alike`), weighed for it: its evidence
    and the probability that the report belongs. `vectors`: reports' vectors under `idf`
    kept from earlier placements, if the word weights have not changed since. `crowd`:
    how many developments have a report within CROWD of `at` (`crowd_of`): when many
    events on the topics break at once, sharing the topics' words says less."""
    model = model or builtin_join_model()
    vectors = vectors or Vectors(idf)
    busy = math.log1p(crowd)
    found = []
    for dev, members in candidates.items():
        moved, taught = 0.0, None
        if shift is not None:  # a split outweighs a merge
            for m in members:
                s, fb = shift(f, m.features)
                if fb is not None and (taught is None or s < moved):
                    moved, taught = s, fb
        if moved < 0:  # readers said reports like these are two events
            continue
        if moved == 0 and told_apart(f, members):
            continue
        ev = _evidence(f, at, members, idf, vectors)
        ev[0]["crowd"] = busy
        if moved > 0 or alike(ev[0], params):  # ... or one, however unlike they read
            found.append((dev, ev, moved, taught))
    _relative([e for _, (e, _, _), _, _ in found], f)
    return [
        Weighed(
            dev, evidence, _taught(model.log_odds(evidence), moved), closest, sim, taught, moved
        )
        for dev, (evidence, closest, sim), moved, taught in found
    ]


# How near in time another development's report must be to count in the crowd, and the
# most that count (our sets' busiest hours have about 40: beyond, the model would guess).
CROWD = timedelta(hours=18)
CROWD_CAP = 40


def crowd_of(at: datetime, reports: Iterable[tuple[datetime, int | None]]) -> int:
    """How many developments (up to CROWD_CAP) have a report (publication time,
    development) within CROWD of `at`."""
    devs = {dev for t, dev in reports if dev is not None and abs(t - at) < CROWD}
    return min(len(devs), CROWD_CAP)


def _taught(z: float, moved: float) -> float:
    """The probability, with readers' merges: a report like two that a reader merged
    joins (at least 0.99), unless a likelier development takes it."""
    p = _sigmoid(z + moved)
    return max(p, 0.99) if moved > 0 else p


def assign(
    article_url: str | None,
    article_hash: str,
    published_at: datetime,
    f: Features,
    members: Sequence[Member],
    params: ClusterParams = ClusterParams(),
    idf: Idf | Mapping[str, float] | None = None,
    shift: Shift | None = None,
    model: JoinModel | None = None,
    vectors: Vectors | None = None,
    crowd: int | None = None,
) -> Assignment:
    """Decide which development an article belongs to, given recent members (any order);
    `shift`, readers' merges and splits; `vectors` and `crowd`, as `weigh` takes them
    (`crowd` by default counted among `members`)."""
    for m in members:
        if article_url and m.canonical_url == article_url:
            return Assignment(m.development_id, "same-url", 1.0, m.entry_id)
    for m in members:
        if m.content_hash == article_hash:
            return Assignment(m.development_id, "same-content", 1.0, m.entry_id)
    if idf is None:
        idf = document_frequencies([m.features for m in members] + [f])
    candidates: dict[int, list[Member]] = {}
    for m in sorted(members, key=lambda m: m.published_at, reverse=True):
        if abs(m.published_at - published_at) <= params.window:
            near = candidates.setdefault(m.development_id, [])
            if len(near) < params.members:
                near.append(m)
    best: Weighed | None = None
    if crowd is None:
        crowd = crowd_of(published_at, [(m.published_at, m.development_id) for m in members])
    for w in weigh(f, published_at, candidates, idf, model, shift, params, vectors, crowd):
        if w.probability >= params.join and (best is None or w.probability > best.probability):
            best = w
    if best is None:
        return Assignment(None, "new")
    return Assignment(
        best.development_id,
        "similar",
        round(best.probability, 3),
        best.closest.entry_id,
        best.feedback_id,
    )


@dataclass(frozen=True)
class Comparison:
    """What two reports share, for `monitor explain` and the desk: why one is with the
    other's development or not."""

    similarity: float
    cross: bool
    entities: tuple[str, ...]
    names: tuple[str, ...]
    numbers: tuple[str, ...]
    words: tuple[str, ...]
    place_conflict: bool
    conflicts: tuple[str, ...] = field(default=())

    def shared(self) -> str:
        """What the two share, in words ("entities: israel, syria; words: port")."""
        parts = [
            f"{kind}: {', '.join(found)}"
            for kind, found in (
                ("entities", self.entities),
                ("names", self.names),
                ("numbers", self.numbers),
                ("words", self.words),
            )
            if found
        ]
        return "; ".join(parts) or "nothing"


def compare(a: Features, b: Features, idf: Idf | Mapping[str, float]) -> Comparison:
    sim, cross = similarity(a, b, idf)
    shared = sorted(set(a.words) & set(b.words), key=lambda w: -idf.get("w:" + w, 1.0))
    conflicts = []
    if a.dateline and b.dateline and a.dateline != b.dateline:
        conflicts.append(f"datelines {a.dateline} / {b.dateline}")
    if days_apart(a.days, b.days):
        conflicts.append("days named weeks apart")
    if a.weekdays and b.weekdays and not a.weekdays & b.weekdays:
        conflicts.append("other weekdays")
    if a.places and b.places and not a.places & b.places:
        conflicts.append("different places")
    other = [Member(0, 0, None, "", datetime.min, b)]  # b as a development, for the limits
    if _count_gap(a, other) > 1:
        days = "/".join(str(min(f.day_counts)) for f in (a, b))
        conflicts.append(f"other days of the story (day {days})")
    if _other_venues(a, other):
        where = "/".join(",".join(sorted(v[2:] for v in f.venues)) for f in (a, b))
        conflicts.append(f"other venues ({where})")
    if _call_or_meeting(a, other):
        conflicts.append("a phone call and a meeting")
    return Comparison(
        round(sim, 3),
        cross,
        tuple(sorted(a.entities & b.entities)),
        tuple(sorted(a.names & b.names)),
        tuple(sorted(a.numbers & b.numbers)),
        tuple(w.lstrip("~") for w in shared if not w.startswith("="))[:8],
        bool(a.places and b.places and not a.places & b.places),
        tuple(conflicts),
    )


EVIDENCE_WORDS = {
    "sim_max": "the most alike report",
    "sim_mean": "its reports on average",
    "centroid": "all its reports together",
    "headline": "headlines",
    "specifics": "shared names and numbers",
    "dateline_conflict": "another dateline",
    "dateline_match": "the same dateline",
    "day_conflict": "days named weeks apart",
    "weekday_conflict": "other weekdays",
    "weekday_match": "the same weekday",
    "place_conflict": "other places",
    "again": "says 'again'",
    "new_numbers": "numbers it lacks",
    "gap": "hours apart",
    "same_day": "within a day",
    "within_3h": "within 3 hours",
    "within_2d": "within two days",
    "size": "its size",
    "other_language": "another language",
    "commentary": "commentary",
    "reaction": "a reaction",
    "closest": "the closest candidate",
    "margin": "closer than the next",
    "closest_reaction": "reacts to the closest",
}


def describe(reasons: Sequence[tuple[str, float]]) -> str:
    """Reasons as words: "headlines +1.2, another dateline -3.0" (parts of the log-odds
    against a typical candidate)."""
    return ", ".join(f"{EVIDENCE_WORDS.get(k, k)} {v:+.1f}" for k, v in reasons)
