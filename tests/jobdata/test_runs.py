"""A job token's write of records lands only while the token's run is still its job's:
authentication checks the run, and the append checks it again inside its own transaction,
since a lost worker's job may be requeued, or requeued and claimed again, in between.
Real storage of both backends."""

from __future__ import annotations

from typing import Any

import pytest

from jobq import errors
from jobq.core.validation import new_job
from jobq.domain.records import StartRequest
from jobq.domain.records_data import Kind, parse_batch
from jobq.storage.chunks import Prepared, StreamRef

pytestmark = pytest.mark.anyio
P = 11


def _one_item(index: int) -> Prepared:
    return Prepared.of(parse_batch(Kind.ITEMS, b'{"a": 1}\n', index))


async def test_a_write_for_another_run_stores_nothing(storage: Any) -> None:
    await storage.push(P, [new_job({"spider": "s"}, "line 1")], "admin")
    claimed = await storage.start_job(P, StartRequest(), "admin")
    assert claimed is not None
    key, meta = claimed
    run = meta["running_time"]
    stream = StreamRef(key, Kind.ITEMS)
    chunks = storage.chunk_store()
    appended = await chunks.append(stream, 0, _one_item(0), False, None, run, run=run)
    assert appended.placement.stored == 1
    # the job runs another run than the token's (it was requeued and claimed again)
    with pytest.raises(errors.Unauthorized, match="claimed again"):
        await chunks.append(stream, 1, _one_item(1), False, None, run, run=run - 1)
    assert (await chunks.head(stream)).next_index == 1
    # a write bound to no run (an API key) is judged by the job's state alone
    appended = await chunks.append(stream, 1, _one_item(1), False, None, run)
    assert appended.placement.stored == 1


async def test_a_write_for_a_requeued_run_stores_nothing(storage: Any) -> None:
    (pushed,) = await storage.push(P, [new_job({"spider": "s"}, "line 1")], "admin")
    stream = StreamRef(pushed.key, Kind.ITEMS)
    chunks = storage.chunk_store()
    with pytest.raises(errors.Unauthorized, match="put back to pending"):
        await chunks.append(stream, 0, _one_item(0), False, None, 0, run=1)
    with pytest.raises(errors.Conflict, match="is pending"):
        await chunks.append(stream, 0, _one_item(0), False, None, 0)
    assert await chunks.head(stream) is None
