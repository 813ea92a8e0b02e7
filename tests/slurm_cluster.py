"""A throw-away one-node SLURM cluster on this host (Debian's slurm-wlm and munge, no accounting).

``Cluster(folder)`` writes a slurm.conf for this host into ``folder``, starts munged (as the munge
user, on its own socket and key), slurmctld and slurmd in the foreground as child processes, and
waits until the node is idle; ``stop()`` ends exactly those processes by their PID (TERM, then KILL
after a bounded wait). Client commands reach it through ``env`` (SLURM_CONF); ports are free ones
picked at start, so a cluster of the system or of another test is not disturbed.
See ../shared/reference/slurm.md for the measured facts this follows.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")


def missing_binaries() -> list[str]:
    path = os.environ.get("PATH", "") + os.pathsep + SBIN
    return [b for b in DAEMONS + CLIENTS if shutil.which(b, path=path) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_hardware() -> dict:
    """CPUs, sockets, cores and RealMemory as ``slurmd -C`` reports them for this host."""
    out = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, timeout=30, check=True).stdout
    first = out.splitlines()[0]
    return dict(kv.split("=", 1) for kv in first.split())


def _which(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + os.pathsep + SBIN)
    if found is None:
        raise FileNotFoundError(f"{name} not found: run `make sysdeps` (Debian packages slurm-wlm and munge)")
    return found


class Cluster:
    """One node, one partition (``partition``), jobs run as the calling user (root here)."""

    def __init__(self, folder: Path, partition: str = "gpu", jobs_per_core: int = 1):
        self.folder = Path(folder)
        self.partition = partition
        self.jobs_per_core = jobs_per_core  # >1: OverSubscribe=FORCE:<n>, n one-CPU jobs share a core
        self.host = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}
        self.munge_dir: Path | None = None
        self.conf = self.folder / "slurm.conf"

    # ---- configuration ----
    @property
    def bin_dir(self) -> Path:
        return self.folder / "bin"

    @property
    def env(self) -> dict:
        """The environment of a client of this cluster: SLURM_CONF, and the ``srun`` shim first on PATH."""
        return {**os.environ, "SLURM_CONF": str(self.conf),
                "PATH": os.pathsep.join([str(self.bin_dir), os.environ.get("PATH", ""), SBIN])}

    def write_srun_shim(self) -> None:
        """An ``srun`` that knows this cluster's slurm.conf. snakemake-executor-plugin-slurm-jobstep
        starts each job's command with srun in an environment stripped of every SLURM_* variable but
        the job's id, SLURM_CONF included, so srun would look for /etc/slurm/slurm.conf (a real
        cluster's place, or its configless DNS record) and fail: "Could not establish a
        configuration source"."""
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        shim = self.bin_dir / "srun"
        shim.write_text(f'#!/bin/sh\nSLURM_CONF={shlex.quote(str(self.conf))} exec {_which("srun")} "$@"\n')
        shim.chmod(0o755)

    def write_config(self) -> None:
        hw = _node_hardware()
        memory = int(int(hw["RealMemory"]) * 0.9)  # a bit below what slurmd sees, else the node drains
        for sub in ("state", "spool", "log"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        f = self.folder
        self.conf.write_text("\n".join([
            "ClusterName=specbench",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_dir / 'munge.socket'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "KillWait=5",          # seconds between a cancelled job's SIGTERM and its SIGKILL
            "MinJobAge=300",       # finished jobs stay visible to squeue (the plugin's status command)
            "SchedulerType=sched/backfill",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            (f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={hw['CPUs']} Boards={hw.get('Boards', 1)} "
             f"SocketsPerBoard={hw['SocketsPerBoard']} CoresPerSocket={hw['CoresPerSocket']} "
             f"ThreadsPerCore={hw['ThreadsPerCore']} RealMemory={memory} State=UNKNOWN"),
            f"PartitionName={self.partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
            + (f" OverSubscribe=FORCE:{self.jobs_per_core}" if self.jobs_per_core > 1 else ""),
            "",
        ]))

    # ---- daemons ----
    def start(self, timeout: float = 60) -> Cluster:
        try:
            self._start_munge()
            self.write_config()
            self.write_srun_shim()
            shutil.rmtree(self.folder / "state", ignore_errors=True)  # a clean start: no old jobs
            (self.folder / "state").mkdir()
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf), "-N", self.host])
            self.wait_idle(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self) -> None:
        munge = pwd.getpwnam("munge")
        # Its own folder outside the pytest tree (which is private to root): socket, key, pid, seed, log.
        self.munge_dir = Path(tempfile.mkdtemp(prefix="specbench-munge-"))
        self.munge_dir.chmod(0o755)  # munged wants its socket's folder searchable by all
        key = self.munge_dir / "munge.key"
        subprocess.run([_which("mungekey"), "--create", "--keyfile", str(key)], check=True, timeout=30,
                       capture_output=True)
        for p in (self.munge_dir, key):
            os.chown(p, munge.pw_uid, munge.pw_gid)
        d = self.munge_dir
        self._spawn("munged", [_which("munged"), "--foreground", f"--socket={d / 'munge.socket'}",
                               f"--key-file={key}", f"--pid-file={d / 'munged.pid'}",
                               f"--seed-file={d / 'munged.seed'}", f"--log-file={d / 'munged.log'}"],
                    user=munge.pw_uid, group=munge.pw_gid, extra_groups=[])
        deadline = time.monotonic() + 20
        while not (d / "munge.socket").exists():
            self._check_alive("munged")
            if time.monotonic() > deadline:
                raise TimeoutError(f"munged did not create its socket: {self.log('munged')}")
            time.sleep(0.05)

    def _spawn(self, name: str, cmd: list[str], **kw) -> None:
        with open(self.folder / f"{name}.out", "wb") as log:
            self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                env=self.env, start_new_session=True, **kw)

    def _check_alive(self, name: str) -> None:
        if self.procs[name].poll() is not None:
            raise RuntimeError(f"{name} exited with {self.procs[name].returncode}: {self.log(name)}")

    def log(self, name: str) -> str:
        """The tail of a daemon's output and log file."""
        parts = []
        for path in (self.folder / f"{name}.out", self.folder / "log" / f"{name}.log",
                     (self.munge_dir or self.folder) / f"{name}.log"):
            if path.is_file():
                parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            for name in ("slurmctld", "slurmd"):
                self._check_alive(name)
            r = self.cmd("sinfo", "-h", "-N", "-o", "%t", check=False, timeout=10)
            state = r.stdout.strip()
            if r.returncode == 0 and state == "idle":
                return
            time.sleep(0.2)
        raise TimeoutError(f"node not idle after {timeout}s (state {state!r}):\n"
                           f"{self.log('slurmctld')}\n{self.log('slurmd')}")

    def cmd(self, *args, check=True, timeout=30) -> subprocess.CompletedProcess:
        return subprocess.run([_which(args[0]), *args[1:]], capture_output=True, text=True, env=self.env,
                              check=check, timeout=timeout)

    def stop(self, wait: float = 15) -> None:
        """Cancel this cluster's jobs, then TERM every daemon it started (slurmd, slurmctld, munged) by
        its PID, and KILL one that lingers."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            try:  # jobs still running (a failed test) end with their job steps, not left to linger
                self.cmd("scancel", "--full", "--user", pwd.getpwuid(os.getuid()).pw_name, check=False, timeout=10)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and any(
                        j.get("JobState") in ("RUNNING", "PENDING", "COMPLETING") for j in self.jobs()):
                    time.sleep(0.2)
            except (subprocess.SubprocessError, OSError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(wait)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if self.munge_dir is not None:
            shutil.rmtree(self.munge_dir, ignore_errors=True)
            self.munge_dir = None

    # ---- jobs ----
    def jobs(self) -> list[dict]:
        """Every job slurmctld knows of (running and recently finished) as ``scontrol show job -o`` fields."""
        r = self.cmd("scontrol", "show", "job", "-o", check=False, timeout=10)
        out = []
        for line in r.stdout.splitlines():
            if "JobId=" not in line:
                continue
            fields = {}
            for token in line.split():
                if "=" in token:
                    k, v = token.split("=", 1)
                    fields.setdefault(k, v)
            fields["_line"] = line
            out.append(fields)
        return out

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
