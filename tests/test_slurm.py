"""slurm/ templates on a real one-node SLURM cluster started on this machine (tests/slurm_cluster.py).

The cluster's node poses as a DGX A100 (128 CPUs, 8 GPU GRES), so the templates' own #SBATCH
lines are submitted unchanged unless a test narrows them. Jobs run the stand-in job
(tests/support/standin_job.py) through JOB_CMD, and the real ``tf_usaug.augment`` once it
exists. Without root/apt the cluster tests skip with the reason.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from slurm_cluster import ClusterUnavailable, LocalSlurm

SLURM = REPO / "slurm"
TEMPLATES = ("generate.sbatch", "generate_multinode.sbatch", "strong_scaling.sbatch",
             "evaluate_benefit.sbatch")
STANDIN = REPO / "tests" / "support" / "standin_job.py"
STANDIN_CMD = f"{sys.executable} {STANDIN}"


def _load_hvd_slurm():
    spec = importlib.util.spec_from_file_location("hvd_slurm", SLURM / "hvd_slurm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hvd_slurm = _load_hvd_slurm()


# ---------------------------------------------------------------------------- no cluster
@pytest.mark.parametrize("name", [*TEMPLATES, "lib.sh"])
def test_template_parses_with_bash_n(name):
    proc = subprocess.run(["bash", "-n", str(SLURM / name)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_templates_are_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    proc = subprocess.run(["shellcheck", "-x", *(f"slurm/{t}" for t in (*TEMPLATES, "lib.sh"))],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("spec, counts", [("8", [8]), ("8(x2)", [8, 8]),
                                          ("8(x2),4", [8, 8, 4]), ("2,1(x3)", [2, 1, 1, 1])])
def test_expand_tasks_per_node(spec, counts):
    assert hvd_slurm.expand_tasks_per_node(spec) == counts


def test_expand_tasks_per_node_rejects_garbage():
    with pytest.raises(hvd_slurm.AllocationError, match="cannot parse"):
        hvd_slurm.expand_tasks_per_node("8(x)")


@pytest.mark.parametrize("np_, expected", [(1, "a:1"), (8, "a:8"), (12, "a:8,b:4"),
                                           (16, "a:8,b:8")])
def test_horovodrun_hosts_offer_exactly_np_slots(np_, expected):
    # horovodrun starts one rank per listed slot, whatever -np says
    assert hvd_slurm.horovodrun_hosts(np_, [("a", 8), ("b", 8)]) == expected


def test_horovodrun_hosts_too_many_ranks():
    with pytest.raises(hvd_slurm.AllocationError, match="16 slots"):
        hvd_slurm.horovodrun_hosts(17, [("a", 8), ("b", 8)])


@pytest.mark.parametrize("np_, nodes, per_node", [(1, ["a"], 1), (8, ["a"], 8),
                                                  (16, ["a", "b"], 8), (24, ["a", "b", "c"], 8)])
def test_rank_layout_block_fill(np_, nodes, per_node):
    assert hvd_slurm.rank_layout(np_, [("a", 8), ("b", 8), ("c", 8)]) == (nodes, per_node)


@pytest.mark.parametrize("np_, message", [(12, "not a multiple"), (32, "does not fit"),
                                          (0, ">= 1")])
def test_rank_layout_rejects(np_, message):
    with pytest.raises(hvd_slurm.AllocationError, match=message):
        hvd_slurm.rank_layout(np_, [("a", 8), ("b", 8), ("c", 8)])


def test_srun_command_maps_slurm_ids_to_horovod_ranks():
    cmd = hvd_slurm.srun_command(16, ["a", "b"], 8, ["python", "-m", "x"], ["--gpus-per-task=1"],
                                 cpus_per_task="16")
    assert cmd[:6] == ["srun", "--ntasks=16", "--nodes=2", "--ntasks-per-node=8",
                       "--nodelist=a,b", "--kill-on-bad-exit=1"]
    assert "--cpus-per-task=16" in cmd and "--gpus-per-task=1" in cmd
    tail = cmd[cmd.index("bash"):]
    assert tail == ["bash", "-c", hvd_slurm.WORKER_SCRIPT, "hvd-worker", "python", "-m", "x"]
    worker = tail[2]
    for pair in ('HOROVOD_RANK="$SLURM_PROCID"', 'HOROVOD_LOCAL_RANK="$SLURM_LOCALID"',
                 'HOROVOD_CROSS_RANK="$SLURM_NODEID"'):
        assert pair in worker
    assert worker.endswith('exec "$@"')


# ---------------------------------------------------------------------------- cluster
@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    try:
        cluster = LocalSlurm(tmp_path_factory.mktemp("slurm-cluster")).start()
    except ClusterUnavailable as exc:
        pytest.skip(f"cannot run a local SLURM cluster here: {exc}")
    yield cluster
    cluster.stop()


def _submit(cluster: LocalSlurm, template: str, tmp_path: Path, *args: str,
            options: tuple = (), env: dict | None = None, expect_ok: bool = True) -> str:
    """Submit a template from the repository root, wait for it; returns the job's output."""
    log = tmp_path / "job.out"
    proc = cluster.sbatch_wait(SLURM / template, *args, options=(f"--output={log}", *options),
                               env=env, cwd=REPO, timeout=240)
    output = log.read_text() if log.exists() else ""
    if expect_ok:
        assert proc.returncode == 0, (f"sbatch {template} failed ({proc.returncode}): "
                                      f"{proc.stderr}\n--- job output\n{output}\n"
                                      f"{cluster.logs(8)}")
    else:
        assert proc.returncode != 0, output
    return output


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slurm
@pytest.mark.parametrize("template, options", [("generate.sbatch", ()),
                                               ("generate_multinode.sbatch", ("--nodes=1",)),
                                               ("strong_scaling.sbatch", ())])
def test_sbatch_test_only_accepts_template(slurm_cluster, template, options):
    proc = subprocess.run(["sbatch", "--test-only", *options, str(SLURM / template)],
                          env=slurm_cluster.env, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "to start" in proc.stderr and "using 128 processors" in proc.stderr


@pytest.mark.slurm
def test_hvd_slurm_reads_the_allocation(slurm_cluster):
    env = dict(slurm_cluster.env, SLURM_JOB_NODELIST="dgx[01-02]",
               SLURM_TASKS_PER_NODE="8(x2)")
    script = str(SLURM / "hvd_slurm.py")
    hosts = subprocess.run([sys.executable, script, "hosts", "-np", "12"], env=env,
                           capture_output=True, text=True)
    assert hosts.stdout.strip() == "dgx01:8,dgx02:4", hosts.stderr
    max_np = subprocess.run([sys.executable, script, "max-np"], env=env, capture_output=True,
                            text=True)
    assert max_np.stdout.strip() == "16"
    dry = subprocess.run([sys.executable, script, "run", "-np", "16", "--dry-run", "--",
                          "python", "-m", "tf_usaug.augment"], env=env, capture_output=True,
                         text=True)
    assert dry.returncode == 0, dry.stderr
    assert "srun --ntasks=16 --nodes=2 --ntasks-per-node=8 --nodelist=dgx01,dgx02" in dry.stderr
    bad = subprocess.run([sys.executable, script, "run", "-np", "12", "--", "true"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "not a multiple of it" in bad.stderr


@pytest.mark.slurm
def test_strong_scaling_sbatch_with_standin(slurm_cluster, tmp_path):
    csv_path = tmp_path / "scaling" / "strong.csv"
    env = dict(NP_LIST="1 2", JOB_CMD=STANDIN_CMD, LAUNCHER="srun", RUN_ID="standin-run",
               SCALING_CSV=str(csv_path), SCALING_OUT=str(tmp_path / "runs"),
               JOB_ARGS="--items 8 --seconds-per-item 0.5")
    output = _submit(slurm_cluster, "strong_scaling.sbatch", tmp_path, env=env)
    rows = _csv_rows(csv_path)
    assert [int(r["processes"]) for r in rows] == [1, 2], output
    one, two = rows
    assert {r["run_id"] for r in rows} == {"standin-run"}
    assert float(one["speedup"]) == 1.0 and float(one["efficiency"]) == 1.0
    s2 = float(two["speedup"])
    # 4 s of work split in two plus launch overhead: faster, but not beyond ideal
    assert 1.0 < s2 <= 2.2, output
    assert float(two["efficiency"]) == pytest.approx(s2 / 2, abs=1e-3)
    assert [int(r["images"]) for r in rows] == [8, 8]
    # per-rank busy time halves: busy throughput is 2 items/s per rank, p ranks
    assert float(one["images_per_busy_second"]) == pytest.approx(2.0, rel=0.2)
    assert float(two["images_per_busy_second"]) == pytest.approx(4.0, rel=0.2)
    assert one["launcher"] == "srun" and one["workload"] == "--items 8 --seconds-per-item 0.5"
    assert one["host"] and one["cpu"] and one["date"]
    for np_ in (1, 2):
        summary = json.loads((tmp_path / "runs" / "standin-run" / f"np{np_}" /
                              "summary.json").read_text())
        assert summary["ranks"] == np_
    assert "parallel time (s)" in output and "speed-up" in output
    png = csv_path.with_name("strong_standin-run.png")
    assert f"plot: {png}" in output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.slurm
def test_strong_scaling_sbatch_requires_np_1(slurm_cluster, tmp_path):
    env = dict(NP_LIST="2 4", JOB_CMD=STANDIN_CMD, SCALING_CSV=str(tmp_path / "s.csv"),
               SCALING_OUT=str(tmp_path / "runs"))
    output = _submit(slurm_cluster, "strong_scaling.sbatch", tmp_path, env=env, expect_ok=False)
    assert "NP_LIST must contain 1" in output
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.slurm
def test_generate_sbatch_runs_ranks_with_horovodrun(slurm_cluster, tmp_path):
    out = tmp_path / "generated"
    env = dict(JOB_CMD=STANDIN_CMD, OUT_DIR=str(out))
    output = _submit(slurm_cluster, "generate.sbatch", tmp_path, "--items", "6",
                     "--seconds-per-item", "0.05", "--method", "traditional",
                     options=("--ntasks-per-node=2", "--cpus-per-task=1", "--gres=gpu:2"),
                     env=env)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["images"] == 6
    assert summary["extra_args"] == ["--method", "traditional"]  # passed through untouched
    assert f"-np 2 -H {slurm_cluster.node}:2 --gloo" in output
    assert f"into {out}" in output


@pytest.mark.slurm
def test_generate_multinode_sbatch_launches_with_srun(slurm_cluster, tmp_path):
    # LAUNCHER defaults to srun here (slurm/hvd_slurm.py); the real job's Horovod collectives
    # through it are checked by test_strong_scaling_sbatch_with_augment
    out = tmp_path / "generated"
    env = dict(JOB_CMD=STANDIN_CMD, OUT_DIR=str(tmp_path / "not-used"),
               JOB_ARGS=f"--items 4 --seconds-per-item 0.05 --out={out}")  # --out wins
    output = _submit(slurm_cluster, "generate_multinode.sbatch", tmp_path,
                     options=("--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
                              "--gres=gpu:2"), env=env)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["images"] == 4
    assert sorted((r["rank"], r["local_rank"]) for r in summary["per_rank"]) == [(0, 0), (1, 1)]
    assert "launcher srun" in output and "srun --ntasks=2 --nodes=1" in output
    assert f"into {out}" in output and not (tmp_path / "not-used").exists()




@pytest.mark.slurm
def test_strong_scaling_sbatch_with_augment(slurm_cluster, tmp_path):
    # two demo images (and their masks), in the demo's BUSI layout
    demo = REPO / "tf_usaug" / "demo_data"
    content = tmp_path / "content"
    images = sorted(p for p in demo.rglob("*.png") if not p.stem.endswith("_mask"))[:2]
    for image in images:
        for src in (image, image.with_name(f"{image.stem}_mask.png")):
            if src.exists():
                dst = content / src.relative_to(demo)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dst)
    csv_path = tmp_path / "strong.csv"
    # srun launcher: the real job's Horovod collectives through slurm/hvd_slurm.py's Gloo
    # rendezvous (horovodrun is covered by test_generate_sbatch_runs_ranks_with_horovodrun)
    env = dict(NP_LIST="1 2", RUN_ID="augment-run", SCALING_CSV=str(csv_path),
               SCALING_OUT=str(tmp_path / "runs"), LAUNCHER="srun")
    output = _submit(slurm_cluster, "strong_scaling.sbatch", tmp_path,
                     "--content", str(content), "--method", "nst", "--weights", "none",
                     "--size", "32", "--iterations", "5", "--per-image", "1", "--no-relevance",
                     "--no-progress", env=env)
    rows = _csv_rows(csv_path)
    assert [int(r["processes"]) for r in rows] == [1, 2], output
    assert float(rows[0]["speedup"]) == 1.0
    assert 0.2 < float(rows[1]["speedup"]) <= 2.2  # start-up dominates such a tiny job
    assert [int(r["images"]) for r in rows] == [len(images)] * 2
    assert {r["launcher"] for r in rows} == {"srun"}
    for np_ in (1, 2):
        summary = json.loads((tmp_path / "runs" / "augment-run" / f"np{np_}" /
                              "summary.json").read_text())
        assert summary["ranks"] == np_ and len(summary["per_rank"]) == np_
    png = csv_path.with_name("strong_augment-run.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
