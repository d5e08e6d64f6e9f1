"""What readers' feedback teaches the matcher and the clusterer. Pure: lessons in,
adjusted matches and join odds out.

A development marked "not relevant" becomes a lesson: the words of its reports as one
bag (stems, and the profile's term keys, which are the same in every language). A new
report whose own bag is near a lesson's (cosine at or above NEAR) has every topic score
lowered in proportion, so it usually falls below the threshold: the one development is
not the point, reports like it are. The lowering is written into the topic's evidence,
where the development page, the API and `monitor explain` show it.

"Same as" (two developments merged) and "not part of this" (one report split off) teach
the clusterer: each becomes a link between two bags, the two sides of the feedback. A new
report near one side (cosine at or above NEAR), weighed for a development with a report
near the other, has its log-odds of joining raised (MERGED_SHIFT: readers said such
reports tell one event), or is not joined to it at all (SPLIT_SHIFT: they said they do
not), and the placement says which feedback did.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from monitor.match import MatchResult

# Why a reader says a development is not relevant: the one list the forms, the API and
# the store check against.
Reason = Literal["off-topic", "wrong-person", "roundup", "other"]
REASONS: tuple[str, ...] = get_args(Reason)
Kind = Literal["not-relevant", "same-as", "not-part", "should-alert"]
# How alike a report must be to a lesson for it to count: reports of one event share
# most of their words (cosine 0.6-0.9); two events of one kind, some (0.3-0.5).
NEAR = 0.45
# Words kept of a lesson's bag: enough to describe an event, small to store and compare.
BAG_SIZE = 200
# What a pair like a merged one adds to the clusterer's log-odds (odds 400 times
# higher; such a pair is weighed even when it reads too unlike to be a candidate); a pair
# like a split one is never joined (any negative shift holds it apart).
MERGED_SHIFT = 6.0
SPLIT_SHIFT = -1.0


@dataclass(frozen=True)
class Lesson:
    feedback_id: int
    development_id: int | None
    reason: str
    bag: Mapping[str, float]  # unit length
    # "should-alert": the topic the report should have been on (and the report); None
    # for "not relevant".
    topic: str | None = None
    entry_id: int | None = None


def fingerprint(word_bags: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The reports' words as one unit vector (the BAG_SIZE heaviest)."""
    total: dict[str, float] = {}
    for bag in word_bags:
        for word, n in bag.items():
            total[word] = total.get(word, 0.0) + n
    kept = dict(sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))[:BAG_SIZE])
    norm = math.sqrt(sum(v * v for v in kept.values())) or 1.0
    return {w: round(v / norm, 5) for w, v in kept.items()}


def similarity(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Cosine of two unit bags."""
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(w, 0.0) for w, v in a.items())


@dataclass(frozen=True)
class Lessons:
    """Every active lesson; empty when no one has given feedback."""

    lessons: tuple[Lesson, ...] = ()

    def nearest(self, words: Mapping[str, float]) -> tuple[Lesson, float] | None:
        """The lesson nearest a report's words, if at or above NEAR."""
        if not self.lessons:
            return None
        bag = fingerprint([words])
        best = max(((x, similarity(bag, x.bag)) for x in self.lessons), key=lambda p: p[1])
        return best if best[1] >= NEAR else None

    def apply(self, result: MatchResult, words: Mapping[str, float]) -> MatchResult:
        """`result` as the nearest lesson has it: scores lowered if the report is like a
        development readers marked not relevant (each score times 1 - similarity), the
        lesson's topic raised to the threshold if it is like a report they said should
        have alerted; else as it is. Only reports some topic rule held for are judged."""
        found = self.nearest(words) if result.scores else None
        if found is None:
            return result
        lesson, near = found
        if lesson.topic is not None:
            return _lifted(result, lesson, near)
        note = (
            f"feedback #{lesson.feedback_id}: like development #{lesson.development_id}, "
            f"marked not relevant ({lesson.reason}), similarity {near:.2f}"
        )
        scores = {
            topic: replace(
                ts, score=round(ts.score * (1 - near), 3), evidence=[note, *ts.evidence][:4]
            )
            for topic, ts in result.scores.items()
        }
        return replace(result, scores=scores)


def _lifted(result: MatchResult, lesson: Lesson, near: float) -> MatchResult:
    from monitor.match import TopicScore

    assert lesson.topic is not None
    note = (
        f"feedback #{lesson.feedback_id}: like entry #{lesson.entry_id}, which a reader "
        f"said should have alerted ({lesson.topic}), similarity {near:.2f}"
    )
    was = result.scores.get(lesson.topic)
    score = max(was.score if was else 0.0, result.threshold)
    evidence = [note, *(was.evidence if was else [])][:4]
    scores = {**result.scores, lesson.topic: TopicScore(lesson.topic, score, evidence)}
    return replace(result, scores=scores)


@dataclass(frozen=True)
class Link:
    """Two sides readers judged: one event ("same-as") or two ("not-part")."""

    feedback_id: int
    together: bool
    a: Mapping[str, float]  # unit bags
    b: Mapping[str, float]


@dataclass(frozen=True)
class Links:
    """The clusterer's lessons; empty when no one merged or split anything."""

    links: tuple[Link, ...] = ()

    def shift(
        self, new: Mapping[str, float], member: Mapping[str, float]
    ) -> tuple[float, int | None]:
        """What is added to the log-odds that `new` joins the development of `member`
        (their word bags), and the feedback that decided it (None: no link applies, the
        shift is 0). A split outweighs a merge when both apply."""
        if not self.links:
            return 0.0, None
        x, y = fingerprint([new]), fingerprint([member])
        found: tuple[float, int | None] = (0.0, None)
        for link in self.links:
            ax, by = similarity(x, link.a), similarity(y, link.b)
            bx, ay = similarity(x, link.b), similarity(y, link.a)
            if min(ax, by) >= NEAR or min(bx, ay) >= NEAR:
                if not link.together:
                    return SPLIT_SHIFT, link.feedback_id
                found = (MERGED_SHIFT, link.feedback_id)
        return found
