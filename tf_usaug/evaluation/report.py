"""The benefit report: ``report.json`` (everything), ``report.md`` (tables), ``report.html``
(self-contained, relative links) and ``plots/*.png``.

:func:`build_report` gathers the arm x fold results into one dict (metrics mean +- sd over
folds, paired tests against ``none`` and ``traditional``, label preservation, lesion CNR
change, relevance mass); :func:`write_report` writes the files, rank 0 only.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..files import atomic_write_bytes
from ..report import html as H
from . import plots
from .config import ARMS, REFERENCES, BenefitConfig
from .folds import IN_DOMAIN, Plan
from .gan_arm import arm_settings
from .layout import ReportDir
from .statistics import METRIC_LABELS, METRICS, aggregate, power_note, summarize


def _transplant_summary(results: dict[str, dict[int, dict]]) -> dict:
    """Per augmented arm: fold-level summaries of label preservation, CNR and relevance mass."""
    out = {}
    for arm, per_fold in results.items():
        if ARMS[arm].method is None:
            continue
        folds = [per_fold[f].get("transplant") or {} for f in sorted(per_fold)]

        def over(get):
            return summarize([get(t) for t in folds])

        lp = lambda key: (lambda t: (t.get("label_preservation") or {}).get(key))  # noqa: E731
        cnr = lambda part: (lambda t: ((t.get("cnr") or {}).get(part) or {}).get("mean"))  # noqa
        entry = {"label_preservation": over(lp("value")),
                 "parent_accuracy": over(lp("parent_accuracy")),
                 "children_per_fold": over(lp("n")),
                 "content_cnr": over(cnr("content")), "output_cnr": over(cnr("output")),
                 "cnr_relative_change": over(cnr("relative_change")),
                 "cnr_outputs_per_fold": over(lambda t: ((t.get("cnr") or {}).get(
                     "relative_change") or {}).get("n"))}
        if ARMS[arm].relevance:
            entry["relevance_mass"] = over(lambda t: (t.get("relevance_mass") or {}).get("mean"))
            entry["relevance_mass_chance"] = over(
                lambda t: (t.get("relevance_mass") or {}).get("chance"))
        out[arm] = entry
    return out


def _pooled(results: dict[str, dict[int, dict]], test_set: str) -> dict:
    """arm -> (labels, positive-class scores) of every fold's predictions on ``test_set``."""
    out = {}
    for arm, per_fold in results.items():
        labels, scores = [], []
        for f in sorted(per_fold):
            p = per_fold[f]["predictions"][test_set]
            labels += p["labels"]
            scores += [row[-1] for row in p["probabilities"]]
        out[arm] = (labels, scores)
    return out


def build_report(cfg: BenefitConfig, plan: Plan, devices, arms: Sequence[str],
                 results: dict[str, dict[int, dict]], settings: dict, paths: ReportDir,
                 seconds: float, ranks: int, generated: dict | None = None) -> dict:
    """Everything of one evaluation as one JSON-ready dict (see :func:`write_report`)."""
    test_sets = [IN_DOMAIN, *plan.unseen]
    refs = [r for r in REFERENCES if r in arms]
    agg = aggregate({a: results[a] for a in arms}, refs, test_sets)
    binary = len(plan.class_names) == 2
    notes = [power_note(len(plan.folds)),
             "Folds share most of their training originals, so fold results are not "
             "independent: the paired t-test is optimistic (Nadeau & Bengio 2003).",
             f"{IN_DOMAIN}: each fold's untouched test originals of {plan.train_device}; "
             + "; ".join(f"{d}: {len(s)} images outside the style pool, the same for every "
                         "fold and arm" for d, s in plan.unseen.items()),
             "none is always trained: the paired tests' reference, the classifier of label "
             "preservation and the relevance model of nst."]
    notes.append("Binary task: sensitivity, specificity, F1 and ROC-AUC of the positive class "
                 f"{plan.class_names[-1]}." if binary else
                 "Multi-class task: sensitivity, specificity, F1 and ROC-AUC are macro "
                 "averages over the classes; no ROC curves are drawn.")
    config = {k: (str(v) if isinstance(v, Path) else v)
              for k, v in dataclasses.asdict(cfg).items()}
    return {
        "command": cfg.command,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "settings": settings,
        "data": {"root": str(devices.root), "layout": devices.layout,
                 "devices": {d: len(s) for d, s in devices.devices.items()}},
        "train_device": plan.train_device,
        "test_sets": {IN_DOMAIN: sum(len(f.test) for f in plan.folds),
                      **{d: len(s) for d, s in plan.unseen.items()}},
        "class_names": list(plan.class_names),
        "positive_class": plan.class_names[-1] if binary else None,
        "plan": plan.as_dict(),
        "arms": {a: {"label": ARMS[a].label, "method": ARMS[a].method,
                     "relevance": ARMS[a].relevance, "per_fold": ARMS[a].per_fold,
                     **arm_settings(cfg, a)}
                 for a in arms},
        "metrics": agg["metrics"],
        "tests": agg["tests"],
        "transplant": _transplant_summary({a: results[a] for a in arms}),
        "results": {a: {str(f): results[a][f] for f in sorted(results[a])} for a in arms},
        "notes": notes,
        "timings": {"seconds": round(seconds, 3), "ranks": ranks,
                    "unit_seconds": round(_unit_seconds(results, arms, generated), 3),
                    "units": {**{f"generate {a}": {"generate": m.get("seconds")}
                                 for a, m in (generated or {}).items()},
                              **{f"{a} fold {f}": r.get("seconds") for a in arms
                                 for f, r in sorted(results[a].items())}}},
    }


def _unit_seconds(results: dict, arms: Sequence[str], generated: dict | None) -> float:
    """Seconds of every unit, whenever it ran (this call or an earlier one)."""
    total = sum(float(m.get("seconds") or 0) for m in (generated or {}).values())
    for arm in arms:
        for record in results[arm].values():
            total += sum(float(v) for v in (record.get("seconds") or {}).values())
    return total


def _wall(report: dict) -> str:
    t = report["timings"]
    return (f"units {t['unit_seconds']:.1f} s in all (every run of this report); this run "
            f"{t['seconds']:.1f} s on {t['ranks']} rank(s)")


# ----------------------------------------------------------------------------- formatting


def _pm(s: dict | None, digits: int = 3) -> str:
    if not s or s.get("mean") is None:
        return "n/a"
    text = f"{s['mean']:.{digits}f}"
    return text + (f" \u00b1 {s['sd']:.{digits}f}" if s.get("sd") is not None else "")


def _pool_size(report: dict) -> int:
    return sum(len(keys) for keys in report["plan"]["style_pool"].values())


def _p(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _signed(value) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def _metric_rows(report: dict, test_set: str) -> list[list[str]]:
    return [[arm, *(_pm(report["metrics"][arm][test_set][m]) for m in METRICS)]
            for arm in report["arms"]]


def _test_rows(report: dict, test_set: str, ref: str) -> list[list[str]]:
    rows = []
    for arm, per_metric in report["tests"][test_set].get(ref, {}).items():
        for m in METRICS:
            t = per_metric[m]
            rows.append([arm, METRIC_LABELS[m], _signed(t["mean_difference"]), _p(t["t_test_p"]),
                         _p(t["wilcoxon_p"]), str(t["n"])])
    return rows


TRANSPLANT_HEADERS = ["arm", "label preservation", "parents right", "content CNR", "output CNR",
                      "CNR relative change", "relevance mass in lesion", "chance (lesion area)"]


def _transplant_rows(report: dict) -> list[list[str]]:
    rows = []
    for arm, t in report["transplant"].items():
        rows.append([arm, _pm(t["label_preservation"]), _pm(t["parent_accuracy"]),
                     _pm(t["content_cnr"], 2), _pm(t["output_cnr"], 2),
                     _pm(t["cnr_relative_change"]), _pm(t.get("relevance_mass")),
                     _pm(t.get("relevance_mass_chance"))])
    return rows


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _test_set_title(report: dict, test_set: str) -> str:
    n = report["test_sets"][test_set]
    if test_set == IN_DOMAIN:
        return f"{report['train_device']} in-domain ({n} test originals over the folds)"
    return f"{test_set}, unseen scanner ({n} images, tested in every fold)"


METRIC_HEADERS = ["arm", *(f"{METRIC_LABELS[m]} (mean \u00b1 sd)" for m in METRICS)]
TEST_HEADERS = ["arm", "metric", "mean difference", "paired t-test p", "Wilcoxon p", "folds"]


def markdown(report: dict, paths: ReportDir) -> str:
    """``report.md``: the tables and the plots (relative links)."""
    out = [f"# Benefit of augmentation: trained on {report['train_device']}\n",
           f"Command: `{report['command']}`\n" if report.get("command") else "",
           f"Data: `{report['data']['root']}` ({report['data']['layout']} layout; "
           + ", ".join(f"{d}: {n}" for d, n in report["data"]["devices"].items())
           + f" images). Classes: {', '.join(report['class_names'])}. "
           f"{len(report['plan']['folds'])} folds by source image; style pool: "
           f"{_pool_size(report)} held-out images of the unseen devices.\n"]
    for s in report["test_sets"]:
        out.append(f"\n## {_test_set_title(report, s)}\n\n")
        out.append(_md_table(METRIC_HEADERS, _metric_rows(report, s)))
        for name, rel in report["plots"].get(s, {}).items():
            out.append(f"\n![{name} {s}]({rel})\n")
        for ref in report["tests"][s]:
            out.append(f"\nPaired tests against `{ref}` (arm - {ref}, over folds):\n\n")
            out.append(_md_table(TEST_HEADERS, _test_rows(report, s, ref)))
    if report["transplant"]:
        out.append("\n## What the augmented training images kept (mean \u00b1 sd over folds)\n\n")
        out.append(_md_table(TRANSPLANT_HEADERS, _transplant_rows(report)))
    out.append("\n## Notes\n\n" + "".join(f"* {n}\n" for n in report["notes"]))
    out.append(f"\nTime: {_wall(report)}. Everything: `report.json`.\n")
    return "".join(out)


def html_page(report: dict, paths: ReportDir) -> str:
    """``report.html``: self-contained (inline CSS, no script), images by relative path."""
    body = [H.tag("h1", f"Benefit of augmentation: trained on {report['train_device']}"),
            H.tag("div", report.get("command") or "", class_="sub mono")]
    body.append(H.kv_table({"data": f"{report['data']['root']} ({report['data']['layout']})",
                            "devices": ", ".join(f"{d}: {n}" for d, n in
                                                 report["data"]["devices"].items()),
                            "classes": ", ".join(report["class_names"]),
                            "folds": len(report["plan"]["folds"]),
                            "style pool": f"{_pool_size(report)} images",
                            "arms": ", ".join(report["arms"]),
                            "time": _wall(report)}))
    for s in report["test_sets"]:
        body.append(H.tag("h2", _test_set_title(report, s)))
        body.append(H.data_table(METRIC_HEADERS, _metric_rows(report, s),
                                 numeric=range(1, len(METRIC_HEADERS))))
        imgs = [H.image(rel, alt=f"{name} {s}", cls="plot") for name, rel in
                report["plots"].get(s, {}).items()]
        if imgs:
            body.append(H.tag("div", H.join(imgs), class_="cards"))
        for ref in report["tests"][s]:
            body.append(H.details(f"paired tests against {ref}",
                                  H.data_table(TEST_HEADERS, _test_rows(report, s, ref),
                                               numeric=(2, 3, 4, 5)), open_=True))
    if report["transplant"]:
        body.append(H.tag("h2", "What the augmented training images kept"))
        body.append(H.data_table(TRANSPLANT_HEADERS, _transplant_rows(report),
                                 numeric=range(1, len(TRANSPLANT_HEADERS))))
    body.append(H.tag("h2", "Notes"))
    body.append(H.tag("ul", H.join(H.tag("li", n) for n in report["notes"])))
    links = [H.link(H.rel_href(paths.report_json, paths.root), "report.json"),
             H.link(H.rel_href(paths.report_md, paths.root), "report.md")]
    links += [H.link(H.rel_href(paths.work / rel, paths.root), f"augmentation {arm}")
              for arm, rel in report.get("augmentation_reports", {}).items()]
    body.append(H.tag("p", H.join(links, " \u00b7 ")))
    css = H.CSS + "img.plot{display:block;max-width:640px;height:auto;background:#fff}\n"
    return H.page(f"benefit: {report['train_device']}", H.join(body), css=css)


def write_plots(report: dict, results: dict, paths: ReportDir) -> dict:
    """``plots/metrics_<set>.png`` and (binary) ``plots/roc_<set>.png``; returns
    ``{set: {name: relative path}}``."""
    out = {}
    arms = list(report["arms"])
    for i, s in enumerate(report["test_sets"]):
        slug = f"{i}_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in s)
        files = {"metrics": plots.metric_bars(report["metrics"], arms, s,
                                              paths.plots / f"metrics_{slug}.png",
                                              _test_set_title(report, s))}
        if report["positive_class"] is not None:
            files["roc"] = plots.roc_curves(
                _pooled({a: results[a] for a in arms}, s),
                {a: report["metrics"][a][s]["roc_auc"] for a in arms},
                paths.plots / f"roc_{slug}.png", f"ROC, {s} (pooled over folds)")
        out[s] = {name: Path(p).relative_to(paths.root).as_posix() for name, p in files.items()}
    return out


def write_report(report: dict, results: dict, paths: ReportDir) -> dict:
    """Plots, then report.json, report.md and report.html (each atomically)."""
    report["plots"] = write_plots(report, results, paths)
    report["augmentation_reports"] = {
        p.parent.relative_to(paths.work).as_posix(): p.relative_to(paths.work).as_posix()
        for p in sorted((paths.work / "aug").glob("**/index.html"))}
    # keys in report order (arms, test sets), not sorted
    atomic_write_bytes(paths.report_json, (json.dumps(report, indent=1, default=_jsonable)
                                           + "\n").encode())
    atomic_write_bytes(paths.report_md, markdown(report, paths).encode())
    atomic_write_bytes(paths.report_html, html_page(report, paths).encode())
    return report


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
