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
import re
import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import Stemmer

from monitor.normalize import Article

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
# Sentence breaks: whitespace after . ! ? ;, line breaks, or a spaced separator (| • · — –).
# Written to start with \s, so the engine skips to the next whitespace in C rather than
# trying three alternatives at every character (~3x faster; the same splits as
# (?<=[.!?;])\s+|[\n\r]+|\s+[|•·—–]\s+ , which tests/test_match.py checks).
_SENTENCE = re.compile(r"\s(?:(?<=[.!?;]\s)\s*|(?<=[\n\r])[\n\r]*|\s*[|•·—–]\s+)")
_CYR = re.compile(r"[\u0400-\u04ff]")
_EN = Stemmer.Stemmer("english")
_RU = Stemmer.Stemmer("russian")

_DIGITS = re.compile(r"^\d+$")
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers him his how i if in into is it its itself just
me more most my no nor not now of off on once only or other our out over own same she should
so some such than that the their them then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you your
said says say told according report reports reported new after amid over week day year news
update live analysis video photos watch via one two three first last и в во не что он на я с
со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от меня еще
нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь опять
уж вам ведь там потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была
сам чтобы без будто чего раз тоже себе под будет ж тогда кто этот того потому этого какой
совсем ним здесь этом один почти мой тем чтобы нее сейчас были куда зачем всех никогда можно
при наконец два об другой хоть после над больше тот через эти нас про всего них какая много
разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя такой им более
всегда конечно всю между заявил сообщил сообщает заявила также года году
""".split())

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
# A headline that labels a list of unrelated items (a roundup, a briefing, a press
# review): what it names in one item says nothing about the next, so it reports no
# development of its own.
_ROUNDUP = re.compile(
    r"^\s*(?:[\w ]{0,20}\b)?(?:news\s+)?(?:round-?up|briefing|digest|press\s+review|"
    r"news\s+review|news\s+in\s+brief|in\s+brief|headlines|top\s+stories|what\s+we(?:'|’)re\s+reading|the\s+day\s+in|"
    r"week\s+in\s+review|daily\s+brief|morning\s+report|evening\s+report|live(?:\s+updates)?|"
    r"главное(?:\s+за\s+\w+|\s+к\s+\w+)?|обзор\s+(?:прессы|сми|печати|новостей)|дайджест|"
    r"итоги\s+(?:дня|недели)|новости\s+(?:дня|к\s+\w+)|что\s+(?:пишут|случилось)|коротко)"
    r"(?:\s*[:|—–-]|,?\s+\w+\s+\d{1,2}\b|,?\s+\d{1,2}\s+\w+)",
    re.IGNORECASE)


def is_roundup(title: str) -> bool:
    """A headline labelled as a roundup, digest or press review (in English or Russian)."""
    return bool(_ROUNDUP.match(title))


TITLE_WEIGHT = 1.5
LEAD_WEIGHT = 1.0
BODY_WEIGHT = 0.8
LEAD_SENTENCES = 3
# Distinct word forms a matcher keeps tokenized (a few hundred bytes each).
TOKEN_CACHE = 200_000


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Lower-case Snowball stem, Russian or English by the word's script."""
    w = word.lower().replace("ё", "е").replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if _CYR.search(w):
        return str(_RU.stemWord(w))
    return str(_EN.stemWord(w))


# What a token counts as in an article's word bag.
SKIP, WORD, NUMBER = 0, 1, 2


class Token(NamedTuple):
    """A word as found, its stem and what it counts as (a tuple: every word of every entry
    makes one, and a matcher shares one per distinct surface form)."""

    stem: str
    surface: str
    kind: int = SKIP
    lead: bool = False  # some profile phrase starts with this stem
    name: str = ""  # name_key() of a capitalized word, "" for any other


# Capitalized in English without being names.
_NOT_NAMES = frozenset("""
january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday mr mrs ms dr
""".split())
# Spellings that differ between transliterations of one name, made one: kh/h, ch/c, sh/s.
_DIGRAPHS = re.compile(r"kh|ch|sh|zh|ts|tz|ph|ck|dzh|x|w|q|j")
_DIGRAPH_MAP = {"kh": "h", "ch": "c", "sh": "s", "zh": "z", "ts": "c", "tz": "c", "ph": "f",
                "ck": "k", "dzh": "y", "x": "ks", "w": "v", "q": "k", "j": "y"}
_VOWELS = re.compile(r"(?<=.)[aeiouy]+")
_REPEATS = re.compile(r"(.)\1+")


@lru_cache(maxsize=100_000)
def name_key(word_stem: str) -> str:
    """A name's spelling skeleton, the same for most Latin and Cyrillic spellings of it:
    transliterated (anyascii), digraphs folded, vowels after the first letter dropped,
    doubled letters merged, five letters kept. "Bennett", "Беннета" → "bnt";
    "Zelensky", "Зеленский" → "zlnsk". Shorter than three letters: no key."""
    from anyascii import anyascii

    ascii_ = re.sub(r"[^a-z]", "", anyascii(word_stem).lower())
    folded = _DIGRAPHS.sub(lambda m: _DIGRAPH_MAP[m.group()], ascii_)
    key = _REPEATS.sub(r"\1", _VOWELS.sub("", folded))[:5]
    return key if len(key) >= 3 else ""


def _name_of(token_stem: str, surface: str, kind: int) -> str:
    if kind != WORD or not surface[:1].isupper() or (surface.isupper() and len(surface) < 4):
        return ""
    if surface.lower() in _NOT_NAMES:
        return ""
    return name_key(token_stem)


def _kind(token_stem: str, surface: str) -> int:
    if _DIGITS.match(token_stem):
        return NUMBER if len(token_stem) >= 2 else SKIP
    if len(token_stem) > 1 and token_stem not in STOPWORDS \
            and surface.lower() not in STOPWORDS:
        return WORD
    return SKIP


def tokenize(text: str) -> list[Token]:
    return [Token(st, w, _kind(st, w)) for w in _WORD.findall(text) for st in (stem(w),)]


def sentences(title: str, text: str) -> list[tuple[str, bool]]:
    """(sentence, is_headline): the headline's clauses first, then the body's sentences."""
    out = [(s.strip(), True) for s in _SENTENCE.split(title) if s.strip()]
    out += [(s.strip(), False) for s in _SENTENCE.split(text) if s.strip()]
    return out


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
            phrases = tuple(dict.fromkeys(
                tuple(t.stem for t in tokenize(a)) for a in aliases if tokenize(a)))
            singles = {ph[0] for ph in phrases if len(ph) == 1}
            given = frozenset(ph[-2] for ph in phrases if len(ph) >= 2 and ph[-1] in singles)
            spellings = frozenset(a.lower() for a in aliases
                                  if place and " " not in a and not _CYR.search(a))
            terms.append(Term(key=aliases[0].lower(), concept=concept, phrases=phrases,
                              place=place, weight=weight, given=given, spellings=spellings))
    known = {t.concept for t in terms}
    topics = []
    for spec in data.get("topics", []):
        require = tuple(tuple(group) for group in spec["require"])
        for c in {c for g in require for c in g} | set(spec.get("support", [])):
            if c not in known:
                raise ValueError(f"topic {spec['id']!r} names unknown concept {c!r}")
        topics.append(Topic(id=spec["id"], title=spec.get("title", spec["id"]),
                            description=spec.get("description", "").strip(),
                            require=require, support=tuple(spec.get("support", []))))
    friends = {stem(k): frozenset(w.lower() for w in v)
               for k, v in (data.get("false_friends") or {}).items()}
    return Profile(topics=tuple(topics), terms=tuple(terms),
                   generic_concepts=frozenset(generic), false_friends=friends,
                   threshold=float(data.get("threshold", 1.0)), source=source)


def load_profile(path: Path | None = None) -> Profile:
    """The profile at `path`, else the built-in one."""
    if path is None:
        text = resources.files("monitor").joinpath("data/topics.toml").read_text("utf-8")
        return parse_profile(tomllib.loads(text))
    return parse_profile(tomllib.loads(path.read_text("utf-8")), source=str(path))


@dataclass(frozen=True, slots=True)
class Hit:
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

    def __init__(self, profile: Profile, threshold: float | None = None) -> None:
        self.profile = profile
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
        self._known_names = frozenset(name_key(st) for t in profile.terms
                                      for phrase in t.phrases for st in phrase) - {""}
        # Each topic as a bag of stems: its description plus every alias of its concepts.
        self._topic_bags: dict[str, dict[str, float]] = {}
        for t in profile.topics:
            concepts = {c for g in t.require for c in g} | set(t.support)
            bag: Counter[str] = Counter(
                x.stem for x in tokenize(t.description)
                if x.stem not in STOPWORDS and len(x.stem) > 2)
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
        for w in _WORD.findall(sentence):
            token = cache.get(w)
            if token is None:
                if len(cache) >= TOKEN_CACHE:
                    cache.clear()
                st = stem(w)
                kind = _kind(st, w)
                token = cache[w] = Token(st, w, kind, st in self._index, _name_of(st, w, kind))
            out.append(token)
        return out

    def scan(self, sentence: str) -> list[Hit | Token]:
        """The sentence as profile-term hits and the leftover tokens, in order."""
        return self._scan(self._tokenize(sentence))

    def _scan(self, tokens: list[Token], headline: bool = True,
              title_case: bool | None = None) -> list[Hit | Token]:
        """`title_case`: whether the sentence is title case, if known; worked out only when
        a rule needs it (a false friend anywhere; a bare surname in a headline, since only
        headlines are written in title case)."""
        out: list[Hit | Token] = []
        stems = [t.stem for t in tokens]
        i = 0
        while i < len(tokens):
            if not tokens[i].lead:  # no profile phrase starts with this word
                out.append(tokens[i])
                i += 1
                continue
            matched = 0
            for phrase, term in self._index[stems[i]]:
                n = len(phrase)  # (the first stem matched: that is the index's key)
                if n > 1 and tuple(stems[i:i + n]) != phrase:
                    continue
                if n == 1 and phrase[0] in self.profile.false_friends:
                    if title_case is None:
                        title_case = _is_title_case(tokens)
                    if not title_case and self._false_friend(tokens, i):
                        break
                if n == 1 and term.spellings and not _CYR.search(tokens[i].surface) \
                        and _bare(tokens[i].surface) not in term.spellings:
                    break
                if n == 1 and term.given and i > 0 \
                        and _other_person(tokens[i - 1], term.given, out):
                    if headline and title_case is None:
                        title_case = _is_title_case(tokens)
                    if not (headline and title_case):
                        break
                surface = " ".join(t.surface for t in tokens[i:i + n])
                out.append(Hit(term.key, term.concept, surface, term.place, term.weight))
                matched = n
                break
            if not matched:
                out.append(tokens[i])
            i += matched or 1
        return out

    def _false_friend(self, tokens: list[Token], i: int) -> bool:
        """A capitalized given name followed by a surname (Israel Adesanya), not a country."""
        allowed = self.profile.false_friends.get(tokens[i].stem)
        if allowed is None or i + 1 >= len(tokens):
            return False
        nxt = tokens[i + 1].surface
        return tokens[i].surface[:1].isupper() and nxt[:1].isupper() \
            and nxt.lower() not in allowed

    def match(self, title: str, text: str) -> MatchResult:
        terms: Counter[str] = Counter()
        words: Counter[str] = Counter()
        numbers: set[str] = set()
        # The units the same-sentence rule reads, with their hits: sentences, and windows
        # of a run-on "sentence" (text whose sentences run together unpunctuated).
        all_sentences: list[tuple[str, bool]] = []
        found: list[list[Hit]] = []
        read: list[tuple[list[Token], bool]] = []  # each sentence's tokens
        for s, is_title in sentences(title, text):
            tokens = self._tokenize(s)
            read.append((tokens, is_title))
            scanned: list[Hit | Token] | list[Token] = tokens
            hits: list[Hit] = []
            if any(t.lead for t in tokens):  # else no profile term can be in it
                scanned = self._scan(tokens, is_title)
                tokens = []
                for x in scanned:
                    if isinstance(x, Hit):
                        hits.append(x)
                    else:
                        tokens.append(x)
                for _ in range(2 if is_title else 1):  # the headline counts twice
                    terms.update(h.term for h in hits)
            if len(scanned) <= RUN_ON:
                all_sentences.append((s, is_title))
                found.append(hits)
            else:
                for j in range(0, len(scanned), WINDOW):
                    piece = scanned[j:j + WINDOW]
                    all_sentences.append((" ".join(x.surface for x in piece), is_title))
                    found.append([x for x in piece if isinstance(x, Hit)])
            counted = [t.stem for t in tokens if t.kind == WORD]
            for _ in range(2 if is_title else 1):
                words.update(counted)
            numbers.update(t.stem for t in tokens if t.kind == NUMBER)
        if not terms or is_roundup(title):  # no topic can hold; a roundup reports none
            return MatchResult({}, frozenset(), frozenset(), frozenset(), self.threshold,
                               terms, words, frozenset(numbers))
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
                article_bag = _unit(Counter({k: float(v) for k, v in words.items()})
                                    + Counter({s: float(v) for key, v in terms.items()
                                               for s in self._key_stems.get(key, ())}))
            likeness = _dot(self._topic_bags[topic.id], article_bag)
            score = (weights[0] + 0.2 * min(3, len(weights) - 1) + 0.1 * min(3, support)
                     + min(DESCRIPTION_BONUS, DESCRIPTION_WEIGHT * likeness))
            scores[topic.id] = TopicScore(topic.id, round(score, 3), evidence[:3])
        generic = self.profile.generic_concepts
        all_hits = [h for hs in found for h in hs]
        entities = frozenset(h.term for h in all_hits if h.concept not in generic)
        keywords = frozenset(h.term for h in all_hits if h.concept in generic)
        places = frozenset(h.term for h in all_hits if h.place)
        heads = frozenset(h.term for h in all_hits if h.term == h.concept)
        return MatchResult(scores, entities, keywords, places, self.threshold, terms, words,
                           frozenset(numbers), self._names(read),
                           mentioned_days(f"{title} {text}"), heads)

    def _names(self, read: list[tuple[list[Token], bool]]) -> frozenset[str]:
        """Name keys of capitalized words inside sentences (a capital at a sentence's start
        says nothing; a title-case headline marks no names), less the profile's own.
        Only on-topic articles are clustered, so only they pay for this."""
        names: set[str] = set()
        for tokens, is_title in read:
            named = [t.name for t in tokens[1:] if t.name]
            if named and not (is_title and _is_title_case(tokens)):
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


# Words that may stand before an official's surname without being a given name.
_TITLES = frozenset("""
mr mrs ms dr gen general adm admiral col colonel lt sen senator rep pm fm dm president
minister premier chancellor ambassador envoy spokesman spokeswoman chief deputy leader king
emir sheikh ayatollah rabbi judge justice secretary director head counterpart and or but
""".split()) | frozenset("""
господин госпожа генерал президент премьер министр посол глава лидер спикер аятолла раввин
""".split())


_MONTHS_EN = {m: i for i, names in enumerate((
    "jan january", "feb february", "mar march", "apr april", "may", "jun june", "jul july",
    "aug august", "sep sept september", "oct october", "nov november", "dec december"),
    start=1) for m in names.split()}
_MONTHS_RU = {m: i for i, m in enumerate((
    "января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября",
    "октября", "ноября", "декабря"), start=1)}
_EN_MONTH = "|".join(sorted(_MONTHS_EN, key=len, reverse=True))
_DAY_FIRST = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_EN_MONTH}|{'|'.join(_MONTHS_RU)})\b",
    re.IGNORECASE)
# Month first only when capitalized: "may 12 people" is no date.
_MONTH_FIRST = re.compile(
    rf"\b({'|'.join(m.capitalize() for m in sorted(_MONTHS_EN, key=len, reverse=True))}"
    rf"|{_EN_MONTH.upper()})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b")


def mentioned_days(text: str) -> frozenset[str]:
    """Calendar days named in the text, as "MM-DD" (years are left out: a dateline seldom
    gives one)."""
    out = set()
    for day, month in _DAY_FIRST.findall(text):
        m = _MONTHS_EN.get(month.lower()) or _MONTHS_RU.get(month.lower())
        if m and 1 <= int(day) <= 31:
            out.add(f"{m:02d}-{int(day):02d}")
    for month, day in _MONTH_FIRST.findall(text):
        m = _MONTHS_EN.get(month.lower())
        if m and 1 <= int(day) <= 31:
            out.add(f"{m:02d}-{int(day):02d}")
    return frozenset(out)


def _bare(surface: str) -> str:
    w = surface.lower().replace("’", "'")
    return w[:-2] if w.endswith("'s") else w


def _other_person(before: Token, given: frozenset[str], out: list[Hit | Token]) -> bool:
    """Whether the capitalized word before an official's bare surname is another given
    name ("Tony Bennett", "Amir Lapid"): not the official's, not a title, not a term."""
    surface = before.surface
    if not surface[:1].isupper() or before.stem in given:
        return False
    if surface.lower().rstrip(".") in _TITLES or before.stem in _TITLES:
        return False
    return not (out and isinstance(out[-1], Hit))  # "Prime Minister", "Israel's"


def _is_title_case(tokens: Iterable[Token]) -> bool:
    words = upper = 0
    for t in tokens:
        w = t.surface
        if len(w) > 3 and w[0].isalpha():
            words += 1
            upper += w[0].isupper()
    return words >= 3 and upper > 0.7 * words


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
