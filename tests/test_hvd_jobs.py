"""hvd_jobs/*.sh: the horovodrun command each launcher builds (DRY_RUN=1), bad input, a real
two-rank launch through horovodrun, and generate.sh end to end once tf_usaug.augment exists."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

JOBS = REPO / "hvd_jobs"
SCRIPTS = {"generate.sh": "tf_usaug.augment"}
STANDIN = REPO / "tests" / "support" / "standin_job.py"




def _run(script: str, *args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("NP", "HOSTS", "PYTHON", "HOROVODRUN", "EXTRA", "MODULE", "DRY_RUN")}
    full_env.update(env)
    return subprocess.run([str(JOBS / script), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)


def _printed_command(proc: subprocess.CompletedProcess) -> list[str]:
    lines = [l for l in proc.stderr.splitlines() if l.startswith("+ ")]
    assert len(lines) == 1, proc.stderr
    return shlex.split(lines[0][2:])


@pytest.mark.parametrize("script, module", sorted(SCRIPTS.items()))
def test_dry_run_prints_command_with_np_and_default_hosts(script, module):
    proc = _run(script, "--out", "dir with space", "--seed", "3", DRY_RUN="1", NP="3",
                PYTHON="/opt/py/bin/python", HOROVODRUN="/opt/hvd/horovodrun")
    assert proc.returncode == 0, proc.stderr
    assert _printed_command(proc) == ["/opt/hvd/horovodrun", "-np", "3", "-H", "localhost:3",
                                      "--gloo", "/opt/py/bin/python", "-m", module,
                                      "--out", "dir with space", "--seed", "3"]
    assert proc.stdout == ""  # nothing ran


def test_dry_run_hosts_extra_and_module_override():
    proc = _run("generate.sh", "--seed", "2", DRY_RUN="1", NP="16",
                HOSTS="node1:8,node2:8", EXTRA="--verbose --timeline-filename tl.json",
                MODULE="mylab.augment", PYTHON="python3", HOROVODRUN="horovodrun")
    assert proc.returncode == 0, proc.stderr
    assert _printed_command(proc) == ["horovodrun", "-np", "16", "-H", "node1:8,node2:8",
                                      "--gloo", "--verbose", "--timeline-filename", "tl.json",
                                      "python3", "-m", "mylab.augment", "--seed", "2"]


def test_train_runs_the_module_it_is_given():
    proc = _run("train.sh", "mylab.train_classifier", "--epochs", "2", DRY_RUN="1", NP="4",
                PYTHON="python3", HOROVODRUN="horovodrun", MODULE="ignored.module")
    assert proc.returncode == 0, proc.stderr
    assert _printed_command(proc) == ["horovodrun", "-np", "4", "-H", "localhost:4", "--gloo",
                                      "python3", "-m", "mylab.train_classifier", "--epochs", "2"]
    for args in ([], ["--epochs", "2"]):
        proc = _run("train.sh", *args, DRY_RUN="1", NP="4")
        assert proc.returncode == 2 and proc.stderr.startswith("error: usage: hvd_jobs/train.sh")


def test_evaluate_benefit_runs_the_benefit_evaluation():
    proc = _run("evaluate_benefit.sh", "--data", "bench", "--train-device", "A", DRY_RUN="1",
                NP="4", PYTHON="python3", HOROVODRUN="horovodrun")
    assert proc.returncode == 0, proc.stderr
    assert _printed_command(proc) == ["horovodrun", "-np", "4", "-H", "localhost:4", "--gloo",
                                      "python3", "-m", "tf_usaug.evaluate", "benefit",
                                      "--data", "bench", "--train-device", "A"]


def test_default_python_is_the_repository_venv_and_np_the_gpu_count():
    proc = _run("generate.sh", DRY_RUN="1", cwd=Path("/"))
    assert proc.returncode == 0, proc.stderr
    cmd = _printed_command(proc)
    venv_python = REPO / ".venv" / "bin" / "python"
    if venv_python.exists():
        assert cmd[cmd.index("-m") - 1] == str(venv_python)
        assert cmd[0] == str(venv_python.with_name("horovodrun"))
    gpus = 0
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
        gpus = sum(l.startswith("GPU ") for l in out.splitlines())
    np_ = str(gpus or 1)
    assert cmd[1:5] == ["-np", np_, "-H", f"localhost:{np_}"]


@pytest.mark.parametrize("np_", ["0", "two", "-1", "1.5"])
def test_bad_np_is_one_clear_error(np_):
    proc = _run("generate.sh", DRY_RUN="1", NP=np_)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: NP must be a positive integer, got '{np_}'"


def test_missing_horovodrun_is_one_clear_error():
    proc = _run("train.sh", "mylab.train", NP="1", HOROVODRUN="/nonexistent/horovodrun")
    assert proc.returncode == 2
    assert "error: horovodrun not found (/nonexistent/horovodrun)" in proc.stderr


@pytest.mark.parametrize("script, module", sorted(SCRIPTS.items()))
def test_script_header_names_its_module(script, module):
    text = (JOBS / script).read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert f"Runs `python -m {module} ARGS`" in text
    assert "set -euo pipefail" in text
    assert os.access(JOBS / script, os.X_OK)


def test_scripts_are_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    files = [f"hvd_jobs/{s}" for s in (*SCRIPTS, "train.sh", "evaluate_benefit.sh",
                                       "_launch.sh")]
    proc = subprocess.run(["shellcheck", "-x", *files], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.hvd
def test_two_ranks_really_launch(horovodrun, tmp_path):
    # The stand-in plays PYTHON: it receives "-m mylab.train_gan ARGS" on each rank.
    out = tmp_path / "out"
    proc = _run("train.sh", "mylab.train_gan", "--out", str(out), "--items", "4",
                "--seconds-per-item", "0.01", "--epochs", "1", NP="2", PYTHON=str(STANDIN),
                HOROVODRUN=horovodrun)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["images"] == 4
    assert summary["module"] == "mylab.train_gan"
    assert summary["extra_args"] == ["--epochs", "1"]
    assert sorted(r["rank"] for r in summary["per_rank"]) == [0, 1]


@pytest.mark.hvd
def test_generate_two_ranks_end_to_end(horovodrun, tmp_path):
    out = tmp_path / "aug"
    proc = _run("generate.sh", "--demo", "--method", "traditional", "--per-image", "1",
                "--size", "32", "--out", str(out), "--no-progress", NP="2",
                PYTHON=sys.executable, HOROVODRUN=horovodrun)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks"] == 2 and len(summary["per_rank"]) == 2
    assert summary["images"] > 0
    assert sum(r["images"] for r in summary["per_rank"]) == summary["images"]
    manifest = (out / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == summary["images"]
    assert re.search(r"-np 2 -H localhost:2 --gloo", proc.stderr)
