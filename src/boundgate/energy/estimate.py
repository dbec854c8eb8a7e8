"""Labelled estimates, for when no hardware counter can be read.

Local models: process CPU time × power per busy vCPU, plus a share of memory power for the
model's resident weights, × PUE. Upstream models: EcoLogits' published per-output-token model.
Every constant and its source is listed in docs/energy.md.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

from .base import Measurement, Meter, MeterToken, Work, combine

# EcoLogits LLM inference model (genai-impact/ecologits, ecologits/impacts/llm.py).
ECOLOGITS_GPU_ENERGY_ALPHA_KWH = 8.91e-8  # kWh per output token per B active params
ECOLOGITS_GPU_ENERGY_BETA_KWH = 1.43e-6  # kWh per output token
ECOLOGITS_GPU_ENERGY_STDEV_KWH = 5.19e-7
ECOLOGITS_LATENCY_ALPHA_S = 8.02e-4  # s per output token per B active params
ECOLOGITS_LATENCY_BETA_S = 2.23e-2  # s per output token
ECOLOGITS_GPU_MEMORY_GB = 80.0
ECOLOGITS_QUANT_BITS = 4
ECOLOGITS_SERVER_GPUS = 8
ECOLOGITS_SERVER_POWER_KW = 1.0


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass(frozen=True)
class _CpuToken(MeterToken):
    cpu_s: float


class CpuTimeEstimateMeter(Meter):
    """Process CPU time × watts per busy vCPU (+ memory share), × PUE (docs/energy.md).

    CPU time covers every thread of the process (llama.cpp's compute threads included), so it
    tracks the work of one generation while the model runs one at a time. It is one counter
    for the whole process (``process_wide``): the gateway splits it among concurrent requests
    (``SharedMeter``). The memory term is each measurement's own (``own``): its model's
    resident weights (``work.memory_gb``) over its wall time (``work.wall_s``).
    """

    name = "estimate"
    process_wide = True

    def __init__(
        self,
        *,
        watts_per_core: float,
        watts_per_core_low: float,
        watts_per_core_high: float,
        memory_watts_per_gb: float,
        pue: float,
    ) -> None:
        if not 0 < watts_per_core_low <= watts_per_core <= watts_per_core_high:
            raise ValueError("need 0 < watts_per_core_low <= watts_per_core <= watts_per_core_high")
        self.w = watts_per_core
        self.w_low = watts_per_core_low
        self.w_high = watts_per_core_high
        self.mem_w_per_gb = memory_watts_per_gb
        self.pue = pue

    def start(self) -> MeterToken:
        return _CpuToken(_cpu_seconds())

    def stop(self, token: MeterToken, work: Work) -> Measurement:
        return self.lap(token, work)[0]

    def lap(self, token: MeterToken, work: Work) -> tuple[Measurement, MeterToken]:
        assert isinstance(token, _CpuToken)
        now = _cpu_seconds()
        cpu_s = max(0.0, now - token.cpu_s)

        def wh(watts: float) -> float:
            return cpu_s * watts / 3600.0 * self.pue

        cpu = Measurement(
            wh(self.w),
            wh(self.w_low),
            wh(self.w_high),
            "estimate",
            f"cpu {cpu_s:.3f} s x {self.w:g} W/vCPU, PUE {self.pue:g}",
        )
        return combine(cpu, self.own(work)), _CpuToken(now)

    def own(self, work: Work) -> Measurement | None:
        """The memory term: ``work.memory_gb`` × W/GB × ``work.wall_s`` / 3600 × PUE (Wh;
        Cloud Carbon Footprint's memory coefficient, docs/energy.md), the same in the
        central figure and both ends of the range. None without resident weights."""
        if work.memory_gb <= 0:
            return None
        mem_wh = work.memory_gb * self.mem_w_per_gb * max(0.0, work.wall_s) / 3600.0 * self.pue
        detail = f"memory {work.memory_gb:.2f} GB x {work.wall_s:.3f} s"
        return Measurement(mem_wh, mem_wh, mem_wh, "estimate", detail)


class TokenEstimateMeter(Meter):
    """Energy of an upstream (remote) generation from model size and output tokens.

    EcoLogits' model: per output token, GPU energy = alpha·P + beta (kWh, P in billions of
    active parameters) with a 95% interval of ±1.96σ; server energy (non-GPU) from the
    generation latency, bounded by the measured wall time; both × data-centre PUE.
    """

    name = "estimate"

    def __init__(self, *, pue: float) -> None:
        self.pue = pue

    def start(self) -> MeterToken:
        return MeterToken()

    def stop(self, token: MeterToken, work: Work) -> Measurement:
        p = max(work.params_b, 0.0)
        n = max(work.completion_tokens, 0)
        per_token = ECOLOGITS_GPU_ENERGY_ALPHA_KWH * p + ECOLOGITS_GPU_ENERGY_BETA_KWH
        spread = 1.96 * ECOLOGITS_GPU_ENERGY_STDEV_KWH
        gpu_kwh = n * per_token
        gpu_low = max(0.0, n * (per_token - spread))
        gpu_high = n * (per_token + spread)
        memory_gb = 1.2 * p * ECOLOGITS_QUANT_BITS / 8
        gpus = max(1, math.ceil(memory_gb / ECOLOGITS_GPU_MEMORY_GB))
        latency = n * (ECOLOGITS_LATENCY_ALPHA_S * p + ECOLOGITS_LATENCY_BETA_S)
        if work.wall_s > 0:
            latency = min(latency, work.wall_s)
        server_kwh = latency / 3600 * ECOLOGITS_SERVER_POWER_KW * gpus / ECOLOGITS_SERVER_GPUS

        def wh(gpu: float) -> float:
            return self.pue * (server_kwh + gpus * gpu) * 1000.0

        return Measurement(
            wh(gpu_kwh),
            wh(gpu_low),
            wh(gpu_high),
            "estimate",
            f"EcoLogits per-token model: {n} output tokens, {p:g} B params, {gpus} GPU(s), "
            f"PUE {self.pue:g}",
        )
