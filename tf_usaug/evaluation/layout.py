"""The report folder of a benefit evaluation: where every stage reads and writes.

    REPORT/report.json, report.md, report.html   the results (rank 0, at the end)
    REPORT/plots/*.png                            metric bars, ROC curves
    REPORT/run.json, REPORT/.lock                 settings of the evaluation (tf_usaug.rundir)
    REPORT/work/plan.json                         folds, style pool, test sets
    REPORT/work/data/<device>/                    device A as a BUSI folder of links (prefix layout)
    REPORT/work/styles/                           the style pool, a flat folder of links
    REPORT/work/content/fold<i>/                  fold i's training originals (per-fold arms)
    REPORT/work/aug/<arm>/                        an augmentation job shared by every fold
    REPORT/work/aug/<arm>/fold<i>/                ... or one per fold (nst: LRP of fold i's model)
    REPORT/work/aug/cache/                        relevance maps of every nst job
    REPORT/work/gan/fold<i>/                      fold i's per-class GAN (gan arm)
    REPORT/work/sets/<arm>/fold<i>/manifest.jsonl the children fold i trains on
    REPORT/work/runs/<arm>/fold<i>/               classifier run folders
    REPORT/work/results/<arm>/fold<i>.json        one arm x fold, written last (= done)
    REPORT/work/generated/<arm>.json              a shared augmentation job finished
"""
from __future__ import annotations

from pathlib import Path


class ReportDir:
    """Paths of the report folder (see the module docstring); ``root`` is made absolute."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.work = self.root / "work"

    # the results
    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    # the work
    @property
    def plan(self) -> Path:
        return self.work / "plan.json"

    def data(self, device: str) -> Path:
        return self.work / "data" / device

    @property
    def styles(self) -> Path:
        return self.work / "styles"

    def content(self, fold: int) -> Path:
        return self.work / "content" / f"fold{fold}"

    def augmented(self, arm: str, fold: int | None = None) -> Path:
        base = self.work / "aug" / arm
        return base if fold is None else base / f"fold{fold}"

    def gan(self, fold: int) -> Path:
        return self.work / "gan" / f"fold{fold}"

    @property
    def relevance_cache(self) -> Path:
        return self.work / "aug" / "cache"

    def training_set(self, arm: str, fold: int) -> Path:
        return self.work / "sets" / arm / f"fold{fold}"

    def run(self, arm: str, fold: int) -> Path:
        return self.work / "runs" / arm / f"fold{fold}"

    def result(self, arm: str, fold: int) -> Path:
        return self.work / "results" / arm / f"fold{fold}.json"

    def generated(self, arm: str) -> Path:
        return self.work / "generated" / f"{arm}.json"

    def relative(self, path: str | Path) -> str:
        """``path`` relative to the report folder (as is when outside it)."""
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
