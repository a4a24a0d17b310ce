"""Reading a request body: each part within the body timeout (one timer a body, re-armed
for each further part), the timer gone once the body is in, and a cancellation from
elsewhere not taken for a timeout. The timeout runs on the event loop's clock (not the
app's injected Clock), so these wait for real, a few tenths of a second."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jobq import errors
from jobq.http.server import read_body

pytestmark = pytest.mark.anyio

MAX = 1000


def parts(*bodies: bytes, pause: float = 0.0, stall: bool = False) -> Any:
    """An ASGI `receive` giving BODIES as the parts of one body, PAUSE seconds apart; with
    STALL, the part after them never comes."""
    todo = list(bodies)

    async def receive() -> dict[str, Any]:
        if not todo:
            assert stall
            await asyncio.Event().wait()
        if pause:
            await asyncio.sleep(pause)
        body = todo.pop(0)
        return {"type": "http.request", "body": body, "more_body": stall or bool(todo)}

    return receive


async def test_a_body_in_parts_each_within_the_timeout_is_read_whole() -> None:
    # 4 parts 0.2 s apart: 0.8 s in all, over the 0.5 s each part has
    body = await read_body([], parts(b"a", b"b", b"c", b"d", pause=0.2), MAX, 0.5)
    assert body == b"abcd"


async def test_a_part_that_stalls_times_out() -> None:
    with pytest.raises(errors.RequestTimeout, match=r"within 0\.2 s"):
        await read_body([], parts(b"a", b"b", stall=True), MAX, 0.2)


async def test_the_timer_is_gone_once_the_body_is_in() -> None:
    assert await read_body([], parts(b"one part"), MAX, 0.1) == b"one part"
    await asyncio.sleep(0.3)  # the request goes on past the body timeout, not cancelled


async def test_a_cancellation_from_elsewhere_is_no_timeout() -> None:
    task = asyncio.ensure_future(read_body([], parts(b"a", stall=True), MAX, 30))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_body_over_the_limit_is_refused_part_by_part() -> None:
    with pytest.raises(errors.PayloadTooLarge):
        await read_body([], parts(b"x" * 600, b"x" * 600), MAX, 30)
    with pytest.raises(errors.PayloadTooLarge):  # as declared, before any part is read
        await read_body([(b"content-length", b"1001")], parts(stall=True), MAX, 30)


async def test_a_body_whose_declared_length_is_in_is_whole() -> None:
    """granian sends an empty last part after the body; once Content-Length bytes are in,
    the read does not wait for it (here it never comes)."""
    body = await read_body([(b"content-length", b"4")], parts(b"ab", b"cd", stall=True),
                           MAX, 1)
    assert body == b"abcd"
    with pytest.raises(errors.RequestTimeout):  # short of the declared length: it waits
        await read_body([(b"content-length", b"5")], parts(b"ab", b"cd", stall=True),
                        MAX, 0.1)
