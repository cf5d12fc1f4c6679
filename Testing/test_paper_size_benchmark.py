"""benchmarks/paper_size_benchmark.py: the paper-size networks it builds are the papers' dimensions, and the
benchmark itself runs end to end at a reduced size (the full size is run by hand: docs/PERFORMANCE.md)."""

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import paper_size_benchmark as bench  # noqa: E402


@pytest.fixture(scope="module")
def paper_models(tmp_path_factory):
    return bench.write_paper_models(tmp_path_factory.mktemp("paper"), seed=0, seg_spacing=None)


def test_paper_models_have_the_papers_dimensions(paper_models):
    from LNStagingLib.models.checkpoint import load_model

    seg, seg_config, seg_payload = load_model(paper_models["seg"])
    assert seg_config.features == (32, 64, 128, 256, 320, 320)  # nnU-Net 3d_fullres widths
    assert seg_config.patch_size == (80, 192, 160)  # PDAC paper: 160 x 192 x 80 sub-volumes
    assert seg_config.use_attention and seg_config.preset == "paper"
    assert seg_payload["training_data"]["spacing_mm"] == [1.8, 1.8, 2.5]  # the demo model's grid unless asked
    _, cls_config, _ = load_model(paper_models["cls"])
    assert cls_config.widths == (64, 128, 256, 512) and cls_config.blocks == (2, 2, 2, 2)  # ResNet18-style
    assert cls_config.cnn_config().f_dim == 1024  # Chao et al.: 4 x 256 ROI-GAP features
    assert (cls_config.t_dim, cls_config.msg_dim) == (640, 256)
    _, id_config, _ = load_model(paper_models["identification"])
    assert id_config.features == seg_config.features and id_config.id_hidden == 128
    _, patient_config, _ = load_model(paper_models["patient"])
    assert patient_config.widths == (64, 128, 256, 512) and patient_config.slice_size == 224
    counts = bench.parameter_counts(paper_models)
    small = bench.parameter_counts(bench.demo_paths())
    assert all(counts[stage] > 20 * small[stage] for stage in ("seg", "cls", "identification"))


def test_paper_spacing_is_the_pdac_papers_median(tmp_path):
    assert bench.spacing_choice("paper") == (0.68, 0.68, 0.80)
    assert bench.spacing_choice("demo") is None
    assert bench.spacing_choice("1 1 2") == (1.0, 1.0, 2.0)
    with pytest.raises(SystemExit):
        bench.spacing_choice("1 2")


@pytest.mark.slow
def test_benchmark_runs_at_a_reduced_size(tmp_path):
    report_path = tmp_path / "report.json"
    assert bench.main(["--size", "64x64x48", "--threads", "1", "--presets", "small", "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    (run,) = report["runs"]
    assert run["preset"] == "small" and run["threads"] == 1
    assert {"load", "stage1", "stage2", "total"} <= set(run["timings"])
    assert run["seconds"] >= run["timings"]["stage1"] > 0 and run["peak_rss_mb"] > 0
    # CPU seconds of the run's process (every thread): positive, and no more than its cores could give in its wall time
    assert 0 < run["cpu_seconds"] <= run["seconds"] * os.cpu_count() * 1.05
    assert all(len(run[key]) == 3 for key in ("load_average_1_5_15_before", "load_average_1_5_15_after"))
    # each progress step's CPU seconds add up to the run's; its peak memory is at most the process's peak
    assert sum(step["cpu_seconds"] for step in run["steps"].values()) == pytest.approx(run["cpu_seconds"], abs=0.2)
    peaks = [step["peak_rss_mb"] for step in run["steps"].values() if step["peak_rss_mb"] is not None]
    assert peaks and max(peaks) <= run["peak_rss_mb"] + 1
    assert any(name.startswith("segmenting window") for name in run["steps"])
    row = report["table"].splitlines()[2]
    assert row.startswith("| small | 1 |")
    assert f"| {run['cpu_seconds']:.1f} | {run['peak_rss_mb']:.0f} |" in row


def test_table_has_cpu_seconds_and_load_columns():
    run = {"preset": "paper", "threads": 2, "timings": {"stage1": 461.4, "total": 558.7}, "seconds": 565.5,
           "cpu_seconds": 1012.3, "peak_rss_mb": 7072.4, "load_average_1_5_15_before": [1.04, 1.0, 1.3],
           "load_average_1_5_15_after": [9.87, 8.7, 5.9]}
    head, rule, row = bench.table([run]).splitlines()
    assert head.split(" | ")[-4:] == ["whole run (s)", "CPU (s)", "peak RSS (MB)", "load average before / after |"]
    assert row == "| paper | 2 | 461.4 | 558.7 | 565.5 | 1012.3 | 7072 | 1.0 / 9.9 |"
    assert rule.count("---") == head.count("|") - 1
