"""Energy meters: RAPL against a fake sysfs tree, estimates, carbon arithmetic."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from boundgate.energy import (
    CpuTimeEstimateMeter,
    FakeMeter,
    Measurement,
    RaplMeter,
    TokenEstimateMeter,
    Work,
    carbon_g,
    local_meter,
)
from boundgate.settings import ConfigError, EnergySettings

WORK = Work(backend_kind="llama_cpp", params_b=0.135, completion_tokens=10, memory_gb=0.1)


def make_rapl(root: Path, values: dict[str, int], max_range: int = 1000) -> None:
    for name, value in values.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "energy_uj").write_text(f"{value}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range}\n")


def test_rapl_sums_packages_and_ignores_subzones(tmp_path: Path) -> None:
    make_rapl(tmp_path, {"intel-rapl:0": 100, "intel-rapl:1": 200, "intel-rapl:0:0": 5})
    assert RaplMeter.available(tmp_path)
    meter = RaplMeter(tmp_path, pue=1.0)
    token = meter.start()
    make_rapl(tmp_path, {"intel-rapl:0": 400, "intel-rapl:1": 500, "intel-rapl:0:0": 900})
    m = meter.stop(token, WORK)
    assert m.method == "rapl"
    assert m.wh == pytest.approx(600 / 3.6e9)
    assert m.wh_low <= m.wh <= m.wh_high


def test_rapl_handles_counter_wrap(tmp_path: Path) -> None:
    make_rapl(tmp_path, {"intel-rapl:0": 900}, max_range=1000)
    meter = RaplMeter(tmp_path, pue=1.0)
    token = meter.start()
    make_rapl(tmp_path, {"intel-rapl:0": 50}, max_range=1000)
    assert meter.stop(token, WORK).wh == pytest.approx(150 / 3.6e9)


def test_unreadable_rapl_falls_back_to_labelled_estimate(tmp_path: Path) -> None:
    assert not RaplMeter.available(tmp_path / "missing")
    meter = local_meter(EnergySettings(rapl_root=tmp_path / "missing"))
    assert isinstance(meter, CpuTimeEstimateMeter) and meter.name == "estimate"
    with pytest.raises(ConfigError, match="rapl"):
        local_meter(EnergySettings(method="rapl", rapl_root=tmp_path / "missing"))


def test_cpu_estimate_grows_with_cpu_work() -> None:
    meter = CpuTimeEstimateMeter(
        watts_per_core=4,
        watts_per_core_low=2,
        watts_per_core_high=8,
        memory_watts_per_gb=0.392,
        pue=1.0,
    )
    token = meter.start()
    deadline = time.process_time() + 0.2
    x = 0
    while time.process_time() < deadline:
        x += 1
    m = meter.stop(token, WORK)
    assert m.method == "estimate"
    # ≥ 0.2 CPU-seconds at 4 W is ≥ 0.8 J.
    assert m.wh >= 0.2 * 4 / 3600
    assert m.wh_low < m.wh < m.wh_high
    assert m.wh_high / m.wh == pytest.approx(2.0, rel=0.05)


def test_token_estimate_scales_with_tokens_and_size() -> None:
    meter = TokenEstimateMeter(pue=1.2)

    def wh(params: float, tokens: int) -> Measurement:
        work = Work(backend_kind="openai", params_b=params, completion_tokens=tokens)
        return meter.stop(meter.start(), work)

    small, big = wh(8, 100), wh(70, 100)
    assert big.wh > small.wh > 0
    assert wh(8, 200).wh == pytest.approx(2 * small.wh, rel=1e-9)
    assert small.wh_low < small.wh < small.wh_high
    assert wh(8, 0).wh == 0
    # EcoLogits for 8B, 100 tokens: GPU 2.143e-6 kWh/token; server share from latency.
    gpu_wh = 100 * (8.91e-8 * 8 + 1.43e-6) * 1000
    server_wh = 100 * (8.02e-4 * 8 + 2.23e-2) / 3600 * 1.0 / 8 * 1000
    assert small.wh == pytest.approx(1.2 * (gpu_wh + server_wh))


def test_measurement_rejects_inconsistent_range() -> None:
    with pytest.raises(ValueError):
        Measurement(1.0, 2.0, 3.0, "estimate")


def test_carbon_is_energy_times_intensity() -> None:
    m = FakeMeter(wh=2.0, low=1.0, high=4.0).stop(FakeMeter().start(), WORK)
    assert carbon_g(m, 500.0) == (1.0, 0.5, 2.0)


def test_a_negative_or_non_finite_figure_never_fails_a_request() -> None:
    """A document imported before its figures were checked may carry -1000 Wh: a Prometheus
    counter cannot go down, and every hit for its question was an HTTP 500. The row is
    observed; the counters keep only finite amounts ≥ 0."""
    from boundgate.clock import FakeClock
    from boundgate.ledger import LedgerWriter
    from boundgate.metrics import Metrics
    from boundgate.store import LedgerRow

    metrics = Metrics()
    writer = LedgerWriter(None, metrics, FakeClock(), "DE", lease_s=30.0)  # type: ignore[arg-type]
    for bad in (-1000.0, float("nan"), float("inf")):
        row = LedgerRow("r", 0.0, "t", "/v1/chat/completions", reuse="hit-exact", avoided_wh=bad)
        writer.observe(row)
    writer.observe(LedgerRow("r", 0.0, "t", "/v1/chat/completions", avoided_wh=0.5, wh=0.25))
    avoided = metrics.registry.get_sample_value(
        "boundgate_energy_joules_total", {"kind": "avoided", "method": "estimate"}
    )
    assert avoided == 0.5 * 3600.0
