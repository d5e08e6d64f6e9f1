"""Whose row leases are stale: a process that died without releasing them.

A worker names itself "host:pid:tag" (pipeline.worker_id). A lease held by a process on
this host whose pid no longer runs is a crashed process's, and is taken over at once
rather than when it expires (five minutes for feeds). On SQLite, where only one process
may use the database at a time (db.single_worker), every other owner's lease is stale.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any


def dead_on_this_host(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False  # this process: alive (another pipeline of it, say)
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def stale_owners(single_worker: bool) -> Callable[[str], bool]:
    """The test of staleness for this database: every foreign owner when this process is
    the only one allowed (SQLite), else the dead processes of this host."""
    if single_worker:
        return lambda owner: True
    return dead_on_this_host


def claimable(s: Any, model: Any, owner: str, now: datetime, stale: Callable[[str], bool]) -> Any:
    """The condition on `model`'s lease columns (lease_owner, lease_until) for rows this
    owner may claim: unleased, expired, its own, or held by an owner `stale` says is dead.
    Feeds and deliveries are leased alike."""
    from sqlalchemy import or_, select

    held = s.execute(
        select(model.lease_owner)
        .where(model.lease_until >= now, model.lease_owner != owner)
        .distinct()
    )
    dead = [o for (o,) in held if o and stale(o)]
    return or_(
        model.lease_until.is_(None),
        model.lease_until < now,
        model.lease_owner == owner,
        model.lease_owner.in_(dead),
    )
