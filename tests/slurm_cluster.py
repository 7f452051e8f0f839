"""A throw-away one-node SLURM cluster on this machine, for tests of the sbatch templates.

Debian's packages (slurmctld, slurmd, slurm-client, munge) are installed with apt-get when
missing; their service scripts cannot start anything in a container, so the daemons are
started by hand: ``munged`` as the munge user (unless one already answers), ``slurmctld -D``
and ``slurmd -D`` from a generated slurm.conf whose state, spool, logs and ports are private
to a temporary folder. Clients find the cluster through ``SLURM_CONF``. :meth:`stop` shuts
the daemons down by their PIDs. Nothing else on the machine is touched (apart from the
installed packages and /run/munge).

The node is declared as a DGX A100 (128 CPUs, 8 ``gpu`` GRES whose device files are symlinks
to /dev/null), more than the machine has (``SlurmdParameters=config_overrides``), so the templates' own ``#SBATCH`` lines
(``--gres=gpu:8 --ntasks-per-node=8 --cpus-per-task=16``) are accepted unchanged.

    python tests/slurm_cluster.py            # start, print the environment, wait for Ctrl-C
"""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "srun", "munged", "munge")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


class ClusterUnavailable(RuntimeError):
    """This machine cannot run the cluster (not root, no apt-get, install failed)."""


def _which_all(names=BINARIES) -> list[str]:
    extra = os.pathsep.join(("/usr/sbin", "/sbin"))
    path = os.environ.get("PATH", "") + os.pathsep + extra
    return [n for n in names if shutil.which(n, path=path) is None]


def _bin(name: str) -> str:
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    found = shutil.which(name, path=path)
    if found is None:
        raise ClusterUnavailable(f"{name} not found after installation")
    return found


def install_packages(timeout: float = 600) -> None:
    """apt-get install the SLURM and munge packages when any binary is missing."""
    if not _which_all():
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable("needs root to install slurm/munge packages")
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable("apt-get not available to install slurm/munge")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:  # stale or missing package lists: update once, then retry
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True,
                       timeout=timeout)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or _which_all():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ClusterUnavailable(f"apt-get install {' '.join(PACKAGES)} failed: "
                                 + " | ".join(tail))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(workdir: Path, node: str, cpus: int, gpus: int, ctld_port: int,
               slurmd_port: int) -> str:
    """slurm.conf text for a one-node cluster whose files all live under ``workdir``."""
    return "\n".join([
        "ClusterName=usaugtest",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        f"StateSaveLocation={workdir}/state",
        f"SlurmdSpoolDir={workdir}/spool",
        f"SlurmctldPidFile={workdir}/slurmctld.pid",
        f"SlurmdPidFile={workdir}/slurmd.pid",
        f"SlurmctldLogFile={workdir}/slurmctld.log",
        f"SlurmdLogFile={workdir}/slurmd.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/backfill",
        "GresTypes=gpu",
        # declared hardware wins over what slurmd detects (a 2-core VM posing as a DGX)
        "SlurmdParameters=config_overrides",
        "ReturnToService=2",
        "MinJobAge=2",
        "KillWait=5",
        "InactiveLimit=0",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} Gres=gpu:{gpus} State=UNKNOWN",
        f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


@dataclass
class LocalSlurm:
    """Daemons of a one-node cluster; ``env`` is what a client needs (SLURM_CONF)."""

    workdir: Path
    node: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    cpus: int = 128
    gpus: int = 8
    procs: dict = field(default_factory=dict)
    conf: Path | None = None
    _log_files: list = field(default_factory=list, repr=False)

    def _log(self, name: str):
        handle = open(self.workdir / name, "w")
        self._log_files.append(handle)
        return handle

    @property
    def env(self) -> dict:
        return dict(os.environ, SLURM_CONF=str(self.conf))

    # -- munge ---------------------------------------------------------------------------
    def _munge_works(self) -> bool:
        try:
            cred = subprocess.run([_bin("munge"), "-n"], capture_output=True, timeout=10)
            if cred.returncode != 0:
                return False
            back = subprocess.run([_bin("unmunge")], input=cred.stdout, capture_output=True,
                                  timeout=10)
            return back.returncode == 0
        except (OSError, subprocess.TimeoutExpired, ClusterUnavailable):
            return False

    def _start_munge(self) -> None:
        if self._munge_works():
            return  # a munged already serves /run/munge: use it, leave it running
        user = pwd.getpwnam("munge")
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            subprocess.run([_bin("mungekey"), "--create", f"--keyfile={key}"], check=True,
                           capture_output=True)
        for folder in (Path("/run/munge"), Path("/var/log/munge"), Path("/var/lib/munge")):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, user.pw_uid, user.pw_gid)
        os.chown(key, user.pw_uid, user.pw_gid)
        os.chmod(key, 0o400)
        proc = subprocess.Popen([_bin("munged"), "-F", "--force"], user=user.pw_uid,
                                group=user.pw_gid, extra_groups=[], stdout=subprocess.DEVNULL,
                                stderr=self._log("munged.err"))
        self.procs["munged"] = proc
        self._wait(self._munge_works, 15, "munged did not answer", proc)

    # -- slurm ---------------------------------------------------------------------------
    def start(self, timeout: float = 40) -> "LocalSlurm":
        """Install what is missing, write the config and start munged, slurmctld, slurmd."""
        if os.geteuid() != 0:
            raise ClusterUnavailable("needs root (slurmd and munged run as root/munge)")
        install_packages()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for sub in ("state", "spool"):
            (self.workdir / sub).mkdir(exist_ok=True)
        self.conf = self.workdir / "slurm.conf"
        self.conf.write_text(slurm_conf(self.workdir, self.node, self.cpus, self.gpus,
                                        free_port(), free_port()))
        # slurmd drops GPUs without device files: fake ones, character devices via /dev/null
        devices = self.workdir / "dev"
        devices.mkdir(exist_ok=True)
        for i in range(self.gpus):
            fake = devices / f"nvidia{i}"
            if not fake.is_symlink():
                fake.symlink_to("/dev/null")
        (self.workdir / "gres.conf").write_text(
            f"NodeName={self.node} Name=gpu File={devices}/nvidia[0-{self.gpus - 1}]\n")
        try:
            self._start_munge()
            for daemon in ("slurmctld", "slurmd"):
                args = [_bin(daemon), "-D", "-f", str(self.conf)]
                if daemon == "slurmctld":
                    args.append("-c")  # clear state from earlier runs
                else:
                    args += ["-N", self.node]
                self.procs[daemon] = subprocess.Popen(
                    args, env=self.env, stdout=subprocess.DEVNULL,
                    stderr=self._log(f"{daemon}.err"),
                    start_new_session=True)
                if daemon == "slurmctld":
                    self._wait(self._ctld_up, timeout, "slurmctld did not answer",
                               self.procs[daemon])
            self._wait(self._node_idle, timeout, "the node did not become idle",
                       self.procs["slurmd"])
        except BaseException:
            self.stop()
            raise
        return self

    def _ctld_up(self) -> bool:
        return subprocess.run(["scontrol", "ping"], env=self.env, capture_output=True,
                              text=True).stdout.find("UP") >= 0

    def _node_idle(self) -> bool:
        out = subprocess.run(["sinfo", "-h", "-n", self.node, "-o", "%T"], env=self.env,
                             capture_output=True, text=True).stdout.strip()
        return out.startswith("idle")

    def _wait(self, ready, timeout: float, what: str, proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{what} (exit code {proc.poll()}):\n{self.logs()}")

    def logs(self, lines: int = 15) -> str:
        out = []
        for name in ("munged.err", "slurmctld.log", "slurmctld.err", "slurmd.log",
                     "slurmd.err"):
            path = self.workdir / name
            if path.exists() and path.stat().st_size:
                out.append(f"--- {path}")
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    def sbatch_wait(self, script: str | Path, *args: str, options: tuple = (),
                    env: dict | None = None, cwd: str | Path | None = None,
                    timeout: float = 300) -> subprocess.CompletedProcess:
        """Submit ``sbatch [options] script args`` and wait for the job to end.

        Like ``sbatch --wait`` (returncode 0 only when the job exited 0), but polls every
        0.2 s instead of sbatch's growing 2-10 s interval. ``stdout`` is the job id.
        """
        full_env = dict(self.env, **(env or {}))
        sub = subprocess.run(["sbatch", "--parsable", *options, str(script), *args],
                             env=full_env, cwd=cwd, capture_output=True, text=True, timeout=60)
        if sub.returncode != 0:
            return sub
        job_id = sub.stdout.strip().split(";")[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=self.env,
                                  capture_output=True, text=True).stdout
            fields = dict(f.split("=", 1) for f in info.split() if "=" in f)
            state = fields.get("JobState", "")
            if state and state not in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING"):
                code = fields.get("ExitCode", "1:0").split(":")
                rc = int(code[0]) or int(code[1])
                if state != "COMPLETED" and rc == 0:
                    rc = 1
                return subprocess.CompletedProcess(sub.args, rc, job_id,
                                                   f"job {job_id} {state} ExitCode={code}")
            time.sleep(0.2)
        subprocess.run(["scancel", job_id], env=self.env, capture_output=True)
        raise TimeoutError(f"job {job_id} did not finish in {timeout} s:\n{self.logs()}")

    def stop(self) -> None:
        """``scontrol shutdown``, then end the daemons this object started, by PID."""
        if self.conf is not None and "slurmctld" in self.procs:
            subprocess.run(["scontrol", "shutdown"], env=self.env, capture_output=True,
                           timeout=20)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            if name == "munged":  # scontrol shutdown does not stop munged
                proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        while self._log_files:
            self._log_files.pop().close()


def main() -> int:
    import tempfile

    cluster = LocalSlurm(Path(tempfile.mkdtemp(prefix="usaug-slurm-")))
    try:
        cluster.start()
    except ClusterUnavailable as exc:
        print(f"cannot start a local SLURM cluster: {exc}", file=sys.stderr)
        return 2
    print(f"export SLURM_CONF={cluster.conf}   # cluster up; Ctrl-C stops it")
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
