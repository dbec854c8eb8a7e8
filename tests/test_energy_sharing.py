"""A process-wide counter (RAPL, NVML, the process's CPU time) measured by several requests at
once: each interval is split among the measurements open in it, so their sum is what the
counter counted, not a multiple of it.

``FakeCounterMeter`` is such a counter, driven by a ``FakeClock``: 1 mWh a second here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from boundgate.assembly import build_app, build_gateway
from boundgate.backends.base import GenerationRequest, Message
from boundgate.backends.fake import FakeBackend
from boundgate.clock import FakeClock
from boundgate.energy import CpuTimeEstimateMeter, FakeCounterMeter, SharedMeter, Work
from helpers import arun, complete_together, fake_settings

WORK = Work(backend_kind="fake", params_b=1.0)
WH_PER_S = 0.001


def counter() -> tuple[FakeClock, FakeCounterMeter]:
    clock = FakeClock()
    return clock, FakeCounterMeter(clock, watts=WH_PER_S * 3600)


def test_two_overlapping_measurements_sum_to_the_counters_delta() -> None:
    """a: 0-4 s, b: 1-6 s. The counter counted 6 s; a had 0-1 alone and 1-4 with b, b 4-6
    alone: a = 1 + 3/2, b = 3/2 + 2, not 4 + 5."""
    clock, raw = counter()
    meter = SharedMeter(raw)
    a = meter.start()
    clock.advance(1)
    b = meter.start()
    clock.advance(3)
    ma = meter.stop(a, WORK)
    clock.advance(2)
    mb = meter.stop(b, WORK)
    assert ma.wh == pytest.approx(2.5 * WH_PER_S)
    assert mb.wh == pytest.approx(3.5 * WH_PER_S)
    assert ma.wh + mb.wh == pytest.approx(6 * WH_PER_S)  # the counter's delta
    assert ma.method == mb.method == "rapl"
    # the split is an estimate: a shared second may have been all of one request's work or
    # none of it; an unshared second is the counter's own range (0.5x-1.5x here)
    assert ma.wh_low == pytest.approx(0.5 * 1 * WH_PER_S)
    assert ma.wh_high == pytest.approx(1.5 * 4 * WH_PER_S)
    assert mb.wh_low == pytest.approx(0.5 * 2 * WH_PER_S)
    assert mb.wh_high == pytest.approx(1.5 * 5 * WH_PER_S)
    assert "shared" in ma.detail


def test_a_measurement_alone_reads_the_counter_as_it_is() -> None:
    clock, raw = counter()
    meter = SharedMeter(raw)
    a = meter.start()
    clock.advance(3)
    assert meter.read(a, WORK).wh == pytest.approx(3 * WH_PER_S)  # read: it goes on
    clock.advance(1)
    m = meter.stop(a, WORK)
    assert (m.wh, m.wh_low, m.wh_high) == pytest.approx((4 * WH_PER_S, 2 * WH_PER_S, 6 * WH_PER_S))
    clock.advance(5)  # nobody measures: nobody's
    b = meter.start()
    clock.advance(1)
    assert meter.stop(b, WORK).wh == pytest.approx(WH_PER_S)


def test_a_measurement_read_while_open_still_shares_what_follows() -> None:
    """An open request's renewals read its energy so far (``Meter.read``): that must not end
    its measurement, or the other one would be billed the rest alone."""
    clock, raw = counter()
    meter = SharedMeter(raw)
    a, b = meter.start(), meter.start()
    clock.advance(2)
    assert meter.read(a, WORK).wh == pytest.approx(WH_PER_S)
    clock.advance(2)
    ma, mb = meter.stop(a, WORK), meter.stop(b, WORK)
    assert ma.wh == mb.wh == pytest.approx(2 * WH_PER_S)


def test_a_measurement_dropped_unstopped_leaves_the_split() -> None:
    clock, raw = counter()
    meter = SharedMeter(raw)
    a = meter.start()
    dropped = meter.start()
    del dropped  # its request failed in a way that never stopped it
    clock.advance(2)
    assert meter.stop(a, WORK).wh == pytest.approx(2 * WH_PER_S)


def test_a_generations_memory_term_is_its_own_not_split() -> None:
    """The CPU-time estimate's memory term is each generation's model's resident weights over
    its wall time (``Meter.own``): given whole to each, only the CPU time is split."""
    cpu = CpuTimeEstimateMeter(
        watts_per_core=4,
        watts_per_core_low=2,
        watts_per_core_high=8,
        memory_watts_per_gb=0.392,
        pue=1.5,
    )
    meter = SharedMeter(cpu)
    work = Work(backend_kind="llama_cpp", params_b=0.135, wall_s=3600.0, memory_gb=2.0)
    a, b = meter.start(), meter.start()
    for m in (meter.stop(a, work), meter.stop(b, work)):
        assert m.method == "estimate" and "memory" in m.detail
        assert m.wh_low >= 2.0 * 0.392 * 1.5  # 1 h of 2 GB at 0.392 W/GB, PUE 1.5: whole


def request(question: str) -> GenerationRequest:
    return GenerationRequest(
        model="fake", messages=[Message("user", question)], max_tokens=4, temperature=1
    )


def test_concurrent_requests_ledger_the_counters_energy_once(tmp_path: Path) -> None:
    """Two generations at once on a model that does not serialize them (an upstream-like
    fake, a second local model): each token moves the clock a second, so the counter counts
    8 s over both. Their rows sum to that, where each had been billed every second either
    was running (12 s or more between them)."""
    clock, raw = counter()
    backend = FakeBackend("fake", params_b=1, token_delay_s=1.0, clock=clock)
    app = build_app(
        fake_settings(tmp_path),
        backends={"fake": backend},
        meter_for=lambda b: raw,
        reuse_meter=raw,
        clock=clock,
    )
    gw = app.state.gateway
    gw.store.open()

    try:
        first, second = arun(
            complete_together(gw, request("First question?"), request("Second question?"))
        )
        rows = arun(gw.store.ledger())
    finally:
        gw.store.close()
    assert backend.calls == 2
    assert sum(r.wh for r in rows) == pytest.approx(8 * WH_PER_S)
    assert first.energy.wh + second.energy.wh == pytest.approx(8 * WH_PER_S)
    for r in (first, second):
        assert 0 <= r.energy.wh_low < r.energy.wh < r.energy.wh_high


def test_the_models_and_the_lookups_share_one_local_meter(tmp_path: Path) -> None:
    """The local models' meter and the lookups' are one counter (the process's CPU time, or
    RAPL): built once, so the gateway splits it among both kinds of work."""
    gw = build_gateway(fake_settings(tmp_path))
    local = gw.meter_for(gw.backends["fake"])
    assert isinstance(local, SharedMeter) and gw.reuse_meter is local
