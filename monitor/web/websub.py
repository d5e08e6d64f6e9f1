"""The desk's WebSub endpoint, `[websub] callback` + `/FEED_ID` (hubs.py does the work):
a hub's GET confirms a subscription by echoing its challenge; its POST is a pushed
document, handed to the service when its signature is right. A hub signs what it sends,
so these paths ask no sign-in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from monitor import hubs

router = APIRouter(include_in_schema=False)
MAX_PUSH = 10 * 2**20


@router.get("/websub/{feed_id}", response_class=PlainTextResponse)
def confirm(
    request: Request,
    feed_id: int,
    mode: Annotated[str, Query(alias="hub.mode")],
    topic: Annotated[str, Query(alias="hub.topic")],
    challenge: Annotated[str, Query(alias="hub.challenge", max_length=1000)] = "",
    lease: Annotated[str | None, Query(alias="hub.lease_seconds")] = None,
) -> str:
    if not hubs.verify(request.app.state.db, feed_id, mode, topic, lease, datetime.now(UTC)):
        raise HTTPException(404, "no such subscription was asked for")
    return challenge


@router.post("/websub/{feed_id}")
async def push(request: Request, feed_id: int) -> Response:
    body = await request.body()
    if len(body) > MAX_PUSH:
        raise HTTPException(413, "larger than the monitor reads")
    handle = getattr(request.app.state, "on_push", None)
    if handle is None:  # the desk alone (`monitor web`): the service must take it
        raise HTTPException(503, "no service here to process pushes; the hub may retry")
    result = await run_in_threadpool(
        hubs.pushed,
        request.app.state.db,
        feed_id,
        body,
        request.headers.get("x-hub-signature"),
        request.headers.get("content-type"),
    )
    if result is not None:
        handle(result)
    return Response(status_code=202)  # a bad signature too: WebSub says to ignore it quietly
