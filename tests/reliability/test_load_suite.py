"""The load area: the flatness figure on hand-made memory series, and the quick run against a real server."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType

import pytest

from medrag.config import Config
from medrag.store.binary import WeaviateBinary
from reliability import load


@pytest.fixture(scope="module")
def concurrency() -> ModuleType:
    return load.benchmark("concurrency")


def test_a_linear_leak_gives_its_exact_slope_ratio_and_verdict(concurrency: ModuleType) -> None:
    """61 samples, one per 10 s over 10 min, growing 10 MiB/min from 100 MiB: the first 7 samples are the warm-up
    (ceil of 10%), the windows are 6 samples wide (10% rounded): t = 70..120 s and 550..600 s."""
    times = [10.0 * index for index in range(61)]
    figure = concurrency.flatness(times, [100 + t / 6 for t in times])
    assert figure["after_warm_up"] == 54
    assert figure["early_window_s"] == [70.0, 120.0] and figure["late_window_s"] == [550.0, 600.0]
    assert figure["early_median_mib"] == pytest.approx(100 + 95 / 6, abs=0.05)
    assert figure["late_median_mib"] == pytest.approx(100 + 575 / 6, abs=0.05)
    assert figure["growth"] == pytest.approx((100 + 575 / 6) / (100 + 95 / 6) - 1, abs=1e-4)
    assert figure["slope_mib_per_min"] == pytest.approx(10.0, abs=1e-3)
    low, high = figure["slope_95ci_mib_per_min"]
    assert low == pytest.approx(10.0, abs=1e-3) and high == pytest.approx(10.0, abs=1e-3)  # no noise: no width
    assert figure["span_min"] == pytest.approx(530 / 60, abs=0.01)
    assert figure["flat"] is False


def test_noise_around_a_level_is_flat_and_its_interval_holds_zero(concurrency: ModuleType) -> None:
    times = [5.0 * index for index in range(120)]
    rss = [500 + 20 * math.sin(index * 2.3) for index in range(120)]  # +-20 MiB, no trend
    figure = concurrency.flatness(times, rss)
    assert figure["flat"] is True
    assert abs(figure["growth"]) < 0.05
    low, high = figure["slope_95ci_mib_per_min"]
    assert low < 0 < high


def test_a_settling_warm_up_does_not_count_but_a_late_step_does(concurrency: ModuleType) -> None:
    """Memory that climbs during the warm-up and then stays is flat; a step up in the last tenth is not."""
    times = [float(index) for index in range(100)]
    settling = [200 + 100 * min(index, 10) / 10 for index in range(100)]
    assert concurrency.flatness(times, settling)["flat"] is True
    step = [300.0 if index < 88 else 340.0 for index in range(100)]
    figure = concurrency.flatness(times, step)
    assert figure["growth"] == pytest.approx(40 / 300, abs=1e-4) and figure["flat"] is False


def test_too_short_a_series_is_not_judged(concurrency: ModuleType) -> None:
    assert concurrency.flatness([0.0, 1.0, 2.0], [1.0, 1.0, 1.0])["flat"] is None
    with pytest.raises(ValueError, match="3 times but 2"):
        concurrency.flatness([0.0, 1.0, 2.0], [1.0, 1.0])


def test_the_full_plan_follows_the_environment_and_the_quick_one_ignores_it() -> None:
    environ = {"MEDRAG_LOAD_CLIENTS": "6", "MEDRAG_LOAD_SECONDS": "120", "MEDRAG_LOAD_NODES": "5"}
    full = load.LoadPlan.chosen(False, environ)
    assert (full.clients, full.seconds, full.targets) == (6, 120.0, (0, 5))
    assert load.LoadPlan.chosen(False, {}).clients == 4 and load.LoadPlan.chosen(False, {}).targets == (0, 3)
    assert load.LoadPlan.chosen(True).clients == 2 and load.LoadPlan.chosen(True).targets == (0,)
    with pytest.raises(ValueError, match="MEDRAG_LOAD_CLIENTS"):
        load.LoadPlan.chosen(False, {"MEDRAG_LOAD_CLIENTS": "0"})


def test_quick_load_run(config: Config, weaviate_binary: WeaviateBinary, data_dir: Path, tmp_path: Path,
                        concurrency: ModuleType) -> None:
    """2 real client processes (real models, the plumbing reader of the test config) for 30 s against an embedded
    server the area starts: no errors, both kinds asked, memory sampled across the whole run and judged."""
    figures = load.run(config, tmp_path, quick=True)
    result = figures["targets"]["embedded"]["load"]
    assert result["errors"] == 0, result["first_errors"]
    assert result["requests"] > 0 and result["clients"] == 2
    assert all(client["text"] + client["image"] > 0 for client in result["per_client"])
    assert result["by_kind"]["text"]["requests"] > 0 and result["by_kind"]["image"]["requests"] > 0
    memory = result["memory"]
    times = [sample["t_s"] for sample in memory["samples"]]
    assert times == sorted(times) and times[0] < 2 and times[-1] >= 29, "samples cover the 30 s run"
    assert len(times) >= 25, f"1 s interval over 30 s gave only {len(times)} samples"
    assert set(memory["flatness"]) == {"server", "client-0", "client-1"}
    for name, figure in memory["flatness"].items():
        assert all(sample[name] > 0 for sample in memory["samples"]), name
        series = [sample["t_s"] for sample in memory["samples"]], [sample[name] for sample in memory["samples"]]
        assert figure == concurrency.flatness(*series), f"{name}'s figure is not its samples' flatness"
        assert figure["flat"] is not None
    assert figures["passed"] == load.passed(figures["targets"])
    assert figures["headline"]["embedded: errors"] == 0
    assert (tmp_path / "load.png").stat().st_size > 10_000
