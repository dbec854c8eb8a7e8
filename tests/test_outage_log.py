"""Background work logs a store it cannot reach once per outage (a trial's two-minute
PostgreSQL outage logged about 1,700 lines per replica, 44 of them tracebacks)."""

from __future__ import annotations

import logging

import pytest

from boundgate.store import StoreUnavailableError
from boundgate.store.outages import OutageLog


def test_an_outage_is_one_warning_and_its_end_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("boundgate.test_outage_log")
    outage = OutageLog(log, "reuse sync")
    with caplog.at_level(logging.DEBUG, logger=log.name):
        outage.succeeded()  # no outage: nothing to say
        for _ in range(50):
            outage.failed(StoreUnavailableError("no PostgreSQL connection within 5 s"))
        outage.succeeded()
        outage.succeeded()
        outage.failed(StoreUnavailableError("again"))  # a second outage is told again
    at = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno > logging.DEBUG]
    assert at == [
        (
            logging.WARNING,
            "reuse sync: the store cannot be reached (no PostgreSQL connection within 5 s); "
            "trying again quietly until it answers",
        ),
        (logging.INFO, "reuse sync: the store answers again"),
        (
            logging.WARNING,
            "reuse sync: the store cannot be reached (again); trying again quietly until it "
            "answers",
        ),
    ]
    assert not any(r.exc_info for r in caplog.records)


def test_any_other_failure_keeps_its_traceback_every_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("boundgate.test_outage_log")
    outage = OutageLog(log, "open requests: renew")
    with caplog.at_level(logging.DEBUG, logger=log.name):
        outage.failed(StoreUnavailableError("down"))
        for _ in range(2):
            try:
                raise ValueError("a bug")
            except ValueError as exc:
                outage.failed(exc)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(r.exc_info for r in errors)
    assert errors[0].getMessage() == "open requests: renew failed"
