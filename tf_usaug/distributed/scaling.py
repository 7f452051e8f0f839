"""Strong-scaling report: one fixed workload timed at 1, 2, 4, 8 processes.

``slurm/strong_scaling.sbatch`` runs ``tf_usaug.augment`` at each process count, appends one
CSV row per run with ``python -m tf_usaug.scaling append``, and finally prints the table and
draws the speed-up plot with ``python -m tf_usaug.scaling report``::

    python -m tf_usaug.scaling report scaling/strong_scaling.csv [--run-id ID] [--plot PNG]

The table has the columns of paper 002, Table 3 (processes, parallel time, sequential time,
speed-up) plus efficiency and images/s. Paper 002 reports a 5.09x speed-up on 8 GPUs
(T_s = 3771.53 s, T_p = 739.65 s), i.e. 64 % efficiency. Its table header prints the
speed-up as ``S = T_p / T_s``; the numbers are ``T_s / T_p``, which is what we compute.

Definitions (``p`` processes, wall seconds ``T_p`` measured around the launcher, so process
start-up and model building count, as in the paper's parallel time):

* speed-up ``S(p) = T_1 / T_p`` against the ``p = 1`` run of the same run id;
* efficiency ``E(p) = S(p) / p``;
* images/s ``= images / T_p``;
* images per busy second ``= images * p / sum_r busy_r`` (from ``summary.json``'s
  ``per_rank``): the throughput the ranks would reach if none ever waited; with
  ``busy fraction = sum_r busy_r / (p * job_seconds)`` it separates compute scaling from
  load imbalance and start-up cost.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import re
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import ScalingError  # noqa: F401  (raised here; importable from here too)

# Paper 002, Table 3: sequential time, parallel time on 8 GPUs, speed-up printed.
PAPER_SEQUENTIAL_SECONDS = 3771.53
PAPER_PARALLEL_SECONDS_8 = 739.65
PAPER_SPEEDUP_8 = 5.09

CSV_FIELDS = (
    "run_id", "date", "host", "launcher", "processes", "wall_seconds", "images",
    "images_per_second", "speedup", "efficiency", "job_seconds", "busy_seconds",
    "idle_seconds", "images_per_busy_second", "busy_fraction", "gpu", "cpu", "workload",
)
REQUIRED_FIELDS = ("run_id", "processes", "wall_seconds", "images")


# --------------------------------------------------------------------------------------------
# Maths
# --------------------------------------------------------------------------------------------
def speedup(sequential_seconds: float, parallel_seconds: float) -> float:
    """Strong-scaling speed-up ``S = T_s / T_p`` (paper 002, Table 3).

    Args:
        sequential_seconds: wall time of the one-process run, ``T_s`` (> 0).
        parallel_seconds: wall time of the same workload on ``p`` processes, ``T_p`` (> 0).
    """
    t_s, t_p = float(sequential_seconds), float(parallel_seconds)
    if not (t_s > 0 and t_p > 0 and math.isfinite(t_s) and math.isfinite(t_p)):
        raise ValueError(f"times must be finite and positive, got T_s={t_s}, T_p={t_p}")
    return t_s / t_p


def efficiency(sequential_seconds: float, parallel_seconds: float, processes: int) -> float:
    """Parallel efficiency ``E = S / p = T_s / (p T_p)``; 1 is perfect scaling.

    Args:
        sequential_seconds: ``T_s``, the one-process wall time.
        parallel_seconds: ``T_p``, the wall time on ``processes`` processes.
        processes: ``p`` (>= 1).
    """
    if int(processes) != processes or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes}")
    return speedup(sequential_seconds, parallel_seconds) / int(processes)


def job_throughput(summary: Mapping, processes: int) -> dict:
    """Throughput numbers of one run from its ``summary.json`` (see the module docstring).

    Args:
        summary: the parsed ``summary.json`` (``images`` or ``generated_this_run``,
            ``seconds``, ``per_rank`` list of {rank, images, busy_seconds, idle_seconds}).
        processes: the number of processes the run used.
    Returns:
        dict with images, job_seconds, busy_seconds, idle_seconds, images_per_busy_second,
        busy_fraction.
    """
    per_rank = summary.get("per_rank")
    if not isinstance(per_rank, list) or not per_rank:
        raise ValueError("summary has no per_rank list")
    images = summary.get("generated_this_run", summary.get("images"))
    if images is None:
        raise ValueError("summary has no 'images'")
    job_seconds = float(summary.get("seconds", 0.0))
    busy = sum(float(r["busy_seconds"]) for r in per_rank)
    idle = sum(float(r.get("idle_seconds", 0.0)) for r in per_rank)
    return {
        "images": int(images),
        "job_seconds": job_seconds,
        "busy_seconds": busy,
        "idle_seconds": idle,
        "images_per_busy_second": int(images) * processes / busy if busy > 0 else 0.0,
        "busy_fraction": busy / (processes * job_seconds) if job_seconds > 0 else 0.0,
    }


def make_row(run_id: str, processes: int, wall_seconds: float, summary: Mapping,
             **info: str) -> dict:
    """One CSV row (speed-up and efficiency left empty: :func:`append_row` fills them).

    Args:
        run_id: groups the rows of one scaling sweep.
        processes: number of Horovod ranks of this run.
        wall_seconds: wall time measured around the launcher.
        summary: the run's parsed ``summary.json``.
        info: host, date, launcher, gpu, cpu, workload (free text).
    """
    if wall_seconds <= 0:
        raise ValueError(f"wall seconds must be positive, got {wall_seconds}")
    tp = job_throughput(summary, processes)
    row = {k: "" for k in CSV_FIELDS}
    row.update({k: v for k, v in info.items() if k in CSV_FIELDS})
    row.update({
        "run_id": run_id,
        "processes": int(processes),
        "wall_seconds": round(float(wall_seconds), 3),
        "images": tp["images"],
        "images_per_second": round(tp["images"] / wall_seconds, 4),
        "job_seconds": round(tp["job_seconds"], 3),
        "busy_seconds": round(tp["busy_seconds"], 3),
        "idle_seconds": round(tp["idle_seconds"], 3),
        "images_per_busy_second": round(tp["images_per_busy_second"], 4),
        "busy_fraction": round(tp["busy_fraction"], 4),
    })
    return row


def fill_relative(row: dict, rows: Sequence[Mapping]) -> dict:
    """Set the row's speed-up/efficiency against the earlier ``processes == 1`` row(s) of its
    run id (median wall time when repeated); left empty when that row does not exist yet."""
    ones = [float(r["wall_seconds"]) for r in rows
            if r["run_id"] == row["run_id"] and int(r["processes"]) == 1]
    if int(row["processes"]) == 1:
        ones.append(float(row["wall_seconds"]))
    if ones:
        t1 = statistics.median(ones)
        row["speedup"] = round(speedup(t1, float(row["wall_seconds"])), 4)
        row["efficiency"] = round(efficiency(t1, float(row["wall_seconds"]),
                                             int(row["processes"])), 4)
    return row


# --------------------------------------------------------------------------------------------
# CSV on disk
# --------------------------------------------------------------------------------------------
def _parse_rows(path: Path, text: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise ScalingError(f"{path}: empty file (no CSV header)")
    missing = [f for f in REQUIRED_FIELDS if f not in reader.fieldnames]
    if missing:
        raise ScalingError(f"{path}: not a strong-scaling CSV: missing column(s) "
                           f"{', '.join(missing)} (header: {','.join(reader.fieldnames)})")
    rows = []
    for line_no, raw in enumerate(reader, start=2):
        row = dict(raw)
        try:
            row["processes"] = int(row["processes"])
            row["wall_seconds"] = float(row["wall_seconds"])
            row["images"] = int(float(row["images"]))
        except (TypeError, ValueError):
            raise ScalingError(f"{path}: line {line_no}: processes, wall_seconds and images "
                               f"must be numbers, got {raw}") from None
        if row["processes"] < 1 or not row["wall_seconds"] > 0 or row["images"] < 0:
            raise ScalingError(f"{path}: line {line_no}: need processes >= 1, wall_seconds "
                               f"> 0 and images >= 0, got {raw}")
        if not row["run_id"]:
            raise ScalingError(f"{path}: line {line_no}: empty run_id")
        rows.append(row)
    return rows


def read_rows(csv_path: str | os.PathLike) -> list[dict]:
    """All measurement rows of a strong-scaling CSV, typed and validated.

    Args:
        csv_path: the CSV written by :func:`append_row`.
    Raises:
        ScalingError: missing file, missing columns or non-numeric values.
    """
    path = Path(csv_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ScalingError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScalingError(f"{path}: cannot read: {exc}") from None
    return _parse_rows(path, text)


def append_row(csv_path: str | os.PathLike, row: Mapping) -> dict:
    """Append one row under an exclusive ``flock`` (safe for concurrent jobs).

    The speed-up and efficiency are computed against the run's ``processes == 1`` row(s)
    read under the same lock (see :func:`fill_relative`). Writes the header for a new file;
    refuses a file whose header differs.

    Args:
        csv_path: the CSV (created with its folder when missing).
        row: a row from :func:`make_row`.
    Returns:
        The row as written.
    """
    path = Path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {k: row.get(k, "") for k in CSV_FIELDS}
    with open(path, "a+", newline="") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            fh.seek(0)
            text = fh.read()
            if text.strip():
                header = next(csv.reader(io.StringIO(text)))
                if tuple(header) != CSV_FIELDS:
                    raise ScalingError(f"{path}: existing header {','.join(header)} differs "
                                       f"from {','.join(CSV_FIELDS)}; use a new CSV")
                row = fill_relative(row, _parse_rows(path, text))
            else:
                row = fill_relative(row, [])
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            if not text.strip():
                writer.writeheader()
            elif not text.endswith("\n"):
                fh.write("\n")
            writer.writerow(row)
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return row


def read_summary(summary_path: str | os.PathLike) -> dict:
    """The parsed ``summary.json`` of one run; ScalingError naming the file otherwise."""
    path = Path(summary_path)
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise ScalingError(f"{path}: no such file (did the job finish?)") from None
    except (OSError, ValueError) as exc:
        raise ScalingError(f"{path}: not a readable JSON summary: {exc}") from None
    if not isinstance(summary, dict):
        raise ScalingError(f"{path}: summary is not a JSON object")
    return summary


# --------------------------------------------------------------------------------------------
# The table and the plot
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScalingPoint:
    """One line of the report: the (median over repeats) run at one process count."""

    processes: int
    parallel_seconds: float
    sequential_seconds: float
    speedup: float
    efficiency: float
    images_per_second: float
    repeats: int


def run_ids(rows: Iterable[Mapping]) -> list[str]:
    """Distinct run ids in order of first appearance."""
    return list(dict.fromkeys(r["run_id"] for r in rows))


def scaling_points(rows: Sequence[Mapping], run_id: str, source: str = "CSV") -> list[ScalingPoint]:
    """The report's lines for one run id, sorted by process count.

    Args:
        rows: rows from :func:`read_rows`.
        run_id: which sweep.
        source: file name used in error messages.
    """
    mine = [r for r in rows if r["run_id"] == run_id]
    if not mine:
        raise ScalingError(f"{source}: no rows with run_id {run_id!r} "
                           f"(run ids: {', '.join(run_ids(rows)) or 'none'})")
    by_p: dict[int, list[Mapping]] = {}
    for r in mine:
        by_p.setdefault(int(r["processes"]), []).append(r)
    if 1 not in by_p:
        raise ScalingError(f"{source}: run {run_id!r} has no processes=1 row; the speed-up "
                           "needs the sequential time T_1")
    t1 = statistics.median(float(r["wall_seconds"]) for r in by_p[1])
    points = []
    for p in sorted(by_p):
        tp = statistics.median(float(r["wall_seconds"]) for r in by_p[p])
        ips = statistics.median(int(r["images"]) / float(r["wall_seconds"]) for r in by_p[p])
        points.append(ScalingPoint(p, tp, t1, speedup(t1, tp), efficiency(t1, tp, p), ips,
                                   len(by_p[p])))
    return points


def format_table(points: Sequence[ScalingPoint], title: str = "") -> str:
    """Plain-text table in the layout of paper 002, Table 3 (plus efficiency and images/s)."""
    head = ("processes", "parallel time (s)", "sequential time (s)", "speed-up",
            "efficiency", "images/s")
    lines = [[str(p.processes) + (f" (x{p.repeats})" if p.repeats > 1 else ""),
              f"{p.parallel_seconds:.2f}", f"{p.sequential_seconds:.2f}",
              f"{p.speedup:.2f}", f"{100 * p.efficiency:.0f} %", f"{p.images_per_second:.3f}"]
             for p in points]
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    fmt = "  ".join("{:>%d}" % w for w in widths)
    out = [title] if title else []
    out += [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*l) for l in lines]
    out.append(f"paper 002 Table 3: {PAPER_SPEEDUP_8:.2f}x on 8 GPUs "
               f"({100 * efficiency(PAPER_SEQUENTIAL_SECONDS, PAPER_PARALLEL_SECONDS_8, 8):.0f}"
               " % efficiency)")
    return "\n".join(out)


def plot_speedup(points: Sequence[ScalingPoint], png_path: str | os.PathLike,
                 title: str = "") -> Path:
    """Speed-up against processes (measured points and the ideal ``S = p`` line) as a PNG.

    Args:
        points: from :func:`scaling_points`.
        png_path: output file (folder created when missing).
        title: plot title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(png_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ps = [p.processes for p in points]
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    top = max(ps)
    ax.plot([1, top], [1, top], "--", color="0.5", label="ideal (S = p)")
    ax.plot(ps, [p.speedup for p in points], "o-", color="C0", label="measured")
    for p in points:
        ax.annotate(f"{100 * p.efficiency:.0f} %", (p.processes, p.speedup),
                    textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set_xlabel("processes (Horovod ranks)")
    ax.set_ylabel("speed-up  T_1 / T_p")
    ax.set_xticks(ps)
    ax.set_xlim(0.5, top + 0.5)
    ax.set_ylim(0, top + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def default_plot_path(csv_path: str | os.PathLike, run_id: str) -> Path:
    """``<csv folder>/<csv stem>_<run id>.png`` (run id reduced to safe characters)."""
    path = Path(csv_path)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id).strip("_") or "run"
    return path.with_name(f"{path.stem}_{safe}.png")


def report(csv_path: str | os.PathLike, run_id: str | None = None,
           plot_path: str | os.PathLike | None = None) -> tuple[str, Path]:
    """Table text and plot file for one run id (default: the last one in the CSV)."""
    rows = read_rows(csv_path)
    if not rows:
        raise ScalingError(f"{csv_path}: no measurement rows")
    run_id = run_id or rows[-1]["run_id"]
    points = scaling_points(rows, run_id, source=str(csv_path))
    first = next(r for r in rows if r["run_id"] == run_id)
    title = f"strong scaling, run {run_id}"
    details = ", ".join(x for x in (first.get("host"), first.get("gpu") or first.get("cpu"))
                        if x)
    text = format_table(points, title + (f" ({details})" if details else ""))
    png = plot_speedup(points, plot_path or default_plot_path(csv_path, run_id),
                       title + (f"\n{first.get('host')}" if first.get("host") else ""))
    return text, png


# --------------------------------------------------------------------------------------------
# Machine description for the CSV
# --------------------------------------------------------------------------------------------
def describe_cpu() -> str:
    """``"<model name> (N cores visible)"`` from /proc/cpuinfo."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model} ({cores} cores visible)"


def describe_gpus() -> str:
    """``"N x <GPU name>"`` from nvidia-smi, or ``"none"`` without NVIDIA GPUs."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "none"
    names = [n.strip() for n in out.stdout.splitlines() if n.strip()]
    if out.returncode != 0 or not names:
        return "none"
    counts = {n: names.count(n) for n in dict.fromkeys(names)}
    return ", ".join(f"{c} x {n}" for n, c in counts.items())
