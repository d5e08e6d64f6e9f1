"""Score articles against the topic profile. Pure: dataclasses in, dataclasses out.

Method: text is split into sentences (the headline is one) and words are stemmed, so
inflected Russian and English forms meet the profile's terms. A topic matches when all
concepts of one of its `require` lists appear in the same sentence: co-occurrence in one
sentence is what separates "Putin met Israel's prime minister" from a roundup that names
Russia in one item and Israel in the next. The score weighs where the evidence sits
(headline above lead above body), how often it recurs, and supporting concepts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from monitor.profile import Profile, Term
from monitor.profile import load_profile as load_profile  # the matcher's input; re-exported
from monitor.text import (
    CYRILLIC,
    NUMBER,
    STOPWORDS,
    TITLES,
    WEEKDAY_STEMS,
    WORD,
    WORD_RE,
    Token,
    bare,
    builtin_lexicon,
    dateline,
    day_counts,
    is_roundup,
    is_title_case,
    kind_of,
    mentioned_days,
    name_key,
    name_of,
    says_again,
    sentences,
    stem,
    tokenize,
    weekdays_of,
    word_stem,
)

if TYPE_CHECKING:
    from monitor.normalize import Article


# Cosine likeness of an article to a topic's description and vocabulary. Measured on the
# dev scenario it separates on- from off-topic articles worse than the same-sentence rules
# (on-topic from 0.10, off-topic up to 0.14), so it only adds a bounded bonus to a topic
# whose rule already holds: it lifts a buried mention that reads like the topic.
DESCRIPTION_WEIGHT = 1.0
DESCRIPTION_BONUS = 0.3

# A "sentence" longer than RUN_ON words is text run together without punctuation: the
# same-sentence rule then reads it in windows of WINDOW words, so two actors far apart
# in it do not count as one statement.
RUN_ON = 60
WINDOW = 30


TITLE_WEIGHT = 1.5
LEAD_WEIGHT = 1.0
BODY_WEIGHT = 0.8
LEAD_SENTENCES = 3
# Distinct word forms a matcher keeps tokenized (a few hundred bytes each).
TOKEN_CACHE = 200_000


# Prepositions that put an event somewhere ("in Sochi", "в Кремле"); "to" only after
# a word of travel ("trip to Moscow"), since "Netanyahu to Putin" names an addressee.
LOCATIVE = frozenset("in at near outside inside в во под около возле близ".split())
_MOTION = frozenset(
    stem(w)
    for w in "trip trips visit visits visited fly flies flew travel travels travelled "
    "arrive arrives arrived head heads headed return returns returned".split()
)


@lru_cache(maxsize=1)
def countries() -> frozenset[str]:
    """Stems of the words of every country's English and Russian names (pycountry's ISO
    3166 list and its Russian translation): a country is where news happens, too wide
    to tell two events apart. Its data files are read without importing the package,
    which would keep its whole database (3 MB) in every process that matches."""
    import gettext
    import importlib.util
    import json

    spec = importlib.util.find_spec("pycountry")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    root = Path(next(iter(spec.submodule_search_locations)))
    try:
        data = json.loads((root / "databases" / "iso3166-1.json").read_text("utf-8"))
        with (root / "locales" / "ru" / "LC_MESSAGES" / "iso3166-1.mo").open("rb") as fh:
            ru = gettext.GNUTranslations(fh)
    except (OSError, ValueError):
        return frozenset()
    out: set[str] = set()
    for c in data.get("3166-1", ()):
        for key in ("name", "common_name", "official_name"):
            if key in c:
                for name in (c[key], ru.gettext(c[key])):
                    out.update(t.stem for t in tokenize(name) if t.surface[:1].isupper())
    return frozenset(out)


def _motion(x: Hit | Token) -> bool:
    return isinstance(x, Token) and x.stem in _MOTION


class Hit(NamedTuple):
    """A profile term found in a sentence (a tuple: most sentences of the news hold some
    common term, and a frozen dataclass cost five times as much to make)."""

    term: str
    concept: str
    surface: str
    place: bool = False
    weight: float = 1.0


@dataclass(frozen=True)
class TopicScore:
    topic: str
    score: float
    evidence: list[str]


@dataclass(frozen=True)
class MatchResult:
    scores: dict[str, TopicScore]
    # Term keys found anywhere: language-independent identities. `entities` are specific
    # (people, places, organisations); `keywords` come from generic concepts (strike, talks).
    entities: frozenset[str]
    keywords: frozenset[str]
    places: frozenset[str]
    threshold: float
    # For clustering: profile term keys and the other content-word stems, headline counted
    # twice; and numbers (years, counts, "300" of S-300) which survive translation.
    terms: Counter[str] = field(default_factory=Counter)
    words: Counter[str] = field(default_factory=Counter)
    numbers: frozenset[str] = frozenset()
    # Names the profile does not know (capitalized words inside a sentence) as spelling
    # skeletons that Latin and Cyrillic spellings share: "Azovstal"/"Азовсталь", new
    # leaders, towns, ships. See name_key().
    names: frozenset[str] = frozenset()
    # Calendar days the text names ("October 22", "22 октября") as "MM-DD": reports of one
    # event name its day; a look-alike weeks later names another. See mentioned_days().
    days: frozenset[str] = frozenset()
    # Keys of the terms that are their concept itself (the country "israel" of the concept
    # israel): every report on the subject names them, so sharing them says little.
    heads: frozenset[str] = frozenset()
    # The day of the text's wire dateline ("MOSCOW, July 21 (Reuters) -") as "MM-DD", or "":
    # the report's own date, where `days` holds every day it mentions.
    dateline: str = ""
    # Days of the week it names ("mon"), and whether its headline or lead presents the
    # event as a repeat ("again", "second strike", "снова").
    weekdays: frozenset[str] = frozenset()
    again: bool = False
    # The headline's own keys ("e:" profile terms, "w:" word stems, "n:" numbers, "x:"
    # names): reports of one event tend to headline the same thing.
    head: frozenset[str] = frozenset()
    # Which days of a running story the headline or lead counts ("day 214 of the war").
    day_counts: frozenset[int] = frozenset()
    # Where the headline puts its event ("in Sochi", "near Damascus"): see _venues();
    # and the concepts the text names anywhere (a venue "e:russia" is mentioned by Putin).
    venues: frozenset[str] = frozenset()
    concepts: frozenset[str] = frozenset()

    @property
    def best(self) -> float:
        return max((s.score for s in self.scores.values()), default=0.0)

    @property
    def topics(self) -> list[str]:
        """Topics at or above the threshold, best first."""
        hits = [s for s in self.scores.values() if s.score >= self.threshold]
        return [s.topic for s in sorted(hits, key=lambda s: -s.score)]

    @property
    def relevant(self) -> bool:
        return self.best >= self.threshold


class Matcher:
    """A compiled profile: phrase lookup by first stem, longest phrase first."""

    def __init__(
        self,
        profile: Profile,
        threshold: float | None = None,
        lexicon: dict[str, str] | None = None,
    ) -> None:
        self.profile = profile
        # Clustering's bridge between English and Russian words (text.parse_lexicon).
        self._lexicon = builtin_lexicon() if lexicon is None else lexicon
        self.threshold = profile.threshold if threshold is None else threshold
        index: dict[str, list[tuple[tuple[str, ...], Term]]] = {}
        for term in profile.terms:
            for phrase in term.phrases:
                index.setdefault(phrase[0], []).append((phrase, term))
        for options in index.values():
            options.sort(key=lambda o: -len(o[0]))
        self._index = index
        self._tokens: dict[str, Token] = {}  # by surface form; see _tokenize
        self._require = {t.id: [frozenset(g) for g in t.require] for t in profile.topics}
        self._key_stems = {t.key: t.phrases[0] for t in profile.terms if t.phrases}
        # Names the profile's terms already stand for (their entity keys say it better).
        self._known_names = frozenset(
            name_key(st) for t in profile.terms for phrase in t.phrases for st in phrase
        ) - {""}
        # Each topic as a bag of stems: its description plus every alias of its concepts.
        self._topic_bags: dict[str, dict[str, float]] = {}
        for t in profile.topics:
            concepts = {c for g in t.require for c in g} | set(t.support)
            bag: Counter[str] = Counter(
                x.stem
                for x in tokenize(t.description)
                if x.stem not in STOPWORDS and len(x.stem) > 2
            )
            for term in profile.terms:
                if term.concept in concepts:
                    bag.update(s for phrase in term.phrases for s in phrase)
            self._topic_bags[t.id] = _unit(bag)

    def hits(self, sentence: str) -> list[Hit]:
        return [x for x in self.scan(sentence) if isinstance(x, Hit)]

    def _tokenize(self, sentence: str) -> list[Token]:
        """tokenize(), with one shared Token per distinct word: stemming and classifying
        a word is done once, not once per occurrence (the cache is emptied when large)."""
        cache = self._tokens
        out = []
        for w in WORD_RE.findall(sentence):
            token = cache.get(w)
            if token is None:
                if len(cache) >= TOKEN_CACHE:
                    cache.clear()
                st = word_stem(w)
                kind = kind_of(st, w)
                token = cache[w] = Token(
                    st,
                    w,
                    kind,
                    st in self._index,
                    name_of(st, w, kind),
                    self._lexicon.get(st, st) if kind == WORD else st,
                )
            out.append(token)
        return out

    def scan(self, sentence: str) -> list[Hit | Token]:
        """The sentence as profile-term hits and the leftover tokens, in order."""
        tokens = self._tokenize(sentence)
        return self._scan(tokens, [i for i, t in enumerate(tokens) if t.lead])[0]

    def _scan(
        self,
        tokens: list[Token],
        leads: list[int],
        headline: bool = True,
        title_case: bool | None = None,
    ) -> tuple[list[Hit | Token], list[Hit], list[Token]]:
        """The sentence in order, hits and leftover tokens; its hits; its leftover tokens.
        Only `leads` (where some profile phrase starts) are looked at: the words between
        are copied in slices, which is most of the work saved on a long sentence.

        `title_case`: whether the sentence is title case, if known; worked out only when
        a rule needs it (a false friend anywhere; a bare surname in a headline, since only
        headlines are written in title case)."""
        out: list[Hit | Token] = []
        hits: list[Hit] = []
        rest: list[Token] = []
        done = 0  # tokens before this index are in `out`
        for i in leads:
            if i < done:  # inside the phrase just matched
                continue
            gap = tokens[done:i]
            out += gap
            rest += gap
            hit: Hit | None = None
            for phrase, term in self._index[tokens[i].stem]:
                n = len(phrase)  # (the first stem matched: that is the index's key)
                if n > 1 and tuple(t.stem for t in tokens[i : i + n]) != phrase:
                    continue
                if n == 1 and phrase[0] in self.profile.false_friends:
                    if title_case is None:
                        title_case = is_title_case(tokens)
                    if not title_case and self._false_friend(tokens, i):
                        break
                if (
                    n == 1
                    and term.spellings
                    and not CYRILLIC.search(tokens[i].surface)
                    and bare(tokens[i].surface) not in term.spellings
                ):
                    break
                if (
                    n == 1
                    and term.given
                    and i > 0
                    and _other_person(tokens[i - 1], term.given, out)
                ):
                    if headline and title_case is None:
                        title_case = is_title_case(tokens)
                    if not (headline and title_case):
                        break
                surface = (
                    tokens[i].surface if n == 1 else " ".join(t.surface for t in tokens[i : i + n])
                )
                hit = Hit(term.key, term.concept, surface, term.place, term.weight)
                break
            if hit is None:
                out.append(tokens[i])
                rest.append(tokens[i])
                done = i + 1
            else:
                out.append(hit)
                hits.append(hit)
                done = i + n
        tail = tokens[done:]
        out += tail
        rest += tail
        return out, hits, rest

    def _false_friend(self, tokens: list[Token], i: int) -> bool:
        """A capitalized given name followed by a surname (Israel Adesanya), not a country."""
        allowed = self.profile.false_friends.get(tokens[i].stem)
        if allowed is None or i + 1 >= len(tokens):
            return False
        nxt = tokens[i + 1].surface
        return tokens[i].surface[:1].isupper() and nxt[:1].isupper() and nxt.lower() not in allowed

    def match(self, title: str, text: str) -> MatchResult:
        terms: Counter[str] = Counter()
        words: Counter[str] = Counter()
        numbers: set[str] = set()
        # The units the same-sentence rule reads, with their hits: sentences, and windows
        # of a run-on "sentence" (text whose sentences run together unpunctuated).
        all_sentences: list[tuple[str, bool]] = []
        found: list[list[Hit]] = []
        read: list[tuple[list[Token], bool]] = []  # each sentence's tokens
        head_hits: list[Hit] = []
        head_tokens: list[Token] = []
        head_scanned: list[Hit | Token] = []  # the headline in order, hits and words
        opening = ""  # the body's first sentence, where a report says what happened
        for s, is_title in sentences(title, text):
            if not is_title and not opening:
                opening = s
            tokens = self._tokenize(s)
            read.append((tokens, is_title))
            scanned: list[Hit | Token] | list[Token] = tokens
            hits: list[Hit] = []
            leads = [i for i, t in enumerate(tokens) if t.lead]
            if leads:  # else no profile term can be in it
                scanned, hits, tokens = self._scan(tokens, leads, is_title)
                if hits:
                    named = [h.term for h in hits]
                    for _ in range(2 if is_title else 1):  # the headline counts twice
                        terms.update(named)
            if len(scanned) <= RUN_ON:
                all_sentences.append((s, is_title))
                found.append(hits)
            else:
                for j in range(0, len(scanned), WINDOW):
                    piece = scanned[j : j + WINDOW]
                    all_sentences.append((" ".join(x.surface for x in piece), is_title))
                    found.append([x for x in piece if isinstance(x, Hit)])
            if is_title:
                head_hits += hits
                head_tokens += tokens
                head_scanned += scanned
            counted = [t.key for t in tokens if t.kind == WORD]
            for _ in range(2 if is_title else 1):
                words.update(counted)
            numbers.update([t.stem for t in tokens if t.kind == NUMBER])
        if not terms or is_roundup(title):  # no topic can hold; a roundup reports none
            return MatchResult(
                {},
                frozenset(),
                frozenset(),
                frozenset(),
                self.threshold,
                terms,
                words,
                frozenset(numbers),
            )
        n_title = sum(1 for _, is_title in all_sentences if is_title)
        concepts_anywhere = {h.concept for hs in found for h in hs}
        article_bag: dict[str, float] | None = None
        # Per sentence with hits: each concept's strongest hit.
        strengths: list[tuple[int, list[Hit], dict[str, float]]] = []
        for idx, hs in enumerate(found):
            if hs:
                strength: dict[str, float] = {}
                for h in hs:
                    strength[h.concept] = max(strength.get(h.concept, 0.0), h.weight)
                strengths.append((idx, hs, strength))
        scores: dict[str, TopicScore] = {}
        for topic in self.profile.topics:
            require = [g for g in self._require[topic.id] if g <= concepts_anywhere]
            if not require:  # no sentence can hold all of a group's concepts
                continue
            weights: list[float] = []
            evidence: list[str] = []
            for idx, hs, strength in strengths:
                groups = [g for g in require if g <= strength.keys()]
                if not groups:
                    continue
                # The weakest concept of the best-supported group decides the hit's weight.
                term_weight = max(min(strength[c] for c in g) for g in groups)
                if idx < n_title:
                    position = TITLE_WEIGHT
                else:
                    lead = idx - n_title < LEAD_SENTENCES
                    position = LEAD_WEIGHT if lead else BODY_WEIGHT
                weights.append(position * term_weight)
                evidence.append(_snippet(all_sentences[idx][0], hs))
            if not weights:
                continue
            weights.sort(reverse=True)
            support = sum(1 for c in topic.support if c in concepts_anywhere)
            if article_bag is None:
                article_bag = _unit(
                    Counter({k: float(v) for k, v in words.items()})
                    + Counter(
                        {
                            s: float(v)
                            for key, v in terms.items()
                            for s in self._key_stems.get(key, ())
                        }
                    )
                )
            likeness = _dot(self._topic_bags[topic.id], article_bag)
            score = (
                weights[0]
                + 0.2 * min(3, len(weights) - 1)
                + 0.1 * min(3, support)
                + min(DESCRIPTION_BONUS, DESCRIPTION_WEIGHT * likeness)
            )
            scores[topic.id] = TopicScore(topic.id, round(score, 3), evidence[:3])
        generic = self.profile.generic_concepts
        all_hits = [h for hs in found for h in hs]
        entities = frozenset(h.term for h in all_hits if h.concept not in generic)
        keywords = frozenset(h.term for h in all_hits if h.concept in generic)
        places = frozenset(h.term for h in all_hits if h.place)
        heads = frozenset(h.term for h in all_hits if h.term == h.concept)
        # Marks of time and the headline's keys serve clustering only, which takes the
        # entries some topic rule holds on; day counts are cheap (most leads have no "day").
        clustered = bool(scores)
        return MatchResult(
            scores,
            entities,
            keywords,
            places,
            self.threshold,
            terms,
            words,
            frozenset(numbers),
            self._names(read),
            mentioned_days(f"{title} {text}") if clustered else frozenset(),
            heads,
            dateline(text) if clustered else "",
            weekdays_of([t.surface for ts, _ in read for t in ts if t.stem in WEEKDAY_STEMS])
            if clustered
            else frozenset(),
            clustered and says_again(f"{title} {opening}"),
            self._head(head_hits, head_tokens) if clustered else frozenset(),
            day_counts(f"{title} {opening}"),
            self._venues(head_scanned) if clustered else frozenset(),
            frozenset(concepts_anywhere),
        )

    @cached_property
    def _countries(self) -> frozenset[str]:
        """The profile's concepts that are countries (a term of their own name, such as
        "russia", spelled as a country is): where a capital or seat of power stands for
        them. Worked out at the first venue, not by every process that matches."""
        return frozenset(
            t.concept
            for t in self.profile.terms
            if t.key == t.concept and {p[0] for p in t.phrases if len(p) == 1} & countries()
        )

    def _venues(self, scanned: Sequence[Hit | Token]) -> frozenset[str]:
        """Where the headline puts its event: what follows a locative preposition ("in
        Sochi", "near Damascus", "в Кремле", "trip to Moscow"), as the keys clustering
        compares. A profile place is itself ("e:damascus"); a capital or seat of power
        stands for its country ("in the Kremlin" and "in Moscow" are both "e:russia"); a
        country named as such ("in Syria", "в Израиле") is "c:syria": an event that
        spans a country (a visit), which no town contradicts. Other capitalized words are
        their stem ("w:sochi"), unless the headline is in title case (every word
        capitalized) or the word is a general one the lexicon knows."""
        out: set[str] = set()
        title_case: bool | None = None
        for i in range(len(scanned) - 1):
            prep = scanned[i]
            if isinstance(prep, Hit):
                continue
            word = prep.surface.lower()
            if word not in LOCATIVE and not (word == "to" and i and _motion(scanned[i - 1])):
                continue
            j = i + 1
            if j + 1 < len(scanned) and scanned[j].surface.lower() == "the":
                j += 1
            x = scanned[j]
            if isinstance(x, Hit):
                if x.place:
                    out.add("e:" + x.term)
                elif i == 0:  # "В Кремле заявили": who speaks, not where
                    continue
                elif x.concept in self._countries:
                    out.add(("c:" if x.term == x.concept else "e:") + x.concept)
                continue
            if x.kind != WORD or not x.surface[:1].isupper():
                continue
            if x.stem in countries():
                out.add("c:" + x.stem)
                continue
            if x.key.startswith("~") or (x.surface.isupper() and len(x.surface) < 4):
                continue
            if title_case is None:
                title_case = is_title_case(t for t in scanned if isinstance(t, Token))
            if not title_case:
                out.add("w:" + x.key)
        return frozenset(out)

    def _head(self, hits: list[Hit], tokens: list[Token]) -> frozenset[str]:
        """The headline's keys: its profile terms, numbers, word stems and (unless it is
        written in title case, which capitalizes every word) names."""
        keys = {"e:" + h.term for h in hits}
        keys.update("n:" + t.stem for t in tokens if t.kind == NUMBER)
        keys.update("w:" + t.key for t in tokens if t.kind == WORD)
        if not is_title_case(tokens):
            keys.update("x:" + t.name for t in tokens if t.name and t.name not in self._known_names)
        return frozenset(keys)

    def _names(self, read: list[tuple[list[Token], bool]]) -> frozenset[str]:
        """Name keys of capitalized words inside sentences (a capital at a sentence's start
        says nothing; a title-case headline marks no names), less the profile's own.
        Only on-topic articles are clustered, so only they pay for this."""
        names: set[str] = set()
        for tokens, is_title in read:
            named = [t.name for t in tokens[1:] if t.name]
            if named and not (is_title and is_title_case(tokens)):
                names.update(named)
        return frozenset(names - self._known_names)

    def match_article(self, article: Article) -> MatchResult:
        return self.match(article.title, article.text)


def _unit(bag: Counter[str]) -> dict[str, float]:
    norm = math.sqrt(sum(v * v for v in bag.values()))
    return {k: v / norm for k, v in bag.items()} if norm else {}


def _dot(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(v * b.get(k, 0.0) for k, v in a.items())


def _other_person(before: Token, given: frozenset[str], out: list[Hit | Token]) -> bool:
    """Whether the capitalized word before an official's bare surname is another given
    name ("Tony Bennett", "Amir Lapid"): not the official's, not a title, not a term."""
    surface = before.surface
    if not surface[:1].isupper() or before.stem in given:
        return False
    if surface.lower().rstrip(".") in TITLES or before.stem in TITLES:
        return False
    return not (out and isinstance(out[-1], Hit))  # "Prime Minister", "Israel's"


def _snippet(sentence: str, hits: list[Hit], limit: int = 240) -> str:
    s = sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"
    terms = ", ".join(sorted({f"{h.concept}:{h.surface}" for h in hits}))
    return f"{s} [{terms}]"


@dataclass(frozen=True)
class Explanation:
    result: MatchResult
    sentences: list[tuple[str, list[Hit]]] = field(default_factory=list)


def explain(matcher: Matcher, title: str, text: str) -> Explanation:
    """Every sentence with the concept hits found in it, for `monitor explain`."""
    ss = sentences(title, text)
    return Explanation(matcher.match(title, text), [(s, matcher.hits(s)) for s, _ in ss])
