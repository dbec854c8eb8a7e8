"""Retries made visible: stamina's retries counted where the code that retries says.

stamina (which retries the upstream calls, ``backends/openai_upstream.py``, and the job
runner's polls, ``scheduler/jobs.py``) tells its instrumentation hooks of every retry it
schedules (``stamina.instrumentation.set_on_retry_hooks``), process-wide. Its default
Prometheus hook counts them as ``stamina_retries_total`` in prometheus_client's *default*
registry, which no gateway's ``/metrics`` serves (each app has a registry of its own,
``metrics.py``): the retries were invisible to operators. :func:`install` puts
:func:`count_retry` in its place (stamina's logging hook kept), and the retrying code says
which counter its retries count on with :func:`counting` (a context variable, so two gateways
in one process count each its own): the app's ``boundgate_retries_total``
(``Metrics.retry_counter``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from stamina.instrumentation import LoggingOnRetryHook, RetryDetails, set_on_retry_hooks

# told of each retry scheduled in this context; None: counted nowhere
_COUNTER: ContextVar[Callable[[], None] | None] = ContextVar("boundgate_retries", default=None)
_installed = False
_lock = threading.Lock()


def install() -> None:
    """Make stamina's hooks :func:`count_retry` and its logging hook (a warning per retry,
    as by default), dropping its Prometheus hook and its ``stamina_retries_total`` in the
    default registry. Idempotent; process-wide (stamina's hooks are)."""
    global _installed
    with _lock:
        if not _installed:
            set_on_retry_hooks((LoggingOnRetryHook, count_retry))
            _installed = True


@contextmanager
def counting(counter: Callable[[], None] | None) -> Iterator[None]:
    """Within: each retry stamina schedules in this context calls ``counter`` once (None:
    counted nowhere). The innermost one counts: an upstream call retried while a job runs
    counts as the upstream's, not as the job runner's."""
    token = _COUNTER.set(counter)
    try:
        yield
    finally:
        _COUNTER.reset(token)


def count_retry(details: RetryDetails) -> None:
    """stamina's retry hook: count the retry on the counter :func:`counting` set."""
    counter = _COUNTER.get()
    if counter is not None:
        counter()
