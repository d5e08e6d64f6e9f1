"""Text as the matcher and the clusterer read it: sentences, words, stems, names, dates.
Pure; English and Russian.

Sentences split at end punctuation, line breaks and spaced separators (a headline's
clauses count apart); words are Snowball-stemmed by script (PyStemmer), so inflected
forms meet; a capitalized word gets a spelling skeleton (`name_key`) that Latin and
Cyrillic spellings of one name share; `mentioned_days` reads calendar dates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

import Stemmer

WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)


# Sentence breaks: whitespace after . ! ? ;, line breaks, or a spaced separator (| • · — –).
# Written to start with \s, so the engine skips to the next whitespace in C rather than
# trying three alternatives at every character (~3x faster; the same splits as
# (?<=[.!?;])\s+|[\n\r]+|\s+[|•·—–]\s+ , which tests/test_match.py checks).
SENTENCE = re.compile(r"\s(?:(?<=[.!?;]\s)\s*|(?<=[\n\r])[\n\r]*|\s*[|•·—–]\s+)")


CYRILLIC = re.compile(r"[\u0400-\u04ff]")


_EN = Stemmer.Stemmer("english")


_RU = Stemmer.Stemmer("russian")


_DIGITS = re.compile(r"^\d+$")


STOPWORDS = frozenset(
    """
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
""".split()
)


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
    re.IGNORECASE,
)


def is_roundup(title: str) -> bool:
    """A headline labelled as a roundup, digest or press review (in English or Russian)."""
    return bool(_ROUNDUP.match(title))


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Lower-case Snowball stem, Russian or English by the word's script."""
    w = word.lower().replace("ё", "е").replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if CYRILLIC.search(w):
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
    # What clustering counts the word as: "~concept" when the lexicon knows it (so that
    # "consulate" and "консульство" are one), else its stem.
    key: str = ""


# Capitalized in English without being names.
_NOT_NAMES = frozenset(
    """
january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday mr mrs ms dr
""".split()
)


# Spellings that differ between transliterations of one name, made one: kh/h, ch/c, sh/s.
_DIGRAPHS = re.compile(r"kh|ch|sh|zh|ts|tz|ph|ck|dzh|x|w|q|j|g")


_DIGRAPH_MAP = {
    "kh": "h",
    "ch": "c",
    "sh": "s",
    "zh": "z",
    "ts": "c",
    "tz": "c",
    "ph": "f",
    "ck": "k",
    "dzh": "y",
    "x": "ks",
    "w": "v",
    "q": "k",
    "j": "y",
    "g": "h",  # Russian writes an English h as г: "Hitler", "Гитлер"
}


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


def name_of(token_stem: str, surface: str, kind: int) -> str:
    if kind != WORD or not surface[:1].isupper() or (surface.isupper() and len(surface) < 4):
        return ""
    if surface.lower() in _NOT_NAMES:
        return ""
    return name_key(token_stem)


def kind_of(token_stem: str, surface: str) -> int:
    if _DIGITS.match(token_stem):
        # "5 soldiers" counts as much as "five soldiers"; 0 and 1 say nothing.
        return NUMBER if len(token_stem) >= 2 or token_stem > "1" else SKIP
    if len(token_stem) > 1 and token_stem not in STOPWORDS and surface.lower() not in STOPWORDS:
        return WORD
    return SKIP


def word_stem(word: str) -> str:
    """stem(), except that a number written as a word stands for its digits."""
    return NUMBER_WORDS.get(word.lower()) or stem(word)


def tokenize(text: str) -> list[Token]:
    return [Token(st, w, kind_of(st, w)) for w in WORD_RE.findall(text) for st in (word_stem(w),)]


def sentences(title: str, text: str) -> list[tuple[str, bool]]:
    """(sentence, is_headline): the headline's clauses first, then the body's sentences."""
    out = [(s.strip(), True) for s in SENTENCE.split(title) if s.strip()]
    out += [(s.strip(), False) for s in SENTENCE.split(text) if s.strip()]
    return out


# Words that may stand before an official's surname without being a given name.
TITLES = frozenset(
    """
mr mrs ms dr gen general adm admiral col colonel lt sen senator rep pm fm dm president
minister premier chancellor ambassador envoy spokesman spokeswoman chief deputy leader king
emir sheikh ayatollah rabbi judge justice secretary director head counterpart and or but
""".split()
) | frozenset(
    """
господин госпожа генерал президент премьер министр посол глава лидер спикер аятолла раввин
""".split()
)


_MONTHS_EN = {
    m: i
    for i, names in enumerate(
        (
            "jan january",
            "feb february",
            "mar march",
            "apr april",
            "may",
            "jun june",
            "jul july",
            "aug august",
            "sep sept september",
            "oct october",
            "nov november",
            "dec december",
        ),
        start=1,
    )
    for m in names.split()
}


_MONTHS_RU = {
    m: i
    for i, m in enumerate(
        (
            "января",
            "февраля",
            "марта",
            "апреля",
            "мая",
            "июня",
            "июля",
            "августа",
            "сентября",
            "октября",
            "ноября",
            "декабря",
        ),
        start=1,
    )
}


_EN_MONTH = "|".join(sorted(_MONTHS_EN, key=len, reverse=True))


_DAY_FIRST = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_EN_MONTH}|{'|'.join(_MONTHS_RU)})\b",
    re.IGNORECASE,
)


# Month first only when capitalized: "may 12 people" is no date.
_MONTH_FIRST = re.compile(
    rf"\b({'|'.join(m.capitalize() for m in sorted(_MONTHS_EN, key=len, reverse=True))}"
    rf"|{_EN_MONTH.upper()})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\b"
)


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


def bare(surface: str) -> str:
    w = surface.lower().replace("’", "'")
    return w[:-2] if w.endswith("'s") else w


def is_title_case(tokens: Iterable[Token]) -> bool:
    words = upper = 0
    for t in tokens:
        w = t.surface
        if len(w) > 3 and w[0].isalpha():
            words += 1
            upper += w[0].isupper()
    return words >= 3 and upper > 0.7 * words


# A wire dateline opens the text with a place and the day of writing: "MOSCOW, July 21
# (Reuters) -", "AMMAN, Dec 28 (Reuters) -", "BEIJING, Dec. 5 (Xinhua) --", "Москва.
# 7 декабря. INTERFAX.RU -", "ДАМАСК, 20 янв — РИА Новости." It is the report's own date,
# kept apart from the days a text merely mentions (a hearing "set for July 28").
_DATELINE_EN = re.compile(
    rf"^\W*[A-Z][A-Za-z .'’-]{{1,40}},\s*(?:[A-Z][a-z]+,\s*)?({_EN_MONTH})\.?\s+(\d{{1,2}})\b",
    re.IGNORECASE,
)
_DATELINE_RU = re.compile(r"^\W*[А-ЯЁ][А-Яа-яЁё .-]{1,40}[.,]\s*(\d{1,2})\s+([а-яё]{3,9})\.?")
_RU_MONTH_STEMS = {m[:3]: i for m, i in _MONTHS_RU.items()}


def dateline(text: str) -> str:
    """The day of a wire dateline opening `text`, as "MM-DD", or ""."""
    m = _DATELINE_EN.match(text)
    if m:
        month, day = _MONTHS_EN.get(m.group(1).lower()), int(m.group(2))
    else:
        m = _DATELINE_RU.match(text)
        if not m:
            return ""
        word = m.group(2).lower()
        month, day = _MONTHS_RU.get(word) or _RU_MONTH_STEMS.get(word[:3]), int(m.group(1))
    return f"{month:02d}-{day:02d}" if month and 1 <= day <= 31 else ""


_WEEKDAYS = {
    **dict.fromkeys(("monday", "понедельник", "понедельника"), "mon"),
    **dict.fromkeys(("tuesday", "вторник", "вторника"), "tue"),
    **dict.fromkeys(("wednesday", "среда", "среду", "среды"), "wed"),
    **dict.fromkeys(("thursday", "четверг", "четверга"), "thu"),
    **dict.fromkeys(("friday", "пятница", "пятницу", "пятницы"), "fri"),
    **dict.fromkeys(("saturday", "суббота", "субботу", "субботы"), "sat"),
    **dict.fromkeys(("sunday", "воскресенье", "воскресенья"), "sun"),
}
# The stems of the names of weekdays: a cheap first test on tokens already stemmed (a
# regular expression over the whole text cost a tenth of matching's time).
WEEKDAY_STEMS = frozenset(stem(w) for w in _WEEKDAYS)


def weekdays_of(words: Iterable[str]) -> frozenset[str]:
    """Days of the week named ("early Tuesday", "в ночь на понедельник"), of words whose
    stem is in WEEKDAY_STEMS ("среди" stems like "среду"): reports of one event agree on
    them; a look-alike weeks later seldom does."""
    return frozenset(
        d for w in words if (d := _WEEKDAYS.get(w.lower().split("'")[0].split("’")[0]))
    )


# A headline or lead that says the event repeats an earlier one: "strikes Latakia port
# again", "second attack this month", "новый удар", "повторно", "очередной раунд".
_AGAIN = re.compile(
    r"\b(?:again|once more|anew|second|third|fourth|fifth|another|fresh|renewed|repeated|"
    r"latest|new round|снова|вновь|повторн\w*|очередн\w*|втор\w+ раз|ещ[её] од(?:ин|н\w*)|"
    r"нов\w+ удар\w*)\b",
    re.IGNORECASE,
)


# The same words, lower case, behind a look at the first letter: the engine then tries
# the alternatives only where one of them can start (three times faster).
_AGAIN_LOWER = re.compile(r"\b(?=[aofrlnstсвпоеён])" + _AGAIN.pattern[2:])


def says_again(text: str) -> bool:
    """Whether `text` presents its event as a repeat of an earlier one of the same kind."""
    return bool(_AGAIN_LOWER.search(text.lower()))


# "Day 214 of the invasion", "on day 3 of the strike", "на 214-й день войны": which day of a
# running story a report tells. A year after "Day" is a holiday's ("Independence Day 2026");
# "за 2 дня" (in two days) is a span: the Russian count needs its ordinal ending.
_DAY_COUNT = re.compile(
    r"\b(?:day|день)\s+(\d{1,7})\b|\b(\d{1,7})-?(?:й|ый|ой|го|ого|м|ом)\s+(?:день|дня|дне)\b",
    re.IGNORECASE,
)


def day_counts(text: str) -> frozenset[int]:
    """The days of a running story that `text` (a headline and lead) counts: "what we know
    on day 214" and "day 213" are two days' news, however alike their words."""
    if "day" not in text and "Day" not in text and "дн" not in text and "ден" not in text:
        return frozenset()
    out = set()
    for latin, cyrillic in _DAY_COUNT.findall(text):
        n = int(latin or cyrillic)
        if not 1800 <= n < 2200:
            out.add(n)
    return frozenset(out)


# Numbers written as words, so "five soldiers", "5 troops" and "пятеро военных" meet.
NUMBER_WORDS = {
    **{
        w: str(n)
        for n, words in {
            2: "two два две двое двух двумя",
            3: "three три трое трех трёх тремя",
            4: "four четыре четверо четырех четырёх",
            5: "five пять пятеро пяти пятью",
            6: "six шесть шестеро шести",
            7: "seven семь семеро семи",
            8: "eight восемь восьми",
            9: "nine девять девяти",
            10: "ten десять десяти",
            11: "eleven одиннадцать",
            12: "twelve двенадцать",
            15: "fifteen пятнадцать",
            20: "twenty двадцать двадцати",
            30: "thirty тридцать",
            40: "forty сорок",
            50: "fifty пятьдесят",
            100: "hundred сто",
        }.items()
        for w in words.split()
    }
}


def parse_lexicon(text: str) -> dict[str, str]:
    """The bilingual lexicon (data/lexicon.txt: "concept: english forms | russian forms"
    per line) as stem → "~concept". A stem two concepts claim is left out: it is
    ambiguous, and a wrong bridge between languages costs more than a missing one."""
    claimed: dict[str, set[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        concept, _, forms = line.partition(":")
        for form in forms.replace("|", " ").split():
            st = stem(form)
            if len(st) > 2 and not _DIGITS.match(st):
                claimed.setdefault(st, set()).add(concept.strip())
    return {st: "~" + next(iter(cs)) for st, cs in claimed.items() if len(cs) == 1}


@lru_cache(maxsize=1)
def builtin_lexicon() -> dict[str, str]:
    """The lexicon shipped in monitor/data/lexicon.txt (empty if it is absent)."""
    from importlib import resources

    try:
        text = resources.files("monitor").joinpath("data/lexicon.txt").read_text("utf-8")
    except FileNotFoundError:
        return {}
    return parse_lexicon(text)
