"""The ablation's numbers and pages: mean +- sd over seeds, paired tests against the
traditional row, ``report.json`` / ``report.md`` / ``report.html`` and one bar plot per
metric (``plots/<metric>.png``)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ...files import atomic_write_bytes, write_json
from ...report import html as H
from ..statistics import paired_tests, power_note, summarize
from .config import METRIC_LABELS, METRICS, REFERENCE


def aggregate(results: dict, rows: Sequence[str], devices: Sequence[str]) -> dict:
    """``{"summary": {row: {device: {metric: summarize}}}, "tests": {device: {row: {metric:
    paired_tests vs traditional}}}, "per_seed": ...}``."""
    seeds = sorted({s for per in results.values() for s in per})

    def values(row, device, metric):
        return [results[row][s]["metrics"][device][metric] if s in results[row] else None
                for s in seeds]

    summary = {r: {d: {m: summarize(values(r, d, m)) for m in METRICS} for d in devices}
               for r in rows}
    tests = {d: {r: {m: paired_tests(values(r, d, m), values(REFERENCE, d, m))
                     for m in METRICS} for r in rows if r != REFERENCE} for d in devices}
    return {"summary": summary, "tests": tests, "seed_list": seeds,
            "power": power_note(len(seeds)).replace("folds", "seeds")}


def _pm(s: dict, scale: float = 100.0) -> str:
    if s["mean"] is None:
        return "n/a"
    return f"{s['mean'] * scale:.1f}" + ("" if s["sd"] is None else f" ± {s['sd'] * scale:.1f}")


def _p(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def _table(report: dict) -> tuple[list[str], list[list[str]]]:
    heads = ["row"] + [f"{METRIC_LABELS[m]} {d}" + (" (train)" if d == report["train_device"]
                                                    else " (unseen)")
                       for d in report["test_devices"] for m in METRICS]
    rows = [[report["row_labels"][r]] + [_pm(report["summary"][r][d][m])
                                          for d in report["test_devices"] for m in METRICS]
            for r in report["rows"]]
    return heads, rows


def _test_table(report: dict) -> tuple[list[str], list[list[str]]]:
    heads = ["row vs traditional", "device", "metric", "mean diff (x100)", "t-test p",
             "Wilcoxon p"]
    out = []
    for d in report["test_devices"]:
        for r in report["rows"][1:]:
            for m in METRICS:
                t = report["tests"][d][r][m]
                diff = ("n/a" if t["mean_difference"] is None
                        else f"{t['mean_difference'] * 100:+.1f}")
                out.append([report["row_labels"][r], d, METRIC_LABELS[m], diff,
                            _p(t["t_test_p"]), _p(t["wilcoxon_p"])])
    return heads, out


def _md(heads, rows) -> str:
    return "\n".join(["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(report: dict) -> str:
    imgs = report["images"]
    text = ["# Multitask ablation across scanners (paper 000 Table 1)", "",
            f"Trained on `{report['train_device']}` ({imgs['train']} originals, 20 % of them "
            f"validation), {imgs['styles']} style references from the unseen device(s), "
            f"never tested; tested on untouched originals: "
            + ", ".join(f"`{d}` {n}" for d, n in imgs["test"].items())
            + f" (seed 0's split). {report['seeds']} seeds; DSC (eq. 3) and AUROC x 100, mean "
            "± sd over seeds.", "", _md(*_table(report)), "",
            "## Paired tests against the traditional row (same seed: same split, same initial "
            "weights)", "", report["power"] + ".", "", _md(*_test_table(report)), "",
            f"Command: `{report['command']}`", "",
            f"Wall time: {report['wall_seconds']} s (this invocation).", ""]
    return "\n".join(text)


def html_page(report: dict) -> str:
    body = H.join([H.tag("h1", "Multitask ablation across scanners (paper 000 Table 1)"),
                   H.tag("p", f"Trained on {report['train_device']}; {report['seeds']} seeds; "
                              "DSC and AUROC x 100, mean ± sd."),
                   H.data_table(*_table(report)),
                   H.tag("h2", "Paired tests against traditional"),
                   H.tag("p", report["power"]), H.data_table(*_test_table(report)),
                   H.join(H.image(f"plots/{m}.png", alt=m, cls="plot") for m in METRICS),
                   H.tag("p", H.join(["Command: ", H.tag("code", report["command"])]))])
    return H.page("multitask ablation", body)


def bar_plot(report: dict, metric: str, path: Path) -> Path:
    """One group per device, one bar per row: mean over seeds, sd error bars, seeds as dots."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    devices, rows = report["test_devices"], report["rows"]
    fig = Figure(figsize=(2 + 1.8 * len(devices), 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        stats = [report["summary"][r][d][metric] for d in devices]
        pos = np.arange(len(devices)) - 0.4 + width * (i + 0.5)
        ax.bar(pos, [np.nan if s["mean"] is None else s["mean"] for s in stats], width * 0.9,
               yerr=[s["sd"] or 0.0 for s in stats], capsize=3, label=report["row_labels"][r],
               alpha=0.85)
        for p, s in zip(pos, stats):
            vals = [v for v in s["values"] if v is not None]
            ax.plot([p] * len(vals), vals, "k.", ms=3)
    ax.set_xticks(np.arange(len(devices)))
    ax.set_xticklabels([d + (" (train)" if d == report["train_device"] else " (unseen)")
                        for d in devices])
    ax.set_ylabel(METRIC_LABELS[metric])
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def write_report(report: dict, out: Path) -> None:
    out = Path(out)
    for m in METRICS:
        bar_plot(report, m, out / "plots" / f"{m}.png")
    atomic_write_bytes(out / "report.md", markdown(report).encode())
    atomic_write_bytes(out / "report.html", html_page(report).encode())
    write_json(out / "report.json", report)
