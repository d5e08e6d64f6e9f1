"""Clustering on cases written for these tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from monitor.cluster import Features, Idf, Member, Vectors, compare, features, weigh
from monitor.cluster_index import ClusterIndex
from monitor.match import Matcher, load_profile
from monitor.normalize import canonical_url, content_hash

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load_profile())


class World:
    """Feeds articles through the index the way the pipeline does."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.index = ClusterIndex()
        self.next_entry = 1
        self.next_dev = 100

    def feats(self, title: str, text: str, lang: str) -> Features:
        return features(self.matcher.match(title, text), lang, title)

    def add(self, title: str, text: str, url: str, at: datetime = T0, lang: str = "en") -> int:
        f = self.feats(title, text, lang)
        url = canonical_url(url)
        h = content_hash(title, text)
        a = self.index.assign(url, h, at, f)
        dev = a.development_id
        if dev is None:
            dev = self.next_dev
            self.next_dev += 1
        self.index.add(Member(self.next_entry, dev, url, h, at, f))
        self.next_entry += 1
        return dev


STRIKE = (
    "Israeli jets strike air defence battery near Homs",
    "Syrian state media said Israeli warplanes fired missiles at an air defence unit "
    "outside Homs overnight, wounding two soldiers.",
)


def test_syndicated_and_tracking_copies_join(matcher: Matcher) -> None:
    w = World(matcher)
    d = w.add(*STRIKE, "https://one.example/news/strike-homs")
    assert w.add(*STRIKE, "https://two.example/wire/12345") == d
    assert (
        w.add(
            "Israeli jets hit air defence site near Homs — report",
            "Different text.",
            "https://one.example/news/strike-homs/amp?utm_source=tw",
        )
        == d
    )


def test_other_outlet_report_of_the_same_event_joins(matcher: Matcher) -> None:
    w = World(matcher)
    d = w.add(*STRIKE, "https://one.example/a")
    other = w.add(
        "Syria says Israeli missiles targeted air defences in Homs province",
        "Two soldiers were wounded when Israeli missiles struck an air defence "
        "position near Homs, the Syrian defence ministry said.",
        "https://three.example/b",
        T0 + timedelta(hours=2),
    )
    assert other == d


def test_report_in_russian_joins_the_english_one(matcher: Matcher) -> None:
    w = World(matcher)
    d = w.add(
        "Netanyahu and Putin discuss Iran in Kremlin phone call",
        "The Israeli prime minister and the Russian president spoke about Iran's "
        "nuclear programme and Syria, the Kremlin said.",
        "https://one.example/call",
    )
    ru = w.add(
        "Путин и Нетаньяху обсудили по телефону Иран и Сирию",
        "Президент России и премьер Израиля обсудили ядерную программу Ирана, сообщил Кремль.",
        "https://ria.example/call",
        T0 + timedelta(hours=1),
        lang="ru",
    )
    assert ru == d


def test_look_alike_event_weeks_later_is_new(matcher: Matcher) -> None:
    w = World(matcher)
    d = w.add(*STRIKE, "https://one.example/march")
    later = w.add(
        *[s.replace("two", "three") for s in STRIKE],
        "https://one.example/april",
        T0 + timedelta(days=30),
    )
    assert later != d


def test_unrelated_story_is_new(matcher: Matcher) -> None:
    w = World(matcher)
    d = w.add(*STRIKE, "https://one.example/a")
    assert (
        w.add(
            "IAEA board meets on Iran's enrichment",
            "Inspectors reported progress.",
            "https://one.example/b",
        )
        != d
    )


def test_features_survive_storage_as_json(matcher: Matcher) -> None:
    import json

    from monitor.cluster import features_from_json, features_to_json

    f = World(matcher).feats(*STRIKE, "en")
    assert features_from_json(json.loads(json.dumps(features_to_json(f)))) == f


def test_commentary_is_recognized_by_its_label() -> None:
    from monitor.cluster import is_commentary

    assert is_commentary("Analysis: what the Kremlin wants from Israel")
    assert is_commentary("OPINION — Iran's next move")
    assert is_commentary("Мнение: что дальше")
    assert not is_commentary("Analysts warn of escalation")


def test_commentary_joins_the_event_it_discusses_days_later(matcher: Matcher) -> None:
    w = World(matcher)
    d = w.add(*STRIKE, "https://one.example/strike")
    analysis = w.add(
        "Analysis: why Israel keeps hitting Syrian air defences",
        "Israel has hit such units near Homs dozens of times this year; officials point to "
        "concern over Iranian supplies reaching Hezbollah.",
        "https://two.example/analysis",
        T0 + timedelta(days=2),
    )
    assert analysis == d


def test_a_reaction_in_another_language_joins_the_event_it_answers(matcher: Matcher) -> None:
    """A reaction shares few words with the event (another speaker, other verbs); the
    lexicon's bilingual keys and the event's place carry it across languages."""
    w = World(matcher)
    d = w.add(*STRIKE, "https://one.example/strike")
    reaction = w.add(
        "МИД России осудил удар Израиля под Хомсом",
        "Российский МИД осудил израильский удар по позициям сирийской ПВО под Хомсом, "
        "назвав его нарушением суверенитета Сирии.",
        "https://ria.example/reaction",
        T0 + timedelta(hours=3),
        lang="ru",
    )
    assert reaction == d


def test_prune_forgets_old_articles_and_their_word_counts(matcher: Matcher) -> None:
    w = World(matcher)
    old = w.add(*STRIKE, "https://one.example/a", at=T0)
    weather = w.feats("Weather in Haifa", "Rain is expected.", "en")
    w.index.observe(50, T0, weather)
    # Entry 1 comes back as an update dated later: the old date must not prune it.
    w.index.add(
        Member(1, old, "https://one.example/a", "h", T0 + timedelta(days=2), w.feats(*STRIKE, "en"))
    )
    w.index.observe(51, T0 + timedelta(days=2), w.feats("Markets", "Prices rose.", "en"))
    w.index.prune(T0 + timedelta(days=1))
    assert set(w.index.members) == {1}
    assert w.index.idf.n == 2
    gone = Idf.keys(weather) - Idf.keys(w.feats(*STRIKE, "en"))
    assert gone and not gone & set(w.index.idf.df)
    assert all(v > 0 for v in w.index.idf.df.values())
    w.index.prune(T0 + timedelta(days=3))
    assert not w.index.members and w.index.idf.n == 0 and not w.index.idf.df


def test_background_keeps_only_the_latest_articles(matcher: Matcher) -> None:
    from monitor.cluster import ClusterParams

    index = ClusterIndex(ClusterParams(background=3))
    for i in range(1, 6):
        index.observe(
            i,
            T0 + timedelta(minutes=i),
            World(matcher).feats(
                f"Local story {i}", f"Council item number {i} was discussed.", "en"
            ),
        )
    assert index.idf.n == 3 and set(index._background) == {3, 4, 5}


def test_background_counted_late_is_the_background_counted_at_once(matcher: Matcher) -> None:
    """A poll observes far more off-topic articles than the background keeps; they are
    counted when the weights are next read, those pushed out meanwhile never. What that
    leaves must be what counting each at once leaves: the same articles, weights and
    stamp, whatever was held before (a member, an article observed again). The late
    index is given the keys packed, as parser workers send them."""
    from monitor.cluster import ClusterParams, pack_keys

    w = World(matcher)
    texts = [
        (f"Local story {i}", f"Council item {i} on {word} was discussed.")
        for i, word in enumerate("roads parks schools buses water rents trees".split())
    ]
    feats = [w.feats(t, x, "en") for t, x in texts]
    eager, late = (ClusterIndex(ClusterParams(background=3)) for _ in range(2))
    for index in (eager, late):
        index.observe(1, T0, feats[0])
        index.observe(2, T0, feats[1])
        index.add(Member(3, 9, None, "h3", T0, feats[2]))
    # then a poll's worth: more than the background holds, an entry of it again, the member
    batch = [(3, feats[5]), (4, feats[3]), (1, feats[4]), (5, feats[6]), (6, feats[0])]
    for entry_id, f in batch:
        eager.observe(entry_id, T0 + timedelta(hours=entry_id), f)
        eager.idf  # noqa: B018  (reading the weights counts what waits)
        late.observe_keys(entry_id, T0 + timedelta(hours=entry_id), pack_keys(Idf.keys(f)))
    for index in (eager, late):  # the next transaction's catch-up: nothing that old
        index.prune(T0 - timedelta(hours=1))
    assert late._waiting and list(late._background) != list(eager._background)
    for index in (eager, late):  # the pipeline placing entry 5 while it waits
        index.add(Member(5, 9, None, "h5", T0, feats[6]))
    assert (late.idf.n, late.idf.df, late.idf.stamp) == (eager.idf.n, eager.idf.df, eager.idf.stamp)
    assert list(late._background) == list(eager._background) == [1, 6]
    assert late.members.keys() == eager.members.keys() == {5}  # 3, observed again, is not
    late.prune(T0 + timedelta(hours=5, minutes=30))
    eager.prune(T0 + timedelta(hours=5, minutes=30))
    assert list(late._background) == list(eager._background) == [6]
    assert late.members == eager.members == {}  # 5 was placed at hour 0


def test_word_weights_and_vectors_hold_while_the_pool_is_unchanged(matcher: Matcher) -> None:
    """Placing a report takes it out of the background and adds it back as a member: the
    weights (and the vectors cached from them) must read the same; any real change of
    the pool must give new ones."""
    w = World(matcher)
    f = w.feats(*STRIKE, "en")
    w.index.observe(7, T0, f)
    idf = w.index.idf
    before, weight = idf.stamp, idf.get("w:strike")
    w.index.add(Member(7, 1, None, "h", T0, f))  # the pipeline placing entry 7
    assert idf.stamp == before and idf.get("w:strike") == weight
    w.index.observe(8, T0, w.feats("Strike at the port", "Dockers stopped work.", "en"))
    assert w.index.idf is idf  # (what was observed is counted when the weights are read)
    assert idf.stamp != before and idf.get("w:strike") != weight
    # assigning with vectors kept from an earlier placement gives what fresh ones give
    other = w.feats("Israeli jets strike near Damascus", "Syrian media said.", "en")
    kept = w.index.assign(None, "x", T0, other)
    w.index._vectors = Vectors(idf)
    assert w.index.assign(None, "x", T0, other) == kept


def test_the_crowd_counts_developments_with_a_report_within_hours(matcher: Matcher) -> None:
    """The crowd a report is placed in: developments (not reports) with a report within
    18 hours of it, as the index holds them, forgotten when their reports go."""
    w = World(matcher)
    f = w.feats(*STRIKE, "en")
    for entry_id, dev, hours in [(1, 1, 0), (2, 1, 1), (3, 2, 10), (4, 3, -17), (5, 4, 30)]:
        w.index.add(Member(entry_id, dev, None, f"h{entry_id}", T0 + timedelta(hours=hours), f))
    assert w.index.crowd(T0) == 3  # developments 1, 2 and 3; 4 is 30 hours away
    assert w.index.crowd(T0 + timedelta(hours=27)) == 2  # 2 and 4
    w.index.prune(T0)  # entry 4 goes
    assert w.index.crowd(T0) == 2
    # a crowd of other events makes the model less ready to join on shared words
    other = w.feats("Israeli jets strike near Homs again", "Syrian media said.", "en")
    near = {1: [w.index.members[1]]}
    quiet, busy = (weigh(other, T0, near, w.index.idf, crowd=n)[0].probability for n in (0, 20))
    assert busy < quiet


def test_word_weight_keys_read_from_stored_features_are_those_of_the_features() -> None:
    from monitor.cluster import features_from_json, features_to_json, keys_from_json

    m = Matcher(load_profile())
    for title, text in [
        ("Putin and Bennett meet in Sochi", "Talks on Syria and Iran, 2021."),
        ("Совет одобрил новые велодорожки", "План на 40 км к 2027 году."),
        ("", ""),
    ]:
        f = features(m.match(title, text), "en", title)
        stored = json.loads(json.dumps(features_to_json(f)))
        keys = keys_from_json(stored)
        assert len(keys) == len(set(keys)) and set(keys) == Idf.keys(f)
        assert set(keys) == Idf.keys(features_from_json(stored))


def test_reports_naming_days_weeks_apart_are_different_events(matcher: Matcher) -> None:
    """Published an hour apart (a feed catching up), told apart by the days they name."""
    w = World(matcher)
    text = (
        "DAMASCUS, {day}. Syrian state media said Israeli missiles struck the container "
        "terminal at Latakia port, setting containers ablaze."
    )
    d = w.add(
        "Israeli strike hits Latakia port",
        text.format(day="December 7"),
        "https://one.example/dec7",
    )
    same = w.add(
        "Syria: Israeli missiles hit Latakia port",
        text.format(day="7 December"),
        "https://two.example/dec7",
        T0 + timedelta(minutes=30),
    )
    other = w.add(
        "Israeli strike hits Latakia port",
        text.format(day="December 28"),
        "https://one.example/dec28",
        T0 + timedelta(hours=1),
    )
    assert same == d and other != d


def test_days_apart_reads_both_languages_and_the_new_year() -> None:
    from monitor.cluster import days_apart
    from monitor.text import mentioned_days

    assert mentioned_days("МОСКВА, 28 декабря. Суд") == {"12-28"}
    assert mentioned_days("Talks on Nov. 29; may 12 people") == {"11-29"}
    assert days_apart(frozenset({"12-07"}), frozenset({"12-28"}))
    assert not days_apart(frozenset({"12-31"}), frozenset({"01-01"}))
    assert not days_apart(frozenset(), frozenset({"01-01"}))


def test_reports_counting_other_days_of_a_running_story_are_different_events(
    matcher: Matcher,
) -> None:
    """A daily wrap of a war repeats its words; the day it counts tells the days apart,
    while another outlet's report of the same counted day joins."""
    w = World(matcher)
    text = (
        "Israeli jets struck Iran-linked depots near Damascus on day {n} of the war; Moscow "
        "said it was concerned and raised the strikes with the Israeli ambassador."
    )
    d = w.add("What we know on day 213 of the war", text.format(n=213), "https://one.example/213")
    same = w.add(
        "Russia voices concern over Israeli strikes near Damascus",
        text.format(n=213),
        "https://two.example/213",
        T0 + timedelta(minutes=40),
    )
    next_day = w.add(
        "What we know on day 216 of the war",
        text.format(n=216),
        "https://one.example/216",
        T0 + timedelta(hours=1),
    )
    assert same == d and next_day != d
    a, b = (w.feats(f"Day {n} of the war", text.format(n=n), "en") for n in (213, 216))
    assert "other days of the story (day 213/216)" in compare(a, b, {}).conflicts


def test_headlines_naming_other_places_are_other_events(matcher: Matcher) -> None:
    """Two strikes on airports, an hour apart and worded alike, are told apart by the
    places their headlines name; a reaction naming the capital for its government, with
    the town struck in its text, still joins its event."""
    w = World(matcher)
    text = (
        "Syria's transport ministry said Israeli missiles damaged the runway of {town} "
        "airport, where Iranian cargo flights had been landing, and flights were suspended."
    )
    aleppo = w.add(
        "Israeli missiles hit Aleppo airport", text.format(town="Aleppo"), "https://a.example/1"
    )
    damascus = w.add(
        "Israeli missiles hit Damascus airport",
        text.format(town="Damascus"),
        "https://a.example/2",
        T0 + timedelta(hours=1),
    )
    w = World(matcher)
    alone = w.add(
        "Israeli missiles hit Aleppo airport", text.format(town="Aleppo"), "https://a.example/1"
    )
    reaction = w.add(
        "Damascus condemns Israeli strike on airport",
        "The Syrian foreign ministry condemned the Israeli missile strike that put Aleppo "
        "airport out of service, where Iranian cargo flights had been landing.",
        "https://b.example/3",
        T0 + timedelta(minutes=30),
    )
    assert damascus != aleppo and reaction == alone


def test_a_headline_attributed_to_reports_is_not_a_reaction(matcher: Matcher) -> None:
    w = World(matcher)
    said = w.feats("Lavrov: Israel's strikes in Syria are unacceptable", "Text.", "en")
    reported = w.feats("Report: Russian S-300 fired at Israeli jets over Syria", "Text.", "en")
    ru = w.feats("СМИ: российский С-300 открыл огонь по израильским самолетам", "Текст.", "ru")
    assert said.reaction and not reported.reaction and not ru.reaction


def test_day_counts_read_both_languages_and_skip_years() -> None:
    from monitor.text import day_counts

    assert day_counts("What we know on day 214 of the invasion") == {214}
    assert day_counts("Война: 214-й день. На 215-й день войны") == {214, 215}
    assert day_counts("Independence Day 2026: parades; day 3 of talks") == {3}
    assert day_counts("Two days of talks") == frozenset()
    assert day_counts("Переговоры шли 2 дня") == frozenset()


def test_events_of_one_hour_sharing_only_the_head_actors_stay_apart(matcher: Matcher) -> None:
    """Published together (a first poll, a busy hour), two events that share nothing
    beyond "Israel" and "Syria" (a Kremlin meeting, a strike) are two events: the
    development is not even a candidate, whatever the model would say."""
    from monitor.cluster import ClusterParams, alike

    w = World(matcher)
    d = w.add(
        "Putin and Israel's prime minister discuss Syria in Kremlin talks",
        "The Russian president hosted the Israeli prime minister in Moscow.",
        "https://one.example/talks",
    )
    f = w.feats(
        "Israeli jets strike weapons depot near Damascus",
        "Syrian state media said Israeli missiles hit an Iran-linked depot.",
        "en",
    )
    assert w.index.assign("https://two.example/strike", "h2", T0, f).development_id is None
    members = list(w.index.members.values())
    assert members and all(m.development_id == d for m in members)
    from monitor.cluster import _evidence

    evidence, _, _ = _evidence(f, T0, members, w.index.idf)
    assert evidence["specifics"] == 0 and not alike(evidence, ClusterParams())


def test_the_evidence_names_what_contradicts_a_join(matcher: Matcher) -> None:
    """Another weekday and a repeat ("again") count against joining, and the reasons a
    weighed development gives are the model's parts of the decision."""
    from monitor.cluster import builtin_join_model, weigh

    w = World(matcher)
    d = w.add(
        "Israeli jets strike air defence battery near Homs",
        "Syrian state media said Israeli warplanes fired missiles at an air defence unit "
        "outside Homs early on Tuesday, wounding two soldiers.",
        "https://one.example/tuesday",
    )
    f = w.feats(
        "Israeli jets strike air defence battery near Homs again",
        "Syrian state media said Israeli warplanes fired missiles at an air defence unit "
        "outside Homs early on Friday, wounding three soldiers.",
        "en",
    )
    (weighed,) = weigh(f, T0 + timedelta(hours=1), {d: list(w.index.members.values())}, w.index.idf)
    model = builtin_join_model()
    parts = model.parts(weighed.evidence)
    assert weighed.evidence["weekday_conflict"] == 1 and parts["weekday_conflict"] < 0
    assert weighed.evidence["again"] == 1 and parts["again"] <= 0
    assert weighed.evidence["new_numbers"] > 0 and parts["new_numbers"] < 0
    reasons = dict(weighed.reasons(model, top=len(parts)))
    assert (
        reasons == parts
        and abs(model.log_odds(weighed.evidence) - model.typical - sum(parts.values())) < 1e-9
    )


def test_a_join_model_with_an_unknown_feature_is_refused() -> None:
    from monitor.cluster import parse_join_model

    with pytest.raises(ValueError, match=r"unknown features.*moon_phase"):
        parse_join_model({"bias": 0.0, "weights": {"sim_max": 1.0, "moon_phase": 2.0}}, "mine")
    model = parse_join_model({"bias": -1.0, "weights": {"sim_max": 4.0}})
    assert model.log_odds({"sim_max": 0.5, "gap": 3.0}) == 1.0


def test_the_same_leaders_meeting_elsewhere_or_by_phone_are_other_events(matcher: Matcher) -> None:
    """The same two leaders in two headlines, an hour apart: a meeting in another place
    ("in the Kremlin" after "in Sochi"), or a phone call after a meeting, is another
    event; a report that names the meeting's town, or puts it only in the country, still
    joins it, and so does a town of a visit placed in a whole country."""
    talks = (
        "The prime minister and the president discussed Syria and Iran's nuclear "
        "programme, Israeli officials said."
    )
    sochi = ("Netanyahu and Putin hold talks in Sochi", talks)
    w = World(matcher)
    first = w.add(*sochi, "https://a.example/sochi")
    kremlin = w.add(
        "Netanyahu meets Putin in the Kremlin", talks, "https://b.example/kremlin", T0 + H
    )
    phone = w.add(
        "Netanyahu and Putin speak by phone", talks, "https://c.example/phone", T0 + 2 * H
    )
    assert len({first, kremlin, phone}) == 3
    w = World(matcher)
    first = w.add(*sochi, "https://a.example/sochi")
    named = w.add(
        "Netanyahu meets Putin in the Kremlin's residence",
        talks + " They met at the president's residence in Sochi.",
        "https://b.example/residence",
        T0 + H,
    )
    country = w.add(
        "Netanyahu and Putin hold talks in Russia", talks, "https://c.example/ru", T0 + 2 * H
    )
    assert named == first and country == first
    w = World(matcher)  # a visit to a country spans its towns
    visit = w.add(
        "Putin in Israel: ceremony in Netanya, then talks with Netanyahu",
        talks,
        "https://a.example/visit",
    )
    town = w.add(
        "Putin and Netanyahu discuss Iran in Jerusalem", talks, "https://b.example/jlm", T0 + H
    )
    assert town == visit
    # and `monitor explain` says why
    said = compare(
        w.feats("Netanyahu meets Putin in the Kremlin", talks, "en"), w.feats(*sochi, "en"), {}
    )
    assert "other venues (russia/sochi)" in said.conflicts
    said = compare(
        w.feats("Netanyahu and Putin speak by phone", talks, "en"), w.feats(*sochi, "en"), {}
    )
    assert "a phone call and a meeting" in said.conflicts


def test_a_venue_is_a_town_or_a_seat_of_power_never_a_country(matcher: Matcher) -> None:
    def venues(title: str) -> set[str]:
        return set(matcher.match(title, "Russia and Israel discussed Syria.").venues)

    assert venues("Putin and Bennett hold talks in Sochi") == {"w:sochi"}
    assert venues("Bennett makes surprise trip to Moscow") == {"e:russia"}
    assert venues("Путин провел переговоры с Беннетом в Кремле") == {"e:russia"}
    assert venues("Israeli jets strike near Damascus") == {"e:damascus"}
    # a country is no venue, but says that the event may span it (a visit)
    assert venues("Israeli jets strike targets in Syria") == {"c:syria"}
    assert venues("Russian troops advance in Ukraine") == {"c:ukrain"}
    assert not venues("Netanyahu to Putin: Iran must be stopped")  # an addressee
    assert not venues("В Кремле заявили о беспокойстве из-за ударов по Сирии")  # a speaker


def test_a_lone_report_shares_too_little_to_gather_other_news(matcher: Matcher) -> None:
    """A development of one report, in the new one's language, that reads less than
    `lone` alike is no candidate: a minister's remark on the war does not gather the next
    hour's news of the same war."""
    from monitor.cluster import ClusterParams

    w = World(matcher)
    for i, (title, text) in enumerate(  # the day's other news, as word weights see it
        [
            ("Israeli minister visits Moscow", "Russia and Israel discussed the war."),
            ("Russia says its forces advanced", "The ministry said the war went on."),
            ("Israel's cabinet meets", "Ministers said Israel would stay neutral."),
            ("Ukraine asks for air defence", "Officials said the war needs more of it."),
        ]
    ):
        w.index.observe(900 + i, T0, w.feats(title, text, "en"))
    remark = w.add(
        "Israel's foreign minister: Russia committed war crimes in Bucha",
        "The minister said Israel could not stay silent over the images from the town.",
        "https://a.example/remark",
    )
    drones = w.add(
        "Iran ships attack drones to Russia, US says",
        "Washington said Iranian-made drones had hit power stations; Israeli officials "
        "are weighing air defence for Kyiv.",
        "https://b.example/drones",
        T0 + H,
    )
    assert drones != remark
    assert ClusterParams().lone > ClusterParams().least
