"""Energy profiles: what a model costs per token on this host, measured or estimated.

``boundgate models profile`` measures each local model with the configured meter (RAPL where
readable, else the CPU-time estimate; see ``energy.local_meter``): prefill runs (a long prompt,
``max_tokens=1``) give Wh per 1000 prompt tokens, decode runs (a short prompt, many output
tokens) give Wh per 1000 output tokens once their short prompt's share is taken off at the
prefill rate. Each run has a prompt of its own, so llama.cpp's prompt cache cannot skip the
prefill being measured. A profile records when, on which host and CPU, with which meter and
for which model version; it counts only while the model's version is the one measured.

:meth:`EnergyProfiles.estimate` is the one place other code asks what a request would cost
on a model from its token counts: the model's profile where one is stored for its current
version, else the per-output-token estimate the gateway meters upstream models with
(EcoLogits' model, ``energy.TokenEstimateMeter``; it counts output tokens only), labelled as
such. The figures and their sources are in docs/energy.md.
"""

from __future__ import annotations

import platform
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .backends.base import Backend, CancelToken, GenerationRequest, Usage
from .clock import Clock
from .energy import GenerationSpan, Measurement, Meter, MeterToken, TokenEstimateMeter, Work
from .settings import EnergySettings
from .store import EnergyProfileRow, ProfileStore

# Words for the profiling prompts: plain English, about one token each for BPE vocabularies.
_WORDS = (
    "the river runs past the old mill and the mountain road turns toward a quiet garden where "
    "people walk in the evening light while the town prepares for a long winter of work"
).split()
_OPENINGS = (
    "Alpha Bravo Charlie Delta Echo Foxtrot Golf Hotel India Juliet Kilo Lima Mike November "
    "Oscar Papa Quebec Romeo Sierra Tango Uniform Victor Whiskey Xray Yankee Zulu"
).split()


def host_info() -> tuple[str, str]:
    """``(hostname, CPU model name)`` of this machine (the CPU from /proc/cpuinfo on Linux,
    else ``platform.processor()``; "unknown" where neither says)."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return socket.gethostname(), cpu or platform.processor() or "unknown"


@dataclass(frozen=True)
class WhEstimate:
    """A request's energy on a model, from its token counts: Wh with its range, the meter
    method behind it (``rapl``, ``nvml`` or ``estimate``) and where it came from (``profile``:
    measured on this host; ``ecologits``: the per-output-token estimate)."""

    wh: float
    wh_low: float
    wh_high: float
    method: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "energy_wh": self.wh,
            "energy_range_wh": [self.wh_low, self.wh_high],
            "energy_method": self.method,
            "source": self.source,
        }


def _prompt(run: int, words: int, kind: str) -> str:
    opening = _OPENINGS[run % len(_OPENINGS)]
    body = " ".join(_WORDS[i % len(_WORDS)] for i in range(max(0, words - 1)))
    if kind == "decode":
        return f"{opening}: write a long story about a river."
    return f"{opening} {body}"


@dataclass
class _Totals:
    prompt_tokens: int = 0
    output_tokens: int = 0
    wall_s: float = 0.0
    wh: float = 0.0
    wh_low: float = 0.0
    wh_high: float = 0.0

    def add(self, usage: Usage, wall_s: float, m: Measurement) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.output_tokens += usage.completion_tokens
        self.wall_s += wall_s
        self.wh += m.wh
        self.wh_low += m.wh_low
        self.wh_high += m.wh_high


async def _metered(
    backend: Backend, meter: Meter, clock: Clock, req: GenerationRequest
) -> tuple[Usage, float, Measurement]:
    # metered from when the run has the model: live requests it queued behind are not its own
    gen = GenerationSpan(meter, clock.monotonic, deferred=backend.reports_start)
    completion = await backend.complete(replace(req, on_start=gen.begin), CancelToken())
    token, wall_s = gen.end()
    wall_s = max(wall_s, 0.0)
    usage = completion.usage
    work = Work(
        backend_kind=backend.kind,
        params_b=backend.params_b,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        wall_s=wall_s,
        memory_gb=backend.memory_gb,
    )
    return usage, wall_s, meter.stop(token, work)


async def measure_profile(
    backend: Backend,
    meter: Meter,
    clock: Clock,
    *,
    runs: int,
    prompt_tokens: int,
    output_tokens: int,
) -> EnergyProfileRow:
    """Measure ``backend`` (started, local) with ``meter``: one unmetered warm-up, then
    ``runs`` prefill runs (a prompt of about ``prompt_tokens`` words, ``max_tokens=1``) and
    ``runs`` decode runs (a short prompt, ``max_tokens=output_tokens``; the model may stop
    sooner, the tokens it really produced count).

    Wh per prompt token = prefill energy / prefill prompt tokens (the one output token of each
    prefill run counted as prompt: an overestimate by one decode token per run); Wh per output
    token = (decode energy - its prompt tokens x that rate) / its output tokens, at least 0.
    Ranges: the same arithmetic on the meter's low and high figures. Tokens/s: prefill prompt
    tokens over their wall time; decode output tokens over theirs (short prompt included).
    Raises ``ValueError`` when an argument is below 1, a run produced no tokens, or the decode
    runs' energy is not above their prompts' at the prefill rate (an output token's cost is
    then not measurable: too few output tokens for the meter's noise).
    """
    if runs < 1 or prompt_tokens < 1 or output_tokens < 1:
        raise ValueError("runs, prompt_tokens and output_tokens must be at least 1")

    def request(run: int, kind: str) -> GenerationRequest:
        decode = kind == "decode"
        return GenerationRequest(
            model=backend.name,
            prompt=_prompt(run, prompt_tokens, kind),
            max_tokens=output_tokens if decode else 1,
            temperature=0.0,
            seed=run,
        )

    await backend.complete(
        GenerationRequest(model=backend.name, prompt="Warm up.", max_tokens=2), CancelToken()
    )
    prefill, decode = _Totals(), _Totals()
    for run in range(runs):
        prefill.add(*await _metered(backend, meter, clock, request(2 * run, "prefill")))
        decode.add(*await _metered(backend, meter, clock, request(2 * run + 1, "decode")))
    if prefill.prompt_tokens < 1 or decode.output_tokens < 1:
        raise ValueError(f"{backend.name}: the profiling runs produced no tokens")

    def rates(e_prefill: float, e_decode: float) -> tuple[float, float]:
        per_prompt = e_prefill / prefill.prompt_tokens
        per_output = max(0.0, e_decode - per_prompt * decode.prompt_tokens) / decode.output_tokens
        return per_prompt * 1000.0, per_output * 1000.0

    p, o = rates(prefill.wh, decode.wh)
    if o <= 0:
        # the decode runs took no more than their prompts at the prefill rate: the meter's
        # noise hides what the output tokens cost (a re-check's ``--output-tokens 1`` stored
        # 0 Wh per output token), and a profile of 0 would meter output as free
        raise ValueError(
            f"{backend.name}: the decode runs used no more energy than their prompts at the "
            f"prefill rate, so what an output token costs is not measurable with "
            f"{decode.output_tokens} output tokens in {runs} runs; use more output tokens "
            "(--output-tokens) or runs (--runs)"
        )
    p_lo, o_lo = rates(prefill.wh_low, decode.wh_low)
    p_hi, o_hi = rates(prefill.wh_high, decode.wh_high)
    host, cpu = host_info()
    return EnergyProfileRow(
        model=backend.name,
        model_version=backend.version,
        measured_at=clock.time(),
        host=host,
        cpu=cpu,
        method=meter.name,
        prompt_wh_per_1k_tokens=p,
        prompt_wh_per_1k_tokens_low=min(p_lo, p),
        prompt_wh_per_1k_tokens_high=max(p_hi, p),
        output_wh_per_1k_tokens=o,
        output_wh_per_1k_tokens_low=min(o_lo, o),
        output_wh_per_1k_tokens_high=max(o_hi, o),
        prompt_tokens_per_s=prefill.prompt_tokens / max(prefill.wall_s, 1e-9),
        output_tokens_per_s=decode.output_tokens / max(decode.wall_s, 1e-9),
        runs=runs,
        prompt_tokens=prefill.prompt_tokens // runs,
        output_tokens=decode.output_tokens // runs,
    )


def profile_dict(p: EnergyProfileRow) -> dict[str, Any]:
    """A stored profile as the API shows it (``/v1/models`` ``boundgate.energy_profile``)."""
    return {
        "source": "profile",
        "method": p.method,
        "prompt_wh_per_1k_tokens": p.prompt_wh_per_1k_tokens,
        "prompt_wh_per_1k_tokens_range": [
            p.prompt_wh_per_1k_tokens_low,
            p.prompt_wh_per_1k_tokens_high,
        ],
        "output_wh_per_1k_tokens": p.output_wh_per_1k_tokens,
        "output_wh_per_1k_tokens_range": [
            p.output_wh_per_1k_tokens_low,
            p.output_wh_per_1k_tokens_high,
        ],
        "prompt_tokens_per_s": p.prompt_tokens_per_s,
        "output_tokens_per_s": p.output_tokens_per_s,
        "measured_at": p.measured_at,
        "host": p.host,
        "cpu": p.cpu,
        "model_version": p.model_version,
        "runs": p.runs,
    }


class EnergyProfiles:
    """The profiles of the gateway's models (this host's newest, from the store) and the
    per-token estimate for models without one. ``refresh`` reads the store; ``estimate`` and
    ``describe`` answer from what it read, without I/O."""

    def __init__(
        self, store: ProfileStore, backends: dict[str, Backend], energy: EnergySettings
    ) -> None:
        self.store = store
        self.backends = backends
        self.host = host_info()[0]
        self._local_estimate = TokenEstimateMeter(pue=energy.pue)
        self._upstream_estimate = TokenEstimateMeter(pue=energy.upstream_pue)
        self._profiles: dict[str, EnergyProfileRow] = {}

    async def refresh(self) -> None:
        """Read this host's newest profile of each model from the store."""
        self._profiles = {p.model: p for p in await self.store.profiles(self.host)}

    def profile(self, model: str) -> EnergyProfileRow | None:
        """``model``'s stored profile, if it was measured for the model's current version."""
        p = self._profiles.get(model)
        backend = self.backends.get(model)
        if p is None or backend is None or p.model_version != backend.version:
            return None
        return p

    def estimate(self, model: str, prompt_tokens: int, completion_tokens: int) -> WhEstimate:
        """Energy of a request with these token counts on ``model`` (a configured name):
        prompt and output tokens at the model's profiled rates when it has a profile for
        its current version (method: the profiling meter's), else EcoLogits' per-output-token
        estimate with the model's ``params_b`` and the PUE of where it runs (``energy.pue``
        for local models, ``energy.upstream_pue`` for upstream ones), method ``estimate``.
        Raises ``KeyError`` for a model that is not configured."""
        backend = self.backends[model]
        p = self.profile(model)
        if p is not None:

            def wh(per_prompt: float, per_output: float) -> float:
                return (prompt_tokens * per_prompt + completion_tokens * per_output) / 1000.0

            return WhEstimate(
                wh(p.prompt_wh_per_1k_tokens, p.output_wh_per_1k_tokens),
                wh(p.prompt_wh_per_1k_tokens_low, p.output_wh_per_1k_tokens_low),
                wh(p.prompt_wh_per_1k_tokens_high, p.output_wh_per_1k_tokens_high),
                p.method,
                "profile",
            )
        meter = self._upstream_estimate if backend.remote else self._local_estimate
        work = Work(
            backend_kind=backend.kind,
            params_b=backend.params_b,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
        m = meter.stop(MeterToken(), work)
        return WhEstimate(m.wh, m.wh_low, m.wh_high, m.method, "ecologits")

    def describe(self, model: str) -> dict[str, Any]:
        """``model``'s profile as the API shows it; without one, the estimate per 1000
        tokens (``source: "ecologits"``: prompt tokens cost 0 in that model)."""
        p = self.profile(model)
        if p is not None:
            return profile_dict(p)
        prompt = self.estimate(model, 1000, 0)
        output = self.estimate(model, 0, 1000)
        return {
            "source": "ecologits",
            "method": "estimate",
            "prompt_wh_per_1k_tokens": prompt.wh,
            "prompt_wh_per_1k_tokens_range": [prompt.wh_low, prompt.wh_high],
            "output_wh_per_1k_tokens": output.wh,
            "output_wh_per_1k_tokens_range": [output.wh_low, output.wh_high],
        }
