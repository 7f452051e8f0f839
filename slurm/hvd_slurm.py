"""Horovod (Gloo) inside a SLURM allocation: the host list for horovodrun, or an srun launch.

    python slurm/hvd_slurm.py hosts                      # "node1:8,node2:8" (horovodrun -H)
    python slurm/hvd_slurm.py max-np                     # ranks the allocation can hold
    python slurm/hvd_slurm.py run -np 16 -- python -m tf_usaug.augment --out aug/

``run`` is the launcher for clusters where compute nodes cannot ssh to each other (horovodrun
starts remote ranks over ssh) and for pyxis containers, which start only through srun. It does
what horovodrun's Gloo launcher does (horovod/runner/gloo_run.py, Horovod 0.28.1): start the
HTTP rendezvous server with the slot plan, then start one worker per slot with the HOROVOD_*
variables set. Here srun starts the workers, and each maps SLURM_PROCID / SLURM_LOCALID /
SLURM_NODEID to its Horovod rank / local rank / cross rank. No MPI is involved.

Ranks fill nodes in allocation order: ``-np`` up to the first node's task slots runs on one
node; more must be a multiple of that slot count (same number of ranks on every node used).
Standard library only, except ``run``, which imports Horovod's rendezvous server.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from typing import Sequence

# Each srun task turns its SLURM coordinates into Horovod's before exec'ing the job.
WORKER_SCRIPT = ('export HOROVOD_RANK="$SLURM_PROCID" HOROVOD_LOCAL_RANK="$SLURM_LOCALID" '
                 'HOROVOD_CROSS_RANK="$SLURM_NODEID" HOROVOD_HOSTNAME="$SLURMD_NODENAME"; '
                 'exec "$@"')


class AllocationError(ValueError):
    """The requested ranks do not fit the allocation (message says why)."""


def expand_tasks_per_node(spec: str) -> list[int]:
    """SLURM's compressed per-node counts, e.g. ``"8(x2),4"`` -> ``[8, 8, 4]``.

    Args:
        spec: the value of SLURM_TASKS_PER_NODE (or SLURM_JOB_CPUS_PER_NODE).
    """
    counts: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part)
        if not m:
            raise AllocationError(f"cannot parse tasks per node {spec!r}")
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts


def allocation_hosts(env: dict | None = None) -> list[tuple[str, int]]:
    """(node name, task slots) of the current allocation, in SLURM's node order.

    Outside SLURM: ``[("localhost", N)]`` with N the visible GPUs, else the CPU cores.
    """
    env = os.environ if env is None else env
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        return [("localhost", visible_gpus() or len(os.sched_getaffinity(0)))]
    proc = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise AllocationError(f"scontrol show hostnames {nodelist} failed: {last}")
    names = proc.stdout.split()
    spec = env.get("SLURM_TASKS_PER_NODE") or env.get("SLURM_JOB_CPUS_PER_NODE") or ""
    slots = expand_tasks_per_node(spec) if spec else [1] * len(names)
    if len(slots) != len(names):
        raise AllocationError(f"{len(names)} nodes ({nodelist}) but tasks per node {spec!r}")
    return list(zip(names, slots))


def visible_gpus() -> int:
    """Number of NVIDIA GPUs nvidia-smi lists (0 without a driver)."""
    if not shutil.which("nvidia-smi"):
        return 0
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def horovodrun_hosts(np_: int, hosts: Sequence[tuple[str, int]]) -> str:
    """``-H`` value with exactly ``np_`` slots, filling nodes in order.

    horovodrun starts one rank per listed slot whatever ``-np`` says, so the list must not
    offer more slots than ranks.
    """
    if np_ < 1:
        raise AllocationError(f"-np must be >= 1, got {np_}")
    parts, left = [], np_
    for name, slots in hosts:
        if left == 0:
            break
        take = min(slots, left)
        parts.append(f"{name}:{take}")
        left -= take
    if left:
        total = sum(s for _, s in hosts)
        raise AllocationError(f"-np {np_} does not fit the allocation ({total} slots)")
    return ",".join(parts)


def rank_layout(np_: int, hosts: Sequence[tuple[str, int]]) -> tuple[list[str], int]:
    """The nodes to use and the ranks per node for ``np_`` ranks (block fill, even per node).

    Args:
        np_: total ranks.
        hosts: (name, slots) from :func:`allocation_hosts`.
    Returns:
        (node names, ranks per node).
    """
    if np_ < 1:
        raise AllocationError(f"-np must be >= 1, got {np_}")
    first = hosts[0][1]
    if np_ <= first:
        return [hosts[0][0]], np_
    if np_ % first:
        raise AllocationError(f"-np {np_} exceeds one node's {first} slots and is not a "
                              f"multiple of it; use a multiple of {first}")
    n_nodes = np_ // first
    if n_nodes > len(hosts) or any(s < first for _, s in hosts[:n_nodes]):
        total = sum(s for _, s in hosts)
        raise AllocationError(f"-np {np_} does not fit the allocation "
                              f"({', '.join(f'{h}:{s}' for h, s in hosts)}; {total} slots)")
    return [h for h, _ in hosts[:n_nodes]], first


def rendezvous_address(single_node: bool) -> tuple[str, str | None]:
    """(address the workers reach this host at, network interface of that address).

    One node: loopback. Several: the address the host name resolves to, or, when that is a
    loopback address (Debian's 127.0.1.1), the first non-loopback IPv4 interface.
    HOROVOD_GLOO_RENDEZVOUS_ADDR / HOROVOD_GLOO_IFACE override the guess.
    """
    addr, iface = "127.0.0.1", "lo"
    if not single_node:
        import psutil  # comes with horovod

        ipv4 = {name: a.address for name, addrs in sorted(psutil.net_if_addrs().items())
                for a in addrs if a.family == socket.AF_INET}
        resolved = socket.gethostbyname(socket.gethostname())
        by_addr = {a: n for n, a in ipv4.items()}
        if resolved in by_addr and not resolved.startswith("127."):
            addr, iface = resolved, by_addr[resolved]
        else:
            outside = [(n, a) for n, a in ipv4.items() if not a.startswith("127.")]
            if outside:
                iface, addr = outside[0]
        if "HOROVOD_GLOO_IFACE" in os.environ and "HOROVOD_GLOO_RENDEZVOUS_ADDR" not in os.environ:
            iface = os.environ["HOROVOD_GLOO_IFACE"]
            addr = ipv4.get(iface, addr)
    return (os.environ.get("HOROVOD_GLOO_RENDEZVOUS_ADDR", addr),
            os.environ.get("HOROVOD_GLOO_IFACE", iface))


def srun_command(np_: int, nodes: Sequence[str], per_node: int, command: Sequence[str],
                 extra: Sequence[str] = (), cpus_per_task: str | None = None) -> list[str]:
    """The srun command line that starts the ranks (one task per rank)."""
    cmd = ["srun", f"--ntasks={np_}", f"--nodes={len(nodes)}", f"--ntasks-per-node={per_node}",
           f"--nodelist={','.join(nodes)}", "--kill-on-bad-exit=1"]
    if cpus_per_task:
        cmd.append(f"--cpus-per-task={cpus_per_task}")  # srun >= 22.05 no longer inherits it
    return cmd + list(extra) + ["bash", "-c", WORKER_SCRIPT, "hvd-worker", *command]


def run(np_: int, command: Sequence[str], srun_extra: Sequence[str] = (),
        dry_run: bool = False) -> int:
    """Start the rendezvous server, run the ranks with srun, return srun's exit code."""
    hosts = allocation_hosts()
    nodes, per_node = rank_layout(np_, hosts)
    addr, iface = rendezvous_address(single_node=len(nodes) == 1)
    cmd = srun_command(np_, nodes, per_node, command, srun_extra,
                       os.environ.get("SLURM_CPUS_PER_TASK"))
    print("+ " + shlex.join(cmd), file=sys.stderr, flush=True)
    if dry_run:
        return 0
    from horovod.runner.common.util.hosts import HostInfo, get_host_assignments
    from horovod.runner.http.http_server import RendezvousServer

    server = RendezvousServer(verbose=0)
    port = server.start()
    # Horovod: the same slot plan horovodrun would build for -H node:per_node,...
    server.init(get_host_assignments([HostInfo(n, per_node) for n in nodes], np_))
    env = dict(os.environ,
               HOROVOD_GLOO_RENDEZVOUS_ADDR=addr, HOROVOD_GLOO_RENDEZVOUS_PORT=str(port),
               HOROVOD_CONTROLLER="gloo", HOROVOD_CPU_OPERATIONS="gloo",
               HOROVOD_SIZE=str(np_), HOROVOD_LOCAL_SIZE=str(per_node),
               HOROVOD_CROSS_SIZE=str(len(nodes)), PYTHONUNBUFFERED="1")
    if iface:
        env["HOROVOD_GLOO_IFACE"] = iface
        env.setdefault("NCCL_SOCKET_IFNAME", iface)
    try:
        return subprocess.call(cmd, env=env)
    finally:
        server.stop()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python slurm/hvd_slurm.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    h = sub.add_parser("hosts", help="print the allocation as horovodrun -H host:slots,...")
    h.add_argument("-np", "--num-proc", type=int, dest="np",
                   help="only as many slots as ranks (default: all slots)")
    sub.add_parser("max-np", help="print the number of task slots in the allocation")
    r = sub.add_parser("run", help="launch a Horovod Gloo job with srun")
    r.add_argument("-np", "--num-proc", type=int, required=True, dest="np")
    r.add_argument("--srun-args", default=os.environ.get("HVD_SRUN_ARGS", ""),
                   help="extra srun options, one string (default $HVD_SRUN_ARGS)")
    r.add_argument("--dry-run", action="store_true", help="print the srun command only")
    r.add_argument("job", nargs=argparse.REMAINDER, help="-- the command each rank runs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "hosts":
            hosts = allocation_hosts()
            np_ = args.np if args.np is not None else sum(s for _, s in hosts)
            print(horovodrun_hosts(np_, hosts))
        elif args.command == "max-np":
            print(sum(s for _, s in allocation_hosts()))
        else:
            job = args.job[1:] if args.job[:1] == ["--"] else args.job
            if not job:
                raise AllocationError("no command given after --")
            return run(args.np, job, shlex.split(args.srun_args), args.dry_run)
    except (AllocationError, OSError) as exc:
        print(f"hvd_slurm: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
