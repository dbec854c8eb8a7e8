"""``GatewayState``: what ``Gateway.__init__`` sets (``pipeline.py``), declared once for the
mixins it is made of, which build on each other: ``Admission`` and ``Metering`` on this,
``Reusing`` on both, ``Routing`` on ``Reusing``, and ``Gateway`` on ``Routing``. Each part
reads the gateway's state and calls the parts below it, type-checked against their real
signatures (no copies of them to drift)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from ..backends.base import Backend
from ..clock import Clock
from ..energy import EnergyReport, Measurement, Meter
from ..ledger import LedgerWriter
from ..metrics import Metrics
from ..profiles import EnergyProfiles
from ..reuse.engine import ReuseEngine
from ..reuse.variants import CreativityBuffer
from ..routing.ladder import Router
from ..settings import ReasoningSettings
from ..tenants import Limiter


class GatewayState(ABC):
    """The gateway's parts and settings (set by ``Gateway.__init__``) and ``resolve``."""

    backends: dict[str, Backend]
    default_max_tokens: int
    # a request's that gives none (reuse.default_temperature); None: OpenAI's default, 1
    default_temperature: float | None
    limiter: Limiter
    reasoning: ReasoningSettings
    reuse: ReuseEngine | None
    clock: Clock
    creativity: CreativityBuffer | None
    ledger: LedgerWriter
    metrics: Metrics
    profiles: EnergyProfiles
    router: Router | None
    reuse_meter: Meter | None
    meter_for: Callable[[Backend], Meter]
    energy_report: Callable[[Measurement, float], EnergyReport]

    @abstractmethod
    def resolve(self, model: str | None) -> Backend:
        """The backend serving ``model`` (None: the default one); raises
        ``ModelNotFoundError`` (404) for an unknown name."""
