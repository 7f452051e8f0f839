"""The metrics of :func:`~tf_usaug.evaluation.gan.job.evaluate_gan` as a table for people."""
from __future__ import annotations

#: (result key, label, direction) in report order.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("fid", "FID (Heusel et al. 2017)", "lower is better"),
    ("kid", "KID, unbiased MMD^2, cubic kernel (Binkowski et al. 2018)", "lower; ~0 ideal"),
    ("mmd", "MMD, Gaussian kernel (Xu et al. 2018; paper 003)", "lower is better"),
    ("one_nn", "1-NN two-sample accuracy (paper 003)", "0.5 ideal"),
    ("ms_ssim_fake", "MS-SSIM among fakes (paper 003 diversity)", "lower = more diverse"),
    ("ms_ssim_real", "MS-SSIM among reals (reference)", "compare with the fakes'"),
    ("ssim", "SSIM real vs fake (paper 004)", "higher is closer"),
    ("js_distance", "JS distance of grey histograms (paper 004)", "lower is better"),
)


def _value(entry) -> str:
    if entry is None:
        return "-"
    if isinstance(entry, (int, float)):
        return f"{entry:.4g}"
    if "accuracy" in entry:  # 1-NN
        a, r, f = entry["accuracy"], entry["real"], entry["fake"]
        return (f"{a['mean']:.4f} +- {a['sd']:.4f} (real {r['mean']:.3f}, "
                f"fake {f['mean']:.3f})")
    return f"{entry['mean']:.4g} +- {entry['sd']:.2g}"


def _rows(result: dict) -> list[tuple[str, str, str]]:
    return [(label, _value(result[key]), direction) for key, label, direction in ROWS
            if key in result]


def _header(result: dict) -> str:
    features = result.get("features", {})
    return (f"real: {result['real']['folder']} ({result['real']['images']} images), "
            f"fake: {result['fake']['folder']} ({result['fake']['images']} images)"
            + (f", features: {features['name']} ({features['dim']}-d)" if features else ""))


def table(result: dict) -> str:
    """Plain-text table (printed by the CLI)."""
    rows = _rows(result)
    width = max((len(r[0]) for r in rows), default=10)
    value_width = max((len(r[1]) for r in rows), default=10)
    lines = [_header(result)]
    lines += [f"  {label:<{width}}  {value:<{value_width}}  {direction}"
              for label, value, direction in rows]
    return "\n".join(lines)


def markdown(result: dict) -> str:
    """``metrics.md``: the same table in Markdown, with the command."""
    lines = ["# Generative metrics", "", _header(result), "", "| metric | value | reading |",
             "| --- | --- | --- |"]
    lines += [f"| {label} | {value} | {direction} |" for label, value, direction in
              _rows(result)]
    if result.get("command"):
        lines += ["", f"Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"
