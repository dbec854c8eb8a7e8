"""How background work logs a store it cannot reach: once per outage, not once per try.

A replica's background tasks (the reuse change-log follower, the open-request renewals, the
job runner's polls) each try the store every second or so. While PostgreSQL was down they
logged a full traceback per try: a trial counted about 1,700 lines in two minutes of outage,
44 of them tracebacks of the expected ``StoreUnavailableError``. :class:`OutageLog` logs the
first failure of an outage as one warning line, the rest at debug, and the store answering
again as one info line; any other failure keeps its traceback every time (it is a bug or a
statement that failed, not the outage).
"""

from __future__ import annotations

import logging

from .protocols import StoreUnavailableError


class OutageLog:
    """The log of one background task's store calls (``what``: what it does, for the
    message). Call :meth:`failed` with each exception and :meth:`succeeded` after each call
    that worked. Not thread-safe: one task's."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        outages: tuple[type[BaseException], ...] = (StoreUnavailableError,),
    ) -> None:
        """``outages``: the exceptions that mean the store is out of reach (the change-log
        listener, which talks to libpq itself, takes any)."""
        self.logger = logger
        self.what = what
        self.outages = outages
        self.down = False  # an outage was logged and the store has not answered since

    def failed(self, exc: BaseException) -> None:
        """Log ``exc``: the store out of reach once per outage, on one line without a
        traceback; anything else with its traceback, every time."""
        if not isinstance(exc, self.outages):
            self.logger.error("%s failed", self.what, exc_info=exc)
            return
        reason = " ".join(str(exc).split()) or type(exc).__name__  # libpq's span lines
        if self.down:
            self.logger.debug("%s: the store still cannot be reached: %s", self.what, reason)
            return
        self.down = True
        self.logger.warning(
            "%s: the store cannot be reached (%s); trying again quietly until it answers",
            self.what,
            reason,
        )

    def succeeded(self) -> None:
        """The store answered: log the end of an outage once."""
        if self.down:
            self.down = False
            self.logger.info("%s: the store answers again", self.what)
