"""`monitor topics derive`: a draft profile from an article of our own."""

from __future__ import annotations

import tomllib
from importlib import resources

from monitor.derive import derive
from monitor.match import Matcher
from monitor.profile import parse_profile

ARTICLE = """Hezbollah chief warns Israel after strike on Lebanese border village
Hezbollah's leader said on Sunday that the group would answer an Israeli strike that hit a
village in southern Lebanon. Israel said its jets targeted a Hezbollah weapons depot.
The Lebanese army deployed along the Litani River, and Nabil Haddad of the UN mission
urged calm. Iran's foreign minister called Hezbollah a pillar of resistance against Israel.
"""


def base() -> dict[str, object]:
    text = resources.files("monitor").joinpath("data/topics.toml").read_text("utf-8")
    return tomllib.loads(text)


def test_draft_is_a_valid_profile_built_from_the_article() -> None:
    draft = derive(ARTICLE, base())
    data = tomllib.loads(draft)
    profile = parse_profile(data)
    ids = [t.id for t in profile.topics]
    assert ids[0] == "hezbollah-israel"  # the pair the article repeats most
    assert "russia" not in " ".join(ids)  # nothing the article does not discuss
    assert "Nabil Haddad" in data["concepts"]["draft_names"]["terms"]
    assert "Litani River" in data["concepts"]["draft_names"]["terms"]
    m = Matcher(profile)
    assert m.match("Israel and Hezbollah trade fire", "").relevant
    assert not m.match("Israel hosts a film festival", "").relevant
