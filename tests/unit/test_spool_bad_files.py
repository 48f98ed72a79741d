"""Spool files that cannot be read: which are kept for a retry, which are put aside at
once, and how a long-running reader backs off (spool/retry.py)."""

import os
import time

import pytest

from spool.format import (
    MAX_SPOOL_BYTES,
    SpoolFileRefused,
    SpoolFormatError,
    read_record,
)
from spool.ingest import SETTLE_SECONDS, ingest_spool
from spool.retry import MAX_DELAY_SECONDS, RetryBook
from tests.support.fakes import FakeScheduler, add_job
from tests.unit.test_spool import end


@pytest.mark.parametrize("content, refused", [
    (b'{"format": 3, "job_id": ', False),                  # cut short: may still come
    (b"", False),                                           # created, not written yet
    (b'{"format": 3, "note": "caf\xc3', False),             # cut inside a character
    (b"\xff\xfe\x00\x01binary\x80", True),                  # not UTF-8 text
    (b'["a", "list"]', True),                               # whole JSON, no record
    (b'{"format": 3, "job_id": "seven"}', True),            # a record's field mistyped
    (b'{"format": 3}' + b" " * MAX_SPOOL_BYTES, True),      # larger than any record
])
def test_read_record_tells_a_file_still_coming_from_one_that_never_will(tmp_path, content,
                                                                         refused):
    path = tmp_path / "1.json"
    path.write_bytes(content)
    with pytest.raises(SpoolFormatError) as raised:
        read_record(path)
    assert isinstance(raised.value, SpoolFileRefused) is refused, raised.value
    assert "\n" not in str(raised.value)


def test_files_that_can_never_be_records_are_put_aside_and_the_rest_goes_on(gw):
    gw.slurm = FakeScheduler()
    job = add_job(gw, model_files={"w": "x"})
    spool = gw.layout.spool
    (spool / "900.json").write_bytes(b"\xff\xfe not text \x80\x81")
    (spool / "901.json").write_bytes(b"{}" + b" " * (2 * MAX_SPOOL_BYTES))
    (spool / "902.json").write_text('{"format": 3, "job_id": ')
    end(gw, job, 0)
    report = ingest_spool(gw)
    assert report.finished == [job] and gw.jobs.get(job).state == "COMPLETED"
    assert sorted(p.split(":")[0] for p in report.put_aside) == ["900.json", "901.json"]
    assert (spool / "aside" / "900.json").exists() and (spool / "aside" / "901.json").exists()
    assert [p.split(":")[0] for p in report.retry] == ["902.json"]
    assert (spool / "902.json").exists()   # young: kept for a retry


def test_a_file_still_unreadable_long_after_its_last_write_is_put_aside(gw):
    gw.slurm = FakeScheduler()
    gw.layout.ensure()
    path = gw.layout.spool / "903.json"
    path.write_text('{"format": 3, "job_id": ')
    old = time.time() - SETTLE_SECONDS - 5
    os.utime(path, (old, old))
    report = ingest_spool(gw)
    assert not path.exists() and (gw.layout.spool / "aside" / "903.json").exists()
    assert report.put_aside and "still unreadable" in report.put_aside[0]


def test_retry_book_backs_off_logs_once_and_retries_at_once_on_a_change(tmp_path):
    now = [1000.0]
    book = RetryBook(clock=lambda: now[0])
    path = tmp_path / "5.json"
    path.write_text("{")
    assert book.due(path)
    assert book.failed(path) is True            # news: logged
    assert not book.due(path)
    delays = []
    for _ in range(10):
        wait = book.seconds_to_next()
        assert wait is not None
        delays.append(wait)
        now[0] += wait
        assert book.due(path)
        assert book.failed(path) is False       # the same file again: not news
    assert delays[:4] == [2.0, 4.0, 8.0, 16.0] and max(delays) == MAX_DELAY_SECONDS
    path.write_text('{"format": ')               # it changed: read again at once
    assert book.due(path) and book.failed(path) is True
    book.forget_missing([])
    assert book.seconds_to_next() is None and book.due(path)


def test_the_watchers_book_reads_a_kept_file_only_when_due(gw, monkeypatch):
    gw.slurm = FakeScheduler()
    gw.layout.ensure()
    path = gw.layout.spool / "904.json"
    path.write_text('{"format": 3, "job_id": ')
    book = RetryBook()
    reads = []
    from spool import ingest

    real = ingest.read_record
    monkeypatch.setattr(ingest, "read_record", lambda p: reads.append(p) or real(p))
    first = ingest_spool(gw, book=book)
    for _ in range(20):
        again = ingest_spool(gw, book=book)
        assert again.retry == []                # named once
    assert [p.split(":")[0] for p in first.retry] == ["904.json"] and len(reads) == 1
