"""``/v1/embeddings`` through the gateway (``Embedding``, a part of ``Gateway``): the reuse
layer's embedder, its input tokenized once, admitted on the daily token budget as the model
reads it, noted before the model runs (a write-ahead note, as a generation's), metered and
ledgered."""

from __future__ import annotations

import asyncio
from typing import Any

from ..backends.base import Usage
from ..energy import EnergyReport, Span
from ..errors import InvalidRequestError
from ..settings import EMBEDDING_MODEL
from ..store import LedgerRow
from .context import RequestContext
from .metering import Metering


class Embedding(Metering):
    """``embed`` (mixed into ``Gateway``)."""

    async def embed(self, ctx: RequestContext, texts: list[str]) -> tuple[Any, int, EnergyReport]:
        """``/v1/embeddings``: vectors from the reuse layer's embedder, metered and ledgered.
        The texts are tokenized before they are admitted (cheap beside the model), so the
        daily budget holds what the request is charged: its tokens as the model reads them
        (special tokens added, a long text cut at the model's window)."""
        assert self.reuse is not None
        embedder = self.reuse.embedder
        span = self._span()
        tokenized = await asyncio.to_thread(embedder.tokenize, texts)
        tokens = tokenized.tokens
        budget = self.limiter.budget(ctx.tenant)
        if budget and tokens > budget:  # no wait makes room for it: not a 429
            raise InvalidRequestError(
                f"the input is {tokens} tokens, more than the whole daily token budget of "
                f"{budget} of {ctx.tenant.describe()}: it can never be admitted; send less",
                param="input",
            )
        reservation = await self.limiter.admit(ctx.tenant, tokens, shrink="send less input")
        done = False
        try:
            # noted before the model runs, as a generation is: should this process die
            # first, the note becomes the request's `interrupted` row with its tokens and
            # energy so far (a re-check's kill -9 mid-batch left no row of the line)
            note = await self.ledger.open(
                self._embedding_row(ctx, tokens, None),
                lambda row: self._set_energy(row, self._report(span.read(), ctx)),
            )
            work = asyncio.ensure_future(asyncio.to_thread(embedder.embed_tokenized, tokenized))
            try:
                vectors = await asyncio.shield(work)
                done = True
            except asyncio.CancelledError:
                # the client left (server.common.until_disconnected) or the server stops: a
                # thread cannot be stopped, so the model reads it all; the row says
                # cancelled (499) with what it read and spent, as chat's does (a re-check's
                # left request was ledgered ok, 200)
                try:
                    await asyncio.wait({work})  # to its end (its failure too): metered whole
                    work.exception()  # a failure now is the cancelled row's, not raised
                finally:  # also when cancelled again (a shutdown)
                    done = True
                    self.ledger.commit_soon(self._ended(ctx, tokens, span, "cancelled", 499)[0])
                raise
            finally:
                if not done:  # its error row (or, failing that, the note) records it
                    self.ledger.close(note.id)
        finally:
            self.limiter.settle(reservation, tokens if done else 0)
        row, energy = self._ended(ctx, tokens, span)
        await self.ledger.commit(row)
        assert energy is not None
        return vectors, tokens, energy

    def _ended(
        self, ctx: RequestContext, tokens: int, span: Span, outcome: str = "ok", status: int = 200
    ) -> tuple[LedgerRow, EnergyReport | None]:
        """The end of embeddings request ``ctx`` (answered, or its client gone): its
        ``tokens`` counted as processed, ``span`` stopped, and its row with that energy."""
        self.ledger.processed(EMBEDDING_MODEL, Usage(tokens, 0))
        energy = self._report(span.stop(), ctx)
        return self._embedding_row(ctx, tokens, energy, outcome, status), energy

    def _embedding_row(
        self,
        ctx: RequestContext,
        tokens: int,
        energy: EnergyReport | None,
        outcome: str = "ok",
        status: int = 200,
    ) -> LedgerRow:
        """The ledger row of embeddings request ``ctx``: ``tokens`` read, ``energy`` spent."""
        return self.ledger.row(
            ctx,
            None,
            None,
            stream=False,
            usage=Usage(tokens, 0),
            energy=energy,
            outcome=outcome,
            status=status,
            model=EMBEDDING_MODEL,
            backend_kind="onnx",
        )
