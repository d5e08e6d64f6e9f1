"""The topics page: the active profile readable, and a draft previewed on the entries a
real poll stored, beside what the active profile decided (SQLite and PostgreSQL)."""

from __future__ import annotations

import tomllib

from tests import test_web
from tests.test_web import Desktop, csrf_of, post

desktop = test_web.desktop  # the desk over a polled database, as the fixture of this module

CYCLING = """
[concepts.cycling]
terms = ["bicycle|bicycles|lanes|велосипед"]

[[topics]]
id = "cycling"
title = "Cycling in the city"
description = "Bicycle lanes."
require = [["cycling"]]
"""


def without(profile: str, topic: str) -> str:
    parts = profile.split("[[topics]]")
    return "[[topics]]".join(p for p in parts if f'id = "{topic}"' not in p)


def test_the_active_profile_is_readable(desktop: Desktop) -> None:
    page = desktop.get("/topics").text
    assert "Russia–Israel relations" in page and "russia + israel" in page
    profile = desktop.get("/topics.toml").text
    assert {t["id"] for t in tomllib.loads(profile)["topics"]} >= {"syria", "hezbollah"}


def test_a_draft_is_previewed_beside_what_the_active_profile_did(desktop: Desktop) -> None:
    page = desktop.get("/topics").text
    token, active = csrf_of(page), desktop.get("/topics.toml").text
    same = post(desktop, "/topics/preview", csrf=token, draft=active, days="30")
    assert same.status_code == 200
    assert "with the draft only 0, with the active profile only 0" in same.text

    added = post(desktop, "/topics/preview", csrf=token, draft=active + CYCLING, days="30")
    assert "The draft would add (6)" in added.text  # the six local news items
    assert "Local news 3" in added.text and '<span class="topic">cycling</span>' in added.text

    no_strikes = active
    for topic in ("syria", "regional-security", "hezbollah"):  # ("Iran-linked": a militia)
        no_strikes = without(no_strikes, topic)
    dropped = post(desktop, "/topics/preview", csrf=token, draft=no_strikes, days="30").text
    assert "The draft would drop (2)" in dropped  # the strike, told by two outlets
    assert "Israeli jets strike weapons depot near Damascus" in dropped

    broken = post(desktop, "/topics/preview", csrf=token, draft="[[topics]\n<script>", days="7")
    assert broken.status_code == 422 and "not TOML" in broken.text
    assert "&lt;script&gt;" in broken.text and "<script>" not in broken.text
    unknown = (
        active + '\n[[topics]]\nid = "x"\ntitle = "x"\ndescription = ""\nrequire = [["nope"]]\n'
    )
    bad = post(desktop, "/topics/preview", csrf=token, draft=unknown, days="7")
    assert bad.status_code == 422 and "unknown concept" in bad.text
    assert post(desktop, "/topics/preview", csrf="0" * 64, draft=active).status_code == 403
