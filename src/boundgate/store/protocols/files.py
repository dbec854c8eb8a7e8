"""The Files and Batch APIs' uploads, batch objects and their lines.

The conventions every method keeps are the package docstring's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..rows import (
    BatchLineRow,
    FileRow,
    IdempotencyKey,
)


class FileStore(Protocol):
    """Uploaded files and batches (the OpenAI files and batches APIs)."""

    async def put_file(
        self, f: FileRow, idempotency: IdempotencyKey | None = None
    ) -> IdempotencyKey | None:
        """Store an uploaded file. Raises the implementation's integrity error if the id
        exists. With ``idempotency`` (its ``object_id`` is ``f.id``), the key is kept with
        the file in the same transaction; if a key of the same (tenant, key_id, route, key)
        is kept that has not expired at ``idempotency.created``, nothing is written and that
        key is returned (atomic: of requests under one key, any number of processes, one
        writes). None once written."""

    async def delete_file(self, file_id: str, now: float) -> bool:
        """Delete file ``file_id`` and the idempotency keys naming it (a request under such
        a key uploads again); False if there is none (or it is deleted already). A file an
        unfinished batch reads as its input (its object's ``input_file_id``, its ``status``
        none a batch ends in) is hidden instead, deleted at ``now`` (epoch s): ``get_file``
        and ``files`` no longer show it, ``get_file(file_id, deleted=True)`` still reads it
        for that batch, and ``purge_deleted_files`` drops it once no unfinished batch names
        it. Atomic with respect to the batch's own writes."""

    async def get_file(
        self, file_id: str, deleted: bool = False, content: bool = True
    ) -> FileRow | None:
        """The file ``file_id``, its content included unless not ``content`` (then
        ``b""``); None if there is none, or if it is deleted and kept only for a batch
        (``delete_file``) unless ``deleted``."""

    async def purge_deleted_files(self) -> int:
        """Drop the deleted files no unfinished batch reads any more (``delete_file``);
        returns how many."""

    async def idempotency_key(
        self, tenant: str, key_id: str, route: str, key: str, now: float
    ) -> IdempotencyKey | None:
        """The idempotency key kept for (``tenant``, ``key_id``, ``route``, ``key``), if it
        has not expired at ``now``; None otherwise."""

    async def put_batch(
        self,
        batch_id: str,
        tenant: str,
        created: float,
        body: str,
        idempotency: IdempotencyKey | None = None,
        input_file_id: str | None = None,
    ) -> IdempotencyKey | None:
        """Insert or replace a batch's JSON object ``body``. With ``idempotency`` (its
        ``object_id`` is ``batch_id``), as :meth:`put_file`: kept with the batch in the same
        transaction, or, under a key kept already and not expired, nothing written and that
        key returned. None once written. With ``input_file_id`` (a batch being made from
        that file), unless a kept key is returned, nothing is written and LookupError
        raised unless the file exists, not deleted: atomic with :meth:`delete_file`, so a
        file deleted while its batch is made is either kept for the batch or the batch is
        refused (a re-check's batch was accepted after its input was deleted in between,
        and none of its lines ran)."""

    async def get_batch(self, batch_id: str) -> tuple[str, str] | None:
        """``(tenant, JSON body)`` of batch ``batch_id``; None if there is none."""

    async def replace_batch(
        self, batch_id: str, old_body: str, body: str, files: Sequence[FileRow] = ()
    ) -> bool:
        """Replace batch ``batch_id``'s JSON object with ``body`` if it is still ``old_body``
        (compare-and-set: a writer that read the object earlier never overwrites a change
        made since, such as a cancel beside the run); False if it changed or is gone.
        ``files`` (the output and error files of a batch that ends) are stored in the same
        transaction, only if the object is replaced: of writers ending one batch at once (its
        run, a cancel, its job's failure hook, a recovery), one writes files."""

    async def files(
        self,
        tenant: str | None = None,
        purpose: str | None = None,
        limit: int = 100,
        after: str | None = None,
        ascending: bool = False,
    ) -> list[FileRow]:
        """Files (of ``tenant`` and ``purpose`` where given), newest first (``ascending``:
        oldest first), at most ``limit``, those after file ``after`` in that order (a
        cursor; an id unknown, or not ``tenant``'s, gives none); their ``content`` is not
        read (``b""``)."""

    async def batches(
        self, limit: int = 100, tenant: str | None = None, after: str | None = None
    ) -> list[tuple[str, str, float, str]]:
        """``(id, tenant, created, JSON body)`` of the newest ``limit`` batches (of
        ``tenant`` where given), newest first; with ``after``, those after that batch in this
        order (a cursor; an id unknown, or not ``tenant``'s, gives none)."""

    async def put_batch_line(self, row: BatchLineRow) -> None:
        """Keep a finished line of a running batch (its checkpoint). A line kept already is
        kept as it was (the first write wins)."""

    async def batch_lines(self, batch_id: str) -> list[BatchLineRow]:
        """The lines kept for batch ``batch_id``, in input order."""

    async def batch_line_counts(self, batch_id: str) -> tuple[int, int]:
        """``(output lines, error lines)`` kept for batch ``batch_id`` (its progress)."""

    async def drop_batch_lines(self, batch_id: str) -> None:
        """Forget the lines kept for ``batch_id`` (its files hold them now)."""

    async def stranded_batches(self) -> list[tuple[str, str | None]]:
        """``(JSON body, its job's state)`` of every batch not ended (its ``status`` neither
        completed, failed, expired nor cancelled) whose job (its ``boundgate.job_id``) is
        not pending or running: done, failed or cancelled, or None where there is no such
        job (its process died before queuing it). Oldest first; read in one snapshot,
        through an index of the batches not ended (never a scan of every batch)."""
