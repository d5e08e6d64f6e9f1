"""Group articles into developments. Pure: dataclasses in, dataclasses out.

An article joins an existing development when it is the same document (same canonical URL,
same content hash) or reports the same event: TF-IDF cosine over stemmed words and the
profile's language-independent entity keys, against every recent member of a development.
Reports in different languages share only entity keys and numbers, so they are compared on
those. Two reports that each name concrete places, none in common (a strike on one airport
vs. on another), are held apart unless the rest of the text agrees strongly.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitor.match import MatchResult

# Reports in two languages must share at least this many named things to be one event.
MIN_SHARED = 3


@dataclass(frozen=True)
class Features:
    """What clustering compares: stemmed words (headline counted twice), entities, places."""

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


_COMMENTARY = re.compile(
    r"^\s*(analysis|opinion|comment|commentary|editorial|explainer|explained|q&a|column|"
    r"review|op-ed|perspective|анализ|мнение|комментарий|колонка|разбор|объясняем)\s*[:|—–-]",
    re.IGNORECASE,
)


def is_commentary(title: str) -> bool:
    """A headline labelled as analysis, opinion or explainer: it discusses an event."""
    return bool(_COMMENTARY.match(title))


def features(match: MatchResult, language: str | None, title: str = "") -> Features:
    """What clustering needs from a match: words outside profile terms, the terms' keys
    (so "Russia" and "Russian", or "meeting" and "met", count as one), places, numbers."""
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
    }


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
    similarity: float = 0.0
    matched_entry_id: int | None = None
    feedback_id: int | None = None  # the readers' feedback that moved the bar, if any


# Readers' feedback on the clusterer (feedback.Links.bar_factor over two reports' words):
# what a pair's joining bar is multiplied by, and which feedback said so.
BarFactor = Callable[["Features", "Features"], tuple[float, int | None]]


@dataclass(frozen=True)
class ClusterParams:
    """Similarity an article needs to join a development.

    Commentary (analysis, opinion, explainers) follows events rather than making them: it
    joins at a lower bar and never opens an alert by itself. A development first seen in
    the same poll (within one polling interval) is also joined at a lower bar: outlets
    report a new event within minutes of each other, while a distinct event with the same
    actors rarely breaks in the same interval.
    """

    window: timedelta = timedelta(days=3)
    same_language: float = 0.30
    cross_language: float = 0.40
    commentary_factor: float = 0.6
    fresh_factor: float = 0.45
    place_conflict_factor: float = 0.3
    # Reports that name calendar days, none near each other's (see days_apart).
    date_conflict_factor: float = 0.3
    # Off-topic articles kept as the background of the word weights: the most recent ones.
    # Document frequencies settle long before this many, and a cap keeps memory and the
    # start-up load flat however many feeds are watched.
    background: int = 5000

    def threshold(self, cross: bool, commentary: bool = False, fresh: bool = False) -> float:
        bar = self.cross_language if cross else self.same_language
        if commentary:
            bar *= self.commentary_factor
        if fresh:
            bar *= self.fresh_factor
        return bar


def _vector(f: Features, idf: Idf | dict[str, float], cross: bool) -> dict[str, float]:
    """Same language: the words themselves. Across languages: what the profile can
    translate (entity and keyword keys) and numbers."""
    vec: dict[str, float] = {}
    if not cross:
        for w, n in f.words.items():
            vec["w:" + w] = (1 + math.log(n)) * idf.get("w:" + w, 1.0)
        for num in f.numbers:
            vec["n:" + num] = idf.get("n:" + num, 1.0)
        return vec
    for e in f.entities:
        vec["e:" + e] = idf.get("e:" + e, 1.0)
    for k in f.keywords:
        vec["k:" + k] = 0.5 * idf.get("k:" + k, 1.0)
    for num in f.numbers:
        vec["n:" + num] = 0.5 * idf.get("n:" + num, 1.0)
    for x in f.names:
        vec["x:" + x] = idf.get("x:" + x, 1.0)
    return vec


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if not a or not b:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    dot = sum(v * b.get(k, 0.0) for k, v in a.items())
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def document_frequencies(pool: Sequence[Features]) -> Idf:
    """Smoothed IDF over a pool: common words and names weigh less."""
    idf = Idf()
    for f in pool:
        idf.add(f)
    return idf


def similarity(
    a: Features, b: Features, idf: Idf | dict[str, float], params: ClusterParams = ClusterParams()
) -> tuple[float, bool]:
    """(similarity, whether the pair is compared across languages)."""
    cross = bool(a.language and b.language and a.language != b.language)
    if (
        cross
        and len(a.entities & b.entities) + len(a.numbers & b.numbers) + len(a.names & b.names)
        < MIN_SHARED
    ):
        return 0.0, cross
    sim = _cosine(_vector(a, idf, cross), _vector(b, idf, cross))
    if a.places and b.places and not (a.places & b.places):
        sim *= params.place_conflict_factor
    if days_apart(a.days, b.days):
        sim *= params.date_conflict_factor
    return sim, cross


def shares_specifics(a: Features, b: Features) -> bool:
    """Whether two reports share more than the subject's head actors (Israel, Syria): a
    word, a name, a number, a place or a specific entity. Two events of one poll that share
    only those are two events, however low the same-poll bar."""
    heads = a.heads | b.heads
    if (a.entities & b.entities) - heads or a.names & b.names or a.numbers & b.numbers:
        return True
    if a.language != b.language:
        return bool(a.keywords & b.keywords)
    return any(w in b.words and w[1:] not in heads for w in a.words if w[:1] != "=") or any(
        w in b.words for w in a.words if w[:1] == "=" and w[1:] not in heads
    )


def _day_number(day: str) -> int:
    month, _, dom = day.partition("-")
    return (int(month) - 1) * 31 + int(dom)


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
    """Smoothed inverse document frequency over a pool that grows as articles arrive."""

    def __init__(self) -> None:
        self.df: Counter[str] = Counter()
        self.n = 0

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
        self.df.update(keys)
        self.n += 1

    def remove_keys(self, keys: Iterable[str]) -> None:
        df = self.df
        for key in keys:
            left = df[key] - 1
            if left > 0:
                df[key] = left
            else:  # a long-running service must not keep every word it ever saw
                del df[key]
        self.n -= 1

    def get(self, key: str, default: float = 1.0) -> float:
        return math.log((self.n + 2) / (self.df.get(key, 0) + 1)) + 1.0


def assign(
    article_url: str | None,
    article_hash: str,
    published_at: datetime,
    f: Features,
    members: Sequence[Member],
    params: ClusterParams = ClusterParams(),
    idf: Idf | dict[str, float] | None = None,
    fresh: frozenset[int] = frozenset(),
    bar_factor: BarFactor | None = None,
) -> Assignment:
    """Decide which development an article belongs to, given recent members; `fresh` are
    the developments first seen in the current poll; `bar_factor`, readers' merges and
    splits."""
    for m in members:
        if article_url and m.canonical_url == article_url:
            return Assignment(m.development_id, "same-url", 1.0, m.entry_id)
    for m in members:
        if m.content_hash == article_hash:
            return Assignment(m.development_id, "same-content", 1.0, m.entry_id)
    if idf is None:
        idf = document_frequencies([m.features for m in members] + [f])
    best: Assignment = Assignment(None, "new")
    best_margin = 0.0
    for m in members:
        gap = abs(m.published_at - published_at)
        if gap > params.window:
            continue
        sim, cross = similarity(f, m.features, idf, params)
        threshold = params.threshold(
            cross, f.commentary, m.development_id in fresh and shares_specifics(f, m.features)
        )
        taught = None
        if bar_factor is not None:
            factor, taught = bar_factor(f, m.features)
            threshold *= factor
        if sim >= threshold and sim - threshold >= best_margin:
            best_margin = sim - threshold
            best = Assignment(m.development_id, "similar", round(sim, 3), m.entry_id, taught)
    return best


@dataclass(frozen=True)
class Comparison:
    """What two reports share, for `monitor explain`: why one joined the other's
    development or was held apart."""

    similarity: float
    cross: bool
    bar: float
    entities: tuple[str, ...]
    names: tuple[str, ...]
    numbers: tuple[str, ...]
    words: tuple[str, ...]
    place_conflict: bool

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


def compare(
    a: Features, b: Features, idf: Idf | dict[str, float], params: ClusterParams = ClusterParams()
) -> Comparison:
    sim, cross = similarity(a, b, idf, params)
    shared = sorted(set(a.words) & set(b.words), key=lambda w: -idf.get("w:" + w, 1.0))
    return Comparison(
        round(sim, 3),
        cross,
        round(params.threshold(cross, a.commentary), 3),
        tuple(sorted(a.entities & b.entities)),
        tuple(sorted(a.names & b.names)),
        tuple(sorted(a.numbers & b.numbers)),
        tuple(w for w in shared if not w.startswith("="))[:8],
        bool(a.places and b.places and not a.places & b.places),
    )
