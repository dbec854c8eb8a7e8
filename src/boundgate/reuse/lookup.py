"""What a lookup returns and what it knows of stored entries: ``Lookup`` (the outcome of
``ReuseEngine.lookup``, its ledger fields and response headers), ``EntryMeta`` (an entry as
kept in memory for lookups) and ``new_lookup_id`` (a lookup's id in the ledger and the
store's change log)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from ..fmt import plain_decimal
from ..store import StoredEntry
from .embedder import Vectors
from .flight import Flight
from .policy import Plan
from .scope import ReuseKey
from .verifier import Verdict

_IDS = random.SystemRandom()


def new_lookup_id() -> int:
    """A fresh lookup id: random, 63 bits (the change log keeps it in a signed 64-bit column,
    ``ChangeRow.lookup_id``), so no two processes give one id to two lookups (a clash is a
    chance of 2⁻⁶³ a pair). Its ledger row carries it (``extra["lookup_id"]``) and the change
    log echoes it, so the process that counted the lookup knows it as its own by id, not by
    its values, which most misses share (``ReuseEngine.lookup_written``)."""
    return _IDS.getrandbits(63)


@dataclass
class EntryMeta:
    """What a lookup needs about an entry, kept in memory (answers stay in the store)."""

    key: int
    id: str
    scope: str
    exact: str
    query: str
    created: float
    cost_wh: float
    cost_gco2: float
    size: int
    hits: int = 0
    last_used: float = 0.0
    pinned: bool = False  # bound entries are never evicted
    document: str | None = None  # the bound document's short id
    finish_reason: str = "stop"
    completion_tokens: int = 0  # checked against a limit (``stored.fitting_tokens``)
    tenant: str = ""
    sampled: bool = False  # generated at a temperature above 0 (``sampled_request``)
    time_sensitive: bool = False  # its question reads time-sensitive (``TimeSensitivity``)
    # when its answer was generated is not known (``unknown_age``): ``created`` is a bound
    # document's binding time, so no max-age and no time-sensitive question may be served it
    age_unknown: bool = False


@dataclass
class Lookup:
    plan: Plan
    key: ReuseKey | None
    status: str  # hit-exact | hit-semantic | hit-coalesced | hit-variant | stale | miss | bypass
    entry: StoredEntry | None = None  # the entry served, on a hit
    similarity: float | None = None  # best admissible candidate's similarity
    density: float = 0.0  # that candidate's local density (scoring.py), when the scorer uses it
    pair: float | None = None  # that candidate's pair-model score (pair.py), when scored
    # the guards' conflicts ("number,unit") with the nearest stored question they vetoed
    # (admissible, above the floor): why a near paraphrase was not reused, for the asker
    veto: str | None = None
    # that stored question's document (``doc_…``) or answer (``ans_…``): the similarity and
    # pair headers speak of the best candidate the guards let through, which may be another
    veto_document: str | None = None
    vector: Vectors | None = None
    candidate: EntryMeta | None = None  # to compare the fresh answer with (verify/observe)
    verdict: Verdict | None = None
    # a semantic lookup happened: it counts towards h(t) once its request's ledger row is
    # written carrying it, in this process and through the change log in every other
    # (``ReuseEngine.lookup_written``)
    semantic: bool = False
    id: int = field(default_factory=new_lookup_id)  # the ledger's ``extra["lookup_id"]``
    novel: bool = False  # a fresh above-dial generation (counts against the novelty budget)
    stored_id: str | None = None  # set by remember()
    flight: Flight | None = None  # the flight this miss leads (flight.py), until it lands
    # the entry came from memory, not checked against the store: its ledger row must be
    # written with ``LedgerStore.record_hit``, which checks it is still live (``lookup``)
    unchecked: bool = False

    @property
    def hit(self) -> bool:
        return self.entry is not None

    @property
    def document(self) -> str | None:
        if self.entry is not None:
            return self.entry.document_id or self.entry.id
        return self.stored_id

    def ledger_fields(self, gco2_per_kwh: float | None) -> dict[str, Any]:
        """The ledger row's reuse fields. A hit avoided its stored answer's measured
        generation energy (``avoided_wh``, Wh) and the carbon that energy would emit here and
        now, at the hit's grid carbon intensity ``gco2_per_kwh`` (gCO2e/kWh; ``avoided_gco2``,
        g = Wh × intensity / 1000, as right-sizing's): not the carbon the answer's own
        generation emitted in another hour or zone (a trial's hit in Norway claimed the
        German hour's carbon, 11 times more). Without an intensity (a row not metered), the
        carbon recorded with the answer."""
        avoided_wh = self.entry.cost_wh if self.entry is not None else 0.0
        if gco2_per_kwh is not None:
            avoided_gco2 = avoided_wh * gco2_per_kwh / 1000.0
        else:
            avoided_gco2 = self.entry.cost_gco2 if self.entry is not None else 0.0
        return {
            "reuse": self.status,
            "document_id": self.document,
            "similarity": self.similarity,
            "avoided_wh": avoided_wh,
            "avoided_method": self.entry.cost_method if self.entry is not None else None,
            "avoided_gco2": avoided_gco2,
        }

    def fields(self, gco2_per_kwh: float | None) -> dict[str, Any]:
        """The response's ``boundgate`` fields: the ledger's (``ledger_fields``), and the
        pair-model score (``pair_score``, null when no candidate was scored), so the body
        says all the headers say (``headers``)."""
        fields = self.ledger_fields(gco2_per_kwh)
        veto_document = self.veto_document if self._veto is not None else None
        return {
            **fields,
            "pair_score": self.pair,
            "guard_veto": self._veto,
            "guard_veto_document": veto_document,
        }

    @property
    def _veto(self) -> str | None:
        """``veto`` where nothing was reused (on a hit another candidate served)."""
        return None if self.hit else self.veto

    def headers(self, now: float | None = None) -> dict[str, str]:
        """The response's reuse headers; with ``now`` (unix seconds, the request's start) a
        stored answer's ``Age`` (RFC 9111 §5.1: whole seconds since it was stored, or its
        document bound; a cache serving a stored response must send it)."""
        h = {"x-boundgate-reuse": self.status}
        if self.entry is not None and now is not None:
            h["Age"] = str(max(0, int(now - self.entry.created)))
        doc = self.document
        if doc:
            h["x-boundgate-document"] = doc
        if self.similarity is not None:
            h["x-boundgate-similarity"] = f"{self.similarity:.4f}"
        if self.pair is not None:
            h["x-boundgate-pair-score"] = f"{self.pair:.4f}"
        if self._veto is not None:
            h["x-boundgate-veto"] = self._veto
            if self.veto_document:
                h["x-boundgate-veto-document"] = self.veto_document
        if self.entry is not None:
            h["x-boundgate-energy-avoided-wh"] = plain_decimal(self.entry.cost_wh)
        return h


def _request_body(request: str | None) -> dict[str, Any]:
    """A stored generation request (``StoredEntry.request``, JSON) as its object; ``{}`` when
    there is none or it is no JSON object."""
    if not request:
        return {}
    try:
        body = json.loads(request)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def known_temperature(value: Any) -> float | None:
    """``value`` as a temperature if it is a number (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def sampled_request(request: str | None) -> bool:
    """Whether a stored answer was sampled: its generation request (``StoredEntry.request``,
    JSON) ran at a temperature above 0. A request at temperature 0 decodes greedily, so a
    sampled answer is not one it could have received. False when the request is unknown,
    except for an imported document's answer whose document does not say
    (``imported_request``): it may have been sampled."""
    body = _request_body(request)
    temperature = body.get("temperature")
    if temperature is None and body.get("imported"):
        return True
    return isinstance(temperature, int | float) and temperature > 0


def request_temperature(request: str | None) -> float | None:
    """The temperature of a stored generation request (``StoredEntry.request``), if known."""
    return known_temperature(_request_body(request).get("temperature"))


def imported_request(temperature: float | None, *, age_known: bool = False) -> str:
    """What an imported document's entry records of its generation request: only the
    temperature its document gives (``bg:temperature``; None: unknown, taken as sampled),
    whether it gives when the answer was generated (``bg:answerCreated``: ``age_known``),
    and that it was imported. Not a request to recompute (``is_recorded_request``)."""
    body: dict[str, Any] = {"imported": True, "temperature": temperature}
    if age_known:
        body["age_known"] = True
    return json.dumps(body)


def unknown_age(request: str | None) -> bool:
    """Whether a stored answer's age is unknown: an imported document's answer whose
    document does not say when it was generated (``imported_request``; entries imported
    before documents said it, too), its ``created`` being the document's binding time."""
    body = _request_body(request)
    return bool(body.get("imported")) and not body.get("age_known")


def is_recorded_request(request: str | None) -> bool:
    """Whether ``StoredEntry.request`` holds the whole generation request (not an import's
    temperature alone), so the answer can be recomputed on rebind."""
    return "model" in _request_body(request)
