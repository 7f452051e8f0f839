"""Shared fixtures. Tests run on the CPU, offline, with tiny images and weights=None."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "tf_usaug" / "demo_data"


def venv_bin(name: str) -> str:
    """Path of a console script installed beside the running interpreter."""
    cand = Path(sys.executable).with_name(name)
    return str(cand) if cand.exists() else (shutil.which(name) or name)


def run_module(module: str, *args: str, env: dict | None = None, timeout: float = 600,
               check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in a fresh process and return its completed process."""
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO


@pytest.fixture(scope="session")
def horovodrun() -> str:
    exe = venv_bin("horovodrun")
    if not (Path(exe).exists() or shutil.which(exe)):
        pytest.skip("horovodrun not installed (run `make install`)")
    return exe


def one_error_line(rc: int, stderr: str) -> str:
    """The ``error:`` line that ends a refused run (exit 2, no traceback)."""
    assert rc == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), stderr
    return lines[-1]


def kill_then_resume(cmd: list[str], counter: str, at_least: int, capsys, model_file: str,
                     timeout: float = 180) -> tuple[dict, subprocess.CompletedProcess]:
    """A trainer killed by SIGKILL mid-training, then resumed: the shared part of every
    trainer's resume test.

    Starts ``cmd`` (``python -m tf_usaug.train <trainer> ... --out RUN``), kills it once
    ``RUN/checkpoints/state.json`` records ``counter`` (``step`` / ``epoch``) >= ``at_least``
    (before ``RUN/<model_file>`` exists: mid-training), checks that a rerun without ``--resume`` is refused in one line (in this process, before
    TensorFlow runs), then reruns with ``--resume`` and checks its resume line.

    Returns:
        The state the kill left and the resumed run's completed process.
    """
    import json
    import signal
    import time

    from tf_usaug import train

    out = Path(cmd[cmd.index("--out") + 1])
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoints" / "state.json"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if state.is_file() and json.loads(state.read_text())[counter] >= at_least:
                break
        except ValueError:
            pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed mid-training, not finished
    stopped = json.loads(state.read_text())
    assert not (out / model_file).exists()

    rc = train.main(cmd[3:])  # without --resume: refused, before TensorFlow runs
    line = one_error_line(rc, capsys.readouterr().err)
    assert "holds a started run" in line and "--resume" in line
    resumed = run_module("tf_usaug.train", *cmd[3:], "--resume")
    assert f"==> resume: {out} after {counter} {stopped[counter]}" in resumed.stderr
    return stopped, resumed
