"""How long the iNNvestigate LRP analyzer takes to build and run, and what shortens the build.

Each configuration runs in a FRESH process (iNNvestigate needs eager execution disabled for
the whole process, and graph state would leak between measurements). For each rule it
measures, on ResNet50 (``weights=None``, random weights, BatchNorm folded unless
``--no-fold-bn``):

* the classifier build, the BatchNorm folding and the analyzer build (seconds), by default
  with ``relevance.skip_constant_evaluation`` (``--keras-constant-evaluation``: without);
* the time per image of ``analyze`` (batch of 2, after one warm-up call);
* conservation (paper 002, eq. 13): sum of the relevance map / the explained logit;
* the saved-graph route: the built analyzer frozen to a GraphDef (``.pb``), then a second
  fresh process that only loads it and analyses (no Keras model, no iNNvestigate build),
  with the largest difference between its maps and the built analyzer's maps.

Usage (takes minutes per alpha-beta build on a 2-core CPU)::

    python benchmarks/relevance_build.py                       # both rules, 128x128
    python benchmarks/relevance_build.py --rules lrp.epsilon --size 64 --repeats 3
    python benchmarks/relevance_build.py --no-fold-bn           # BatchNorm kept

Prints one JSON document and writes it to ``benchmarks/results/relevance_build.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "relevance_build.json"


def freeze_analyzer(analyzer, path: Path) -> Path:
    """Write the built analyzer's graph, variables turned into constants, as a GraphDef."""
    import tensorflow as tf

    sess = tf.compat.v1.keras.backend.get_session()
    model = analyzer._analyzer_model  # noqa: SLF001 - the Keras graph iNNvestigate built
    graph_def = tf.compat.v1.graph_util.convert_variables_to_constants(
        sess, sess.graph.as_graph_def(), [t.op.name for t in model.outputs])
    path.write_bytes(graph_def.SerializeToString())
    meta = {"inputs": [t.name for t in model.inputs], "outputs": [t.name for t in model.outputs]}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


class FrozenAnalyzer:
    """A frozen analyzer graph run by a plain ``tf.compat.v1.Session`` (no Keras, no build)."""

    def __init__(self, path: Path):
        import tensorflow as tf

        meta = json.loads(path.with_suffix(".json").read_text())
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(path.read_bytes())
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        self.session = tf.compat.v1.Session(graph=self.graph)
        self.input, self.output = meta["inputs"][0], meta["outputs"][0]

    def analyze(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(self.output, {self.input: x})


def randomise_batchnorm(model, seed: int = 0) -> None:
    """Random BN statistics (the folded convs then have biases, which absorb relevance)."""
    from tensorflow import keras

    rng = np.random.default_rng(seed)
    values = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            values += list(zip(layer.weights, [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n),
                                               rng.normal(0, 0.3, n), rng.uniform(0.5, 2.0, n)]))
    keras.backend.batch_set_value(values)


def child_build(rule: str, size: int, fold_bn: bool, repeats: int, workdir: Path,
                depth: str, fast: bool, random_bn: bool) -> dict:
    """Build classifier + analyzer in this (fresh) process; time everything; freeze the graph."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    from tensorflow import keras

    from tf_usaug.nn import batchnorm
    from tf_usaug.xai import lrp, relevance as rel

    out: dict = {"rule": rule, "size": size, "fold_bn": fold_bn, "model": "resnet50",
                 "weights": "none", "depth": depth, "skip_constant_evaluation": fast,
                 "random_bn_statistics": random_bn}
    cfg = rel.RelevanceConfig(weights="none", rule=rule, size=size, fold_bn=fold_bn)
    t0 = time.perf_counter()
    model = lrp.load_classifier(cfg)
    if random_bn:
        randomise_batchnorm(model)
    if depth != "full":  # truncated classifier: stop after a stage, then GAP + a dense head
        feats = model.get_layer(depth).output
        logits = keras.layers.Dense(1000)(keras.layers.GlobalAveragePooling2D()(feats))
        model = keras.Model(model.inputs, logits)
    out["classifier_build_s"] = time.perf_counter() - t0
    out["layers"] = len(model.layers)
    if fold_bn:
        t0 = time.perf_counter()
        model = batchnorm.fold_batchnorm(model)
        out["fold_s"] = time.perf_counter() - t0
        out["layers_folded"] = len(model.layers)
    t0 = time.perf_counter()
    analyzer = lrp.build_analyzer(model, cfg, fast=fast)
    out["analyzer_build_s"] = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    grey = rng.uniform(0, 1, (2, size, size)).astype(np.float32)
    x = lrp.preprocess_batch(grey, cfg.preprocess, 3)
    t0 = time.perf_counter()
    maps = lrp.analyze_batch(analyzer, x, cfg)
    out["first_analyze_s_per_image"] = (time.perf_counter() - t0) / len(x)
    t0 = time.perf_counter()
    for _ in range(repeats):
        maps = lrp.analyze_batch(analyzer, x, cfg)
    out["analyze_s_per_image"] = (time.perf_counter() - t0) / (repeats * len(x))
    logits = model.predict(x, verbose=0)
    explained = logits.max(axis=1)
    out["relevance_sum"] = [float(v) for v in maps.reshape(len(x), -1).sum(axis=1)]
    out["explained_logit"] = [float(v) for v in explained]
    out["sum_over_logit"] = [float(s / e) for s, e in zip(out["relevance_sum"], explained)]
    np.save(workdir / "maps.npy", maps)
    np.save(workdir / "inputs.npy", x)

    t0 = time.perf_counter()
    pb = freeze_analyzer(analyzer, workdir / "analyzer.pb")
    out["freeze_s"] = time.perf_counter() - t0
    out["frozen_graph_mb"] = pb.stat().st_size / 2**20
    return out


def child_load(workdir: Path, repeats: int) -> dict:
    """Load the frozen analyzer graph in this fresh process and analyse the same inputs."""
    t_start = time.perf_counter()
    import tensorflow as tf  # import time is part of what a rerun pays

    out: dict = {"tf_import_s": time.perf_counter() - t_start, "tensorflow": tf.__version__}
    t0 = time.perf_counter()
    analyzer = FrozenAnalyzer(workdir / "analyzer.pb")
    out["load_s"] = time.perf_counter() - t0
    x = np.load(workdir / "inputs.npy")
    t0 = time.perf_counter()
    maps = analyzer.analyze(x)
    out["first_analyze_s_per_image"] = (time.perf_counter() - t0) / len(x)
    t0 = time.perf_counter()
    for _ in range(repeats):
        maps = analyzer.analyze(x)
    out["analyze_s_per_image"] = (time.perf_counter() - t0) / (repeats * len(x))
    ref = np.load(workdir / "maps.npy")
    got = np.asarray(maps, np.float64).sum(axis=-1)
    out["max_abs_diff_vs_built"] = float(np.abs(got - ref).max())
    out["max_abs_relevance"] = float(np.abs(ref).max())
    return out


def run_child(args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True,
                          text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"child {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = time.perf_counter() - t0
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rules", nargs="+", default=["lrp.epsilon", "lrp.alpha_2_beta_1"])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5, help="timed analyze calls (batch of 2)")
    p.add_argument("--no-fold-bn", dest="fold_bn", action="store_false")
    p.add_argument("--depth", default="full",
                   help="'full', or a ResNet50 layer name to truncate at (conv3_block4_out)")
    p.add_argument("--keras-constant-evaluation", dest="fast", action="store_false",
                   help="build as iNNvestigate does by default (Keras evaluates every "
                        "constant in a session: the slow path)")
    p.add_argument("--random-bn", action="store_true",
                   help="random BatchNorm statistics (non-zero folded biases: conservation "
                        "then shows how much relevance the biases absorb)")
    p.add_argument("--no-load", dest="load", action="store_false",
                   help="skip the frozen-graph reload measurement")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--child", choices=("build", "load"), help=argparse.SUPPRESS)
    p.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child == "build":
        print(json.dumps(child_build(args.rules[0], args.size, args.fold_bn, args.repeats,
                                     args.workdir, args.depth, args.fast, args.random_bn)))
        return 0
    if args.child == "load":
        print(json.dumps(child_load(args.workdir, args.repeats)))
        return 0

    import tensorflow as tf

    report = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average_at_start": os.getloadavg()},
              "tensorflow": tf.__version__, "runs": []}
    for rule in args.rules:
        with tempfile.TemporaryDirectory(prefix="relevance-bench-") as tmp:
            common = ["--rules", rule, "--size", str(args.size), "--repeats", str(args.repeats),
                      "--workdir", tmp, "--depth", args.depth]
            run = run_child(["--child", "build", *common,
                             *([] if args.fold_bn else ["--no-fold-bn"]),
                             *([] if args.fast else ["--keras-constant-evaluation"]),
                             *(["--random-bn"] if args.random_bn else [])])
            if args.load:
                run["frozen_reload"] = run_child(["--child", "load", *common])
        run["load_average_after"] = os.getloadavg()
        report["runs"].append(run)
        print(json.dumps(run), file=sys.stderr, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2) + "\n"
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
