"""The topic profile: concepts (terms in English and Russian), and topics as the
concept groups that must meet in one sentence. Read from TOML (data/topics.toml is the
built-in one and documents the format)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from monitor.text import CYRILLIC, stem, tokenize


@dataclass(frozen=True, slots=True)
class Term:
    key: str  # the first alias: one identity across languages
    concept: str
    phrases: tuple[tuple[str, ...], ...]
    place: bool = False  # a concrete location
    weight: float = 1.0  # how strongly a hit stands for its concept
    # Stems of given names the term's full-name aliases put before its surname
    # ("naftali bennett|bennett"): a bare surname after another given name is someone else.
    given: frozenset[str] = frozenset()
    # A place's one-word Latin spellings: English place names do not inflect, so a word
    # that only stems like one ("Hamas" → "hama") is not that place.
    spellings: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Topic:
    id: str
    title: str
    description: str
    require: tuple[tuple[str, ...], ...]
    support: tuple[str, ...] = ()


@dataclass(frozen=True)
class Profile:
    topics: tuple[Topic, ...]
    terms: tuple[Term, ...]
    generic_concepts: frozenset[str]
    false_friends: dict[str, frozenset[str]]
    threshold: float
    source: str = "built-in"

    @property
    def concepts(self) -> list[str]:
        return sorted({t.concept for t in self.terms})


def parse_profile(data: dict[str, Any], source: str = "built-in") -> Profile:
    """Build a profile from its TOML structure (see data/topics.toml for the format)."""
    terms: list[Term] = []
    generic: set[str] = set()
    for concept, spec in (data.get("concepts") or {}).items():
        if spec.get("generic"):
            generic.add(concept)
        for line in spec.get("terms", []):
            place = line.startswith("@")
            line, _, w = line.removeprefix("@").partition("~")
            weight = float(w) if w.strip() else 1.0
            aliases = [a.strip() for a in line.split("|") if a.strip()]
            phrases = tuple(
                dict.fromkeys(tuple(t.stem for t in tokenize(a)) for a in aliases if tokenize(a))
            )
            singles = {ph[0] for ph in phrases if len(ph) == 1}
            given = frozenset(ph[-2] for ph in phrases if len(ph) >= 2 and ph[-1] in singles)
            spellings = frozenset(
                a.lower() for a in aliases if place and " " not in a and not CYRILLIC.search(a)
            )
            terms.append(
                Term(
                    key=aliases[0].lower(),
                    concept=concept,
                    phrases=phrases,
                    place=place,
                    weight=weight,
                    given=given,
                    spellings=spellings,
                )
            )
    known = {t.concept for t in terms}
    topics = []
    for spec in data.get("topics", []):
        require = tuple(tuple(group) for group in spec["require"])
        for c in {c for g in require for c in g} | set(spec.get("support", [])):
            if c not in known:
                raise ValueError(f"topic {spec['id']!r} names unknown concept {c!r}")
        topics.append(
            Topic(
                id=spec["id"],
                title=spec.get("title", spec["id"]),
                description=spec.get("description", "").strip(),
                require=require,
                support=tuple(spec.get("support", [])),
            )
        )
    friends = {
        stem(k): frozenset(w.lower() for w in v)
        for k, v in (data.get("false_friends") or {}).items()
    }
    return Profile(
        topics=tuple(topics),
        terms=tuple(terms),
        generic_concepts=frozenset(generic),
        false_friends=friends,
        threshold=float(data.get("threshold", 1.0)),
        source=source,
    )


def load_profile(path: Path | None = None) -> Profile:
    """The profile at `path`, else the built-in one."""
    if path is None:
        text = resources.files("monitor").joinpath("data/topics.toml").read_text("utf-8")
        return parse_profile(tomllib.loads(text))
    return parse_profile(tomllib.loads(path.read_text("utf-8")), source=str(path))
