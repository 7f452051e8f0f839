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
