"""Output folders that never mix two runs: fingerprints, a lock, and checks before any work.

Every job that writes a folder of results (``augment``, ``simulate``, and the trainers to come)
uses :class:`RunDir`:

* :meth:`RunDir.check_target` refuses, before any model is built, an ``--out`` that is empty,
  an existing file, or inside a folder that cannot be written;
* :meth:`RunDir.lock` takes an exclusive ``fcntl`` lock on ``OUT/.lock`` for the whole run; a
  second process into the same folder is refused with a line naming the holder (pid, host,
  start time). The kernel drops the lock when its holder dies, so a kill -9 never leaves a
  stale lock behind;
* :meth:`RunDir.check_settings` compares the settings that change the results' bytes with
  those recorded in ``OUT/run.json`` by the run that made the folder: a rerun with other
  settings is refused with one line naming each differing setting, unless ``overwrite``, which
  records the new settings (the job then regenerates what does not match and removes what no
  longer belongs).

Items inside a run carry their own :func:`fingerprint` (settings + the content hashes of their
input files), so an item whose input file changed is regenerated even when the settings match.
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import hashlib
import json
import os
import socket
from pathlib import Path
from typing import Any, Mapping

from .errors import OutputError, UsageError
from .files import write_json

RUN_FILE = "run.json"
LOCK_FILE = ".lock"


def fingerprint(settings: Mapping[str, Any], **parts: Any) -> str:
    """A short hash of the settings and any further parts (input digests, k, seed ...)."""
    blob = json.dumps({"settings": dict(settings), **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def describe_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``name old -> new`` for every setting that differs (missing ones shown as ``-``)."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            diffs.append(f"{key} {_short(old.get(key, '-'))} -> {_short(new.get(key, '-'))}")
    return diffs


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RunDir:
    """The output folder of one job run (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, option: str = "--out"):
        if str(root).strip() == "":
            raise UsageError(f"{option} must not be empty (give a folder for the results)")
        self.root = Path(root)
        self.option = option
        self._lock_fh = None

    @property
    def run_path(self) -> Path:
        return self.root / RUN_FILE

    # ------------------------------------------------------------------ before any work
    def check_target(self) -> None:
        """Refuse a target that is a file or whose nearest existing folder is not writable."""
        if self.root.exists() and not self.root.is_dir():
            raise UsageError(f"{self.option} {self.root} exists and is not a folder; "
                             "give a folder for the results")
        probe = self.root
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        if not probe.is_dir():
            raise UsageError(f"{self.option} {self.root}: {probe} is not a folder")
        if not os.access(probe, os.W_OK | os.X_OK):
            raise OutputError(f"{self.option} {self.root}: cannot write in {probe} "
                              "(permission denied); choose another folder")

    # ------------------------------------------------------------------ the lock
    def lock(self) -> "RunDir":
        """Take the folder's lock (creating the folder); refuse when another process holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK_FILE
        fh = open(path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise OutputError(f"{self.option} {self.root} is in use by {holder}; wait for it "
                              "to finish or choose another folder") from None
        fh.seek(0)
        fh.truncate()
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
        fh.flush()
        self._lock_fh = fh
        return self

    def unlock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> "RunDir":
        return self.lock()

    def __exit__(self, *exc) -> bool:
        self.unlock()
        return False

    # ------------------------------------------------------------------ the settings
    def recorded_settings(self) -> dict | None:
        """The settings in ``OUT/run.json``, or None for a new folder."""
        if not self.run_path.is_file():
            return None
        try:
            return json.loads(self.run_path.read_text())["settings"]
        except (ValueError, KeyError, TypeError) as exc:
            raise OutputError(f"{self.run_path}: unreadable run record ({exc}); move the "
                              "folder away or rerun with --overwrite") from None

    def check_settings(self, job: str, settings: Mapping[str, Any], overwrite: bool = False,
                       has_results: bool = False) -> bool:
        """Refuse a rerun with other settings; record the settings. Returns True when changed.

        Args:
            job: the job's name (``augment``, ``simulate`` ...), recorded and compared too.
            settings: everything that changes the bytes of the results (JSON-serialisable).
            overwrite: accept different settings (the caller regenerates and prunes).
            has_results: the folder holds results but no run record (made before records
                existed, or by hand): treated like different settings.
        """
        new = {"job": job, **settings}
        old = self.recorded_settings()
        if old is None and not has_results:
            write_json(self.run_path, {"settings": new})
            return False
        if old == new:
            return False
        if not overwrite:
            if old is None:
                what = "results without a run record (made by an older version or by hand)"
            else:
                what = "a run with other settings: " + ", ".join(describe_differences(old, new))
            raise OutputError(f"{self.option} {self.root} holds {what}; choose a new "
                              f"{self.option}, or pass --overwrite to regenerate it")
        write_json(self.run_path, {"settings": new})
        return True
