"""tf_usaug.scaling: speed-up maths against hand values and paper 002 Table 3, the locked CSV,
the report table and plot, and clear errors on bad input."""
from __future__ import annotations

import csv
import json
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from conftest import run_module
from tf_usaug import scaling
from tf_usaug.distributed import scaling


def _summary(images, seconds, busy, idle=None):
    idle = idle or [0.0] * len(busy)
    return {"images": images, "seconds": seconds, "ranks": len(busy),
            "images_per_second": images / seconds,
            "per_rank": [{"rank": r, "images": images // len(busy), "busy_seconds": b,
                          "idle_seconds": i} for r, (b, i) in enumerate(zip(busy, idle))]}


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=scaling.CSV_FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in scaling.CSV_FIELDS})
    return path


# ---------------------------------------------------------------------------- maths
@pytest.mark.parametrize("t_p, printed", [(1953.60, 1.93), (1166.73, 3.23), (847.10, 4.45),
                                          (739.65, 5.09)])
def test_speedup_reproduces_paper_002_table_3(t_p, printed):
    # Table 3: sequential time 3771.53 s; the printed speed-ups are T_s / T_p truncated.
    s = scaling.speedup(3771.53, t_p)
    assert printed <= s < printed + 0.01


def test_efficiency_hand_values():
    assert scaling.efficiency(100.0, 50.0, 2) == pytest.approx(1.0)
    assert scaling.efficiency(100.0, 40.0, 4) == pytest.approx(0.625)
    # paper 002: 5.09x on 8 GPUs is 64 % efficiency
    assert scaling.efficiency(3771.53, 739.65, 8) == pytest.approx(3771.53 / 739.65 / 8)
    assert round(100 * scaling.efficiency(3771.53, 739.65, 8)) == 64


@pytest.mark.parametrize("args", [(0.0, 1.0), (1.0, 0.0), (-1.0, 2.0), (float("nan"), 1.0),
                                  (1.0, float("inf"))])
def test_speedup_rejects_non_positive_times(args):
    with pytest.raises(ValueError):
        scaling.speedup(*args)


@pytest.mark.parametrize("p", [0, -2, 1.5])
def test_efficiency_rejects_bad_process_count(p):
    with pytest.raises(ValueError):
        scaling.efficiency(10.0, 5.0, p)


def test_job_throughput_from_summary():
    tp = scaling.job_throughput(_summary(16, 6.0, [3.0, 5.0], [1.0, 0.5]), processes=2)
    assert tp["images"] == 16
    assert tp["busy_seconds"] == pytest.approx(8.0)
    assert tp["idle_seconds"] == pytest.approx(1.5)
    assert tp["images_per_busy_second"] == pytest.approx(16 * 2 / 8.0)
    assert tp["busy_fraction"] == pytest.approx(8.0 / (2 * 6.0))


def test_job_throughput_prefers_images_generated_this_run():
    s = _summary(10, 5.0, [4.0])
    s.update(images=30, generated_this_run=10)  # 20 were already there from an earlier run
    assert scaling.job_throughput(s, 1)["images"] == 10


@pytest.mark.parametrize("bad", [{"images": 3, "seconds": 1.0},
                                 {"images": 3, "seconds": 1.0, "per_rank": []},
                                 {"seconds": 1.0, "per_rank": [{"busy_seconds": 1.0}]}])
def test_job_throughput_rejects_incomplete_summary(bad):
    with pytest.raises(ValueError):
        scaling.job_throughput(bad, 1)


# ---------------------------------------------------------------------------- CSV
def test_append_row_fills_speedup_against_same_run(tmp_path):
    path = tmp_path / "sub" / "scaling.csv"
    r1 = scaling.append_row(path, scaling.make_row("A", 1, 100.0, _summary(80, 98.0, [97.0])))
    r2 = scaling.append_row(path, scaling.make_row("A", 2, 50.0, _summary(80, 48.0, [47, 47])))
    other = scaling.append_row(path, scaling.make_row("B", 2, 10.0, _summary(8, 9.0, [9, 9])))
    r4 = scaling.append_row(path, scaling.make_row("A", 4, 40.0, _summary(80, 38.0, [30] * 4)))
    assert (r1["speedup"], r1["efficiency"]) == (1.0, 1.0)
    assert (r2["speedup"], r2["efficiency"]) == (2.0, 1.0)
    assert (r4["speedup"], r4["efficiency"]) == (2.5, 0.625)
    assert other["speedup"] == "" and other["efficiency"] == ""  # run B has no np=1 row
    assert r2["images_per_second"] == pytest.approx(1.6)
    assert r4["images_per_busy_second"] == pytest.approx(80 * 4 / 120, abs=1e-4)
    rows = scaling.read_rows(path)
    assert [(r["run_id"], r["processes"]) for r in rows] == [("A", 1), ("A", 2), ("B", 2),
                                                              ("A", 4)]
    assert path.read_text().count("run_id,") == 1


def _append_many(args):
    path, worker = args
    for i in range(15):
        scaling.append_row(path, scaling.make_row(f"w{worker}", 1 + i % 3, 1.0 + i,
                                                  _summary(4, 1.0, [1.0])))


def test_append_row_is_safe_under_concurrent_writers(tmp_path):
    path = tmp_path / "concurrent.csv"
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_append_many, [(path, w) for w in range(4)])
    text = path.read_text()
    assert text.count("run_id,") == 1  # exactly one header
    rows = scaling.read_rows(path)
    assert len(rows) == 60
    assert sorted({r["run_id"] for r in rows}) == ["w0", "w1", "w2", "w3"]


def test_append_row_refuses_foreign_header(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("run_id,processes,wall_seconds,images\nA,1,2.0,3\n")
    with pytest.raises(scaling.ScalingError, match=str(path)):
        scaling.append_row(path, scaling.make_row("A", 2, 1.0, _summary(3, 1.0, [1, 1])))


# ---------------------------------------------------------------------------- report
def test_scaling_points_hand_values_with_repeats(tmp_path):
    rows = [dict(run_id="A", processes=1, wall_seconds=w, images=80) for w in (130, 90, 100)]
    rows += [dict(run_id="A", processes=2, wall_seconds=50, images=80),
             dict(run_id="A", processes=4, wall_seconds=40, images=80),
             dict(run_id="B", processes=1, wall_seconds=7, images=1)]
    pts = scaling.scaling_points(rows, "A")
    assert [p.processes for p in pts] == [1, 2, 4]
    assert [p.sequential_seconds for p in pts] == [100, 100, 100]  # median of 130, 90, 100
    np.testing.assert_allclose([p.speedup for p in pts], [1.0, 2.0, 2.5])
    np.testing.assert_allclose([p.efficiency for p in pts], [1.0, 1.0, 0.625])
    np.testing.assert_allclose([p.images_per_second for p in pts], [0.8, 1.6, 2.0])
    assert pts[0].repeats == 3
    table = scaling.format_table(pts, "run A")
    lines = table.splitlines()
    assert lines[0] == "run A"
    assert "speed-up" in lines[1] and "sequential time (s)" in lines[1]
    assert lines[5].split() == ["4", "40.00", "100.00", "2.50", "62", "%", "2.000"]
    assert "5.09x on 8 GPUs (64 % efficiency)" in table


def test_scaling_points_errors_name_the_source():
    rows = [dict(run_id="A", processes=2, wall_seconds=5.0, images=1)]
    with pytest.raises(scaling.ScalingError, match="data.csv: run 'A' has no processes=1"):
        scaling.scaling_points(rows, "A", source="data.csv")
    with pytest.raises(scaling.ScalingError, match="no rows with run_id 'Z'"):
        scaling.scaling_points(rows, "Z", source="data.csv")


def test_report_cli_prints_table_and_writes_png(tmp_path):
    path = _write_csv(tmp_path / "strong.csv", [
        dict(run_id="old", processes=1, wall_seconds=10, images=5, host="h0"),
        dict(run_id="job 42", processes=1, wall_seconds=60, images=30, host="dgx", gpu="8 x A100"),
        dict(run_id="job 42", processes=2, wall_seconds=32, images=30, host="dgx"),
        dict(run_id="job 42", processes=4, wall_seconds=20, images=30, host="dgx"),
    ])
    proc = run_module("tf_usaug.scaling", "report", path)
    assert "run job 42 (dgx, 8 x A100)" in proc.stdout  # default: the last run id
    assert "  1.88  " in proc.stdout and "  3.00  " in proc.stdout  # 60/32, 60/20
    png = tmp_path / "strong_job_42.png"
    assert f"plot: {png}" in proc.stdout
    from PIL import Image

    with Image.open(png) as im:
        im.verify()
        assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100


def test_report_cli_run_id_and_plot_path(tmp_path):
    path = _write_csv(tmp_path / "s.csv", [dict(run_id="a", processes=1, wall_seconds=4, images=2),
                                           dict(run_id="a", processes=2, wall_seconds=2.5,
                                                images=2),
                                           dict(run_id="b", processes=2, wall_seconds=1, images=2)])
    png = tmp_path / "plots" / "a.png"
    proc = run_module("tf_usaug.scaling", "report", path, "--run-id", "a", "--plot", png)
    assert "1.60" in proc.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("", "empty file"),
    ("a,b,c\n1,2,3\n", "missing column(s) run_id, processes, wall_seconds, images"),
    ("run_id,processes,wall_seconds,images\nA,1,fast,3\n", "line 2: processes, wall_seconds"),
    ("run_id,processes,wall_seconds,images\nA,1,-4,3\n", "line 2: need processes >= 1"),
    ("run_id,processes,wall_seconds,images\n", "no measurement rows"),
    ("run_id,processes,wall_seconds,images\nA,2,4,3\n", "has no processes=1 row"),
])
def test_report_cli_bad_csv_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    proc = run_module("tf_usaug.scaling", "report", path, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith(f"error: {path}: ")
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_append_cli_reads_summary(tmp_path):
    csv_path = tmp_path / "s.csv"
    for p, wall in ((1, 12.0), (2, 8.0)):
        summary = tmp_path / f"np{p}" / "summary.json"
        summary.parent.mkdir()
        summary.write_text(json.dumps(_summary(6, wall - 1, [wall - 2] * p)))
        proc = run_module("tf_usaug.scaling", "append", csv_path, "--run-id", "r1",
                          "--processes", p, "--wall-seconds", wall, "--summary", summary,
                          "--host", "node7", "--gpu", "none", "--cpu", "test cpu",
                          "--workload", "--demo --per-image 1")
        assert "run r1" in proc.stdout
    rows = scaling.read_rows(csv_path)
    assert [r["speedup"] for r in rows] == ["1.0", "1.5"]
    assert rows[1]["efficiency"] == "0.75"
    assert rows[1]["host"] == "node7" and rows[1]["workload"] == "--demo --per-image 1"
    assert float(rows[1]["images_per_busy_second"]) == pytest.approx(6 * 2 / 12.0)
    assert rows[0]["date"]  # filled in automatically


@pytest.mark.parametrize("summary_text, message", [
    (None, "no such file"),
    ("{not json", "not a readable JSON summary"),
    ('{"images": 3, "seconds": 1}', "unusable summary"),
])
def test_append_cli_bad_summary(tmp_path, summary_text, message):
    summary = tmp_path / "summary.json"
    if summary_text is not None:
        summary.write_text(summary_text)
    proc = run_module("tf_usaug.scaling", "append", tmp_path / "s.csv", "--run-id", "x",
                      "--processes", "1", "--wall-seconds", "3", "--summary", summary,
                      "--gpu", "none", "--cpu", "c", check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {summary}: ") and message in proc.stderr
    assert not (tmp_path / "s.csv").exists()


def test_default_plot_path_is_beside_csv():
    assert scaling.default_plot_path("/a/b/strong.csv", "job 7/x") == Path(
        "/a/b/strong_job_7_x.png")


def test_describe_machine_strings():
    assert "cores visible" in scaling.describe_cpu()
    assert isinstance(scaling.describe_gpus(), str) and scaling.describe_gpus()
