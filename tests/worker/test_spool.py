"""The on-disk spool between a job's pipe and the server: order, batches by index, files
removed once acknowledged, and back-pressure when the budget is spent."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from jobq.worker import spool
from jobq.worker.spool import Budget, Stream


def test_batches_come_in_order_and_acked_segments_go(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool, "SEGMENT_BYTES", 100)
    stream = Stream(tmp_path, "items", Budget(10_000))
    lines = [f'{{"n":{i}}}'.encode() for i in range(50)]
    for line in lines:
        stream.append(line)
    assert len(list(tmp_path.iterdir())) > 3  # several segments
    seen: list[bytes] = []
    while (batch := stream.batch(7, 10_000)) is not None:
        assert batch.start == len(seen)
        assert len(batch.lines) <= 7
        seen += batch.lines
        stream.ack(batch)
    assert seen == lines
    assert stream.pending == 0
    assert len(list(tmp_path.iterdir())) <= 1  # only the segment still written to
    stream.append(b'{"n":50}')
    batch = stream.batch(10, 10_000)
    assert batch is not None and (batch.start, batch.lines) == (50, [b'{"n":50}'])
    stream.close()


def test_a_batch_holds_at_most_max_bytes_but_at_least_one_record(tmp_path: Path) -> None:
    stream = Stream(tmp_path, "logs", Budget(10_000))
    stream.append(b"x" * 300)
    stream.append(b"y" * 10)
    batch = stream.batch(100, 50)
    assert batch is not None and batch.lines == [b"x" * 300]
    stream.ack(batch)
    batch = stream.batch(100, 50)
    assert batch is not None and (batch.start, batch.lines) == (1, [b"y" * 10])
    stream.close()


def test_a_full_budget_blocks_the_writer_until_acknowledged(tmp_path: Path) -> None:
    budget = Budget(100)
    stream = Stream(tmp_path, "items", budget)
    for _ in range(9):
        stream.append(b"x" * 10)  # 11 bytes each with the newline: 99 in all
    appended = threading.Event()

    def writer() -> None:
        stream.append(b"z" * 10)
        appended.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert not appended.wait(0.3), "the budget is spent: the writer must wait"
    batch = stream.batch(3, 10_000)
    assert batch is not None
    stream.ack(batch)
    assert appended.wait(5), "acknowledged records free the budget"
    thread.join()
    assert stream.appended == 10 and budget.used == 7 * 11
    stream.close()
