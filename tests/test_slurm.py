"""The workflow on a real SLURM cluster: profiles/slurm with snakemake-executor-plugin-slurm.

A one-node cluster of this host (Debian's slurm-wlm and munge, tests/slurm_cluster.py) runs a small
MovieLens-100k study in a temporary folder (the workflow prepares the data from the recbole wheel):
BPR and DirectSpec+ on MF, one seed, 2 epochs; a BPR whose setting diverges at run time; a longer
BPR pre-empted (``scancel --signal=TERM``) after its first checkpoint; a BPR on CUDA, whose GPU
request the scheduler refuses at submission (this node has none) so that the sbatch arguments show
it. A rerun with the bad setting fixed finishes the failed job and the pre-empted one, from its
checkpoint. Facts and pitfalls of such a cluster: ../shared/reference/slurm.md.

Run alone: ``pytest -m slurm`` (about 2.5 min on 2 cores). Needs root and `make sysdeps`: without
the SLURM and munge programs it fails, it does not skip.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests import slurm_cluster
from tests.conftest import REPO

pytestmark = pytest.mark.slurm

# One Snakemake invocation may take this long; past it the workflow's process group is killed and the
# test fails (a status-polling mistake makes the plugin wait forever, deaf to SIGTERM).
HARD_TIMEOUT = 200
# Polling: Snakemake's interval until the plugin's takes over (default 10 s), then the plugin's: 1 s
# at the start and after a query in which a job completed (default 40 s), 10 s more after each query
# in which none did (so a stage of jobs is seen done 1, 12, 33 or 64 s after its submission).
# squeue, as this cluster has no accounting (sacct fails here).
POLLING = ["--seconds-between-status-checks", "1", "--slurm-init-seconds-before-status-checks", "1",
           "--slurm-status-command", "squeue",
           "--slurm-keep-successful-logs"]  # every job's SLURM log stays in .snakemake/slurm_logs/ for a look
MEM_MB, RUNTIME = 2000, 10  # the study's training-job resources, checked in the scheduler's view
STUDY = "slurm"
LONG_EPOCHS = 8  # about 0.5 s each here: the pre-emption lands within the first few


def write_study(workdir: Path, bad_learning_rate: float) -> Path:
    """A small study modelled on config/quick.yaml (keys of config/schema/study.schema.yaml) and its
    catalogue: BPR and DirectSpec+ as in config/methods.yaml, plus three BPR variants. Always the same
    two files: their paths are part of each job's settings (the sources), so the rerun keeps them."""
    entries = yaml.safe_load((REPO / "config" / "methods.yaml").read_text())["methods"]
    methods = {m: entries[m] for m in ("BPR", "DirectSpecPlus")}
    # passes planning (a number is a valid learning rate), diverges in the first epoch
    methods["BPRBad"] = {"label": "BPR (bad setting)", "model": {"mf": "BPR"},
                         "fixed": {"learning_rate": bad_learning_rate}}
    # long enough to be pre-empted after its first checkpoint (one per epoch)
    methods["BPRLong"] = {"label": "BPR (pre-empted)", "model": {"mf": "BPR"},
                          "fixed": {"epochs": LONG_EPOCHS, "eval_step": LONG_EPOCHS, "checkpoint_every": 1,
                                    "train_batch_size": 256}}
    # on CUDA, as every run of config/paper.yaml: its job carries gpu=1 (refused here, no GPU)
    methods["BPRCuda"] = {"label": "BPR (CUDA)", "model": {"mf": "BPR"}, "fixed": {"device": "cuda"}}
    catalogue = workdir / "methods.yaml"
    catalogue.write_text(yaml.safe_dump({"methods": methods}, sort_keys=False))
    study = workdir / "study.yaml"
    study.write_text(yaml.safe_dump({
        "study": STUDY,
        "catalogue": str(catalogue),
        "data_dir": "data/atomic",
        "datasets": ["ml100k"],
        "backbones": ["mf"],
        "methods": list(methods),
        "seeds": [0],
        "split": {"test_fraction": 0.2, "seed": 2024},
        "run_defaults": {"epochs": 2, "eval_step": 1, "device": "cpu"},  # a method's `fixed` wins over these
        "run_settings": {"topk": [10, 20]},
        "resources": {"default": {"mem_mb": MEM_MB, "runtime": RUNTIME}},
    }, sort_keys=False))
    return study


def study_paths():
    """The study's path patterns, from specbench (the one place they are spelled)."""
    from specbench.paths import StudyPaths
    return StudyPaths.of({"study": STUDY, "data_dir": "data/atomic"})


def run_path(method: str, seed: int = 0) -> str:
    return study_paths().run.format(dataset="ml100k", backbone="mf", method=method, seed=seed)


def log_path(method: str, seed: int = 0) -> str:
    p = study_paths()
    return p.log(p.run).format(dataset="ml100k", backbone="mf", method=method, seed=seed)


def checkpoints(workdir: Path, method: str) -> list[Path]:
    """The checkpoints of a method's runs in the jobs' scratch folders (<results>/.work/...)."""
    return list(workdir.glob(f"results/**/.work/**/{method}/**/checkpoint.pt"))


# ---------------------------------------------------------------- the cluster and the workflow

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = slurm_cluster.missing_binaries()
    if missing:
        pytest.fail(f"SLURM/munge programs not found: {', '.join(missing)}. Run `make sysdeps` "
                    "(installs the Debian packages slurm-wlm and munge), then rerun the tests.")
    if os.geteuid() != 0:
        pytest.fail("the SLURM test starts munged (as the munge user) and slurmd: run it as root")
    # The profile's partition name. Two jobs per core: the four 1-CPU training jobs of the first run
    # start at once, as on a bigger cluster (the plugin's polling backs off while nothing finishes,
    # so one wave of jobs is much faster than two).
    c = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm"), partition="gpu", jobs_per_core=2)
    t0 = time.monotonic()
    try:
        c.start(timeout=60)
        c.start_seconds = time.monotonic() - t0
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("study")


class Monitor(threading.Thread):
    """Records ``scontrol show job`` of every job while the workflow runs; optionally pre-empts the
    job of ``preempt`` (a method) with SIGTERM once its first checkpoint exists under ``workdir``."""

    def __init__(self, cluster, workdir: Path, preempt: str | None = None):
        super().__init__(daemon=True)
        self.cluster, self.workdir, self.preempt = cluster, workdir, preempt
        self.seen: dict[str, dict] = {}   # job id -> fields, as last seen while RUNNING (else last seen)
        self.preempted: str | None = None
        self.preempted_at: float | None = None
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            try:
                for job in self.cluster.jobs():
                    if job.get("JobState") == "RUNNING" or self.seen.get(job["JobId"], {}).get("JobState") != "RUNNING":
                        self.seen[job["JobId"]] = job
                if self.preempt and self.preempted is None:
                    self._maybe_preempt()
            except (subprocess.SubprocessError, OSError):
                pass  # a slow query: try again
            self.stop_event.wait(0.3)

    def _maybe_preempt(self):
        if not checkpoints(self.workdir, self.preempt):
            return
        for job in self.cluster.jobs():
            if job.get("JobState") == "RUNNING" and f"_{self.preempt}_" in job.get("Comment", ""):
                self.cluster.cmd("scancel", "--signal=TERM", job["JobId"])
                self.preempted, self.preempted_at = job["JobId"], time.monotonic()
                return

    def job_of(self, method: str, seed: int = 0) -> dict:
        """The last job seen for a method's training run (by the plugin's comment, rule_<rule>_wildcards_...)."""
        jobs = [j for j in self.seen.values() if j.get("Comment", "").endswith(f"ml100k_mf_{method}_{seed}")]
        assert jobs, f"no SLURM job seen for {method}: {[j.get('Comment') for j in self.seen.values()]}"
        return max(jobs, key=lambda j: int(j["JobId"]))

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.join(10)


def snakemake(cluster, workdir: Path, study: Path, *args: str, name: str) -> tuple[int, str, float]:
    """``snakemake --profile profiles/slurm`` on ``workdir`` (nothing is written in the checkout):
    (exit status, output, seconds). Killed with its process group after HARD_TIMEOUT."""
    env = cluster.env
    # jobs inherit this environment (sbatch --export=ALL): the `specbench` CLI of this venv first
    env["PATH"] = os.pathsep.join([str(cluster.bin_dir), str(Path(sys.executable).parent), env["PATH"]])
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--profile", str(REPO / "profiles" / "slurm"), "--configfile", str(study), *POLLING, *args]
    log = workdir / f"{name}.log"
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            rc = proc.wait(HARD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            pytest.fail(f"snakemake ({name}) still running after {HARD_TIMEOUT} s, killed:\n"
                        + log.read_text()[-4000:] + "\n" + cluster.cmd("squeue", check=False).stdout)
    return rc, log.read_text(), time.monotonic() - t0


def submitted_ids(output: str, method: str, seed: int = 0) -> list[str]:
    """SLURM job ids of a method's training jobs, as the plugin logs their submission."""
    return re.findall(rf"submitted with SLURM jobid (\d+) \(log: \S*rule_train/ml100k_mf_{method}_{seed}/\1\.log\)",
                      output)


def record(workdir: Path, method: str, seed: int = 0) -> dict:
    return json.loads((workdir / run_path(method, seed)).read_text())


@pytest.fixture(scope="module")
def first_run(cluster, workdir):
    """Data preparation, then five training jobs at once: two finish, the bad one fails, the long one
    is pre-empted, the CUDA one is refused at submission."""
    study = write_study(workdir, bad_learning_rate=1.0e30)
    targets = [run_path(m) for m in ("BPR", "DirectSpecPlus", "BPRBad", "BPRLong", "BPRCuda")]
    with Monitor(cluster, workdir, preempt="BPRLong") as monitor:
        # --retries 0: a failure is reported at once (the profile's retries: 2 would resubmit it; the
        # pre-empted job is resubmitted by the rerun below instead, the same command a retry runs)
        rc, output, seconds = snakemake(cluster, workdir, study, "--retries", "0", "--keep-going", "--", *targets,
                                        name="first")
    kept = checkpoints(workdir, "BPRLong")
    state = None
    if kept:
        from specbench.checkpoint import read_state
        state = read_state(kept[0])  # checks the file's header, then torch.load
    logs = {m: (workdir / log_path(m)).read_text(errors="replace")  # before the rerun overwrites them
            for m in ("BPRBad", "BPRLong") if (workdir / log_path(m)).is_file()}
    return {"rc": rc, "output": output, "seconds": seconds, "monitor": monitor, "checkpoint": state,
            "checkpoints": kept, "logs": logs}


@pytest.fixture(scope="module")
def rerun(cluster, workdir, first_run):
    """The same study with the bad setting fixed: the failed and the pre-empted job run again."""
    study = write_study(workdir, bad_learning_rate=1.0e-3)
    targets = [run_path(m) for m in ("BPR", "DirectSpecPlus", "BPRBad", "BPRLong")]
    with Monitor(cluster, workdir) as monitor:
        rc, output, seconds = snakemake(cluster, workdir, study, "--", *targets, name="rerun")
    return {"rc": rc, "output": output, "seconds": seconds, "monitor": monitor}


# ---------------------------------------------------------------- the checks

def test_training_jobs_run_as_slurm_jobs_with_the_rules_resources(cluster, workdir, first_run):
    out, monitor = first_run["output"], first_run["monitor"]
    assert (workdir / study_paths().stats.format(dataset="ml100k")).is_file(), out[-4000:]  # prepared here
    assert not (REPO / run_path("BPRLong")).exists()  # nothing written in the checkout
    for method in ("BPR", "DirectSpecPlus"):
        rec = record(workdir, method)
        ids = submitted_ids(out, method)
        assert len(ids) == 1, out[-4000:]
        slurm = rec["environment"].get("slurm")
        assert slurm and slurm["job_id"] == ids[0], rec["environment"]
        assert slurm["cpus_per_task"] == "1"
        job = monitor.job_of(method)  # the scheduler's view, captured while it ran
        assert job["JobId"] == ids[0]
        assert job["NumCPUs"] == "1" and job["CPUs/Task"] == "1"          # threads: 1
        assert job["MinMemoryNode"] == f"{MEM_MB}M"                         # mem_mb
        assert job["TimeLimit"] == f"00:{RUNTIME:02d}:00"                   # runtime (minutes)
        assert job["Partition"] == "gpu" and job["JobState"] in ("RUNNING", "COMPLETED")
        assert "gpu" not in job["TRES"] and job["TRES"].startswith(f"cpu=1,mem={MEM_MB}M")  # a CPU run asks no GPU
        assert [e["epoch"] for e in rec["epochs"]] == [1, 2]
    prepare = [j for j in monitor.seen.values() if j.get("Comment") == "rule_prepare_wildcards_ml100k"]
    assert prepare and prepare[0]["MinMemoryNode"] == "8000M" and prepare[0]["TimeLimit"] == "00:30:00"
    print(f"\ncluster up in {cluster.start_seconds:.1f} s; first run {first_run['seconds']:.0f} s; "
          f"scheduler's view of the BPR job:\n{monitor.job_of('BPR')['_line']}")


def test_a_failing_job_is_reported_and_leaves_no_record(workdir, first_run):
    out = first_run["output"]
    assert first_run["rc"] != 0
    bad = submitted_ids(out, "BPRBad")
    assert len(bad) == 1
    assert re.search(rf"SLURM-job '{bad[0]}' failed, SLURM status is: 'FAILED'", out), out[-4000:]
    assert not (workdir / run_path("BPRBad")).exists()
    assert "training diverged" in first_run["logs"]["BPRBad"]
    assert not checkpoints(workdir, "BPRBad")  # a diverged run starts afresh


def test_a_preempted_job_keeps_its_checkpoint_and_no_record(workdir, first_run):
    monitor, out = first_run["monitor"], first_run["output"]
    assert monitor.preempted, "BPRLong was never seen running with a checkpoint: " + out[-4000:]
    assert submitted_ids(out, "BPRLong") == [monitor.preempted]
    assert re.search(rf"SLURM-job '{monitor.preempted}' failed, SLURM status is: '(FAILED|CANCELLED)'", out)
    assert not (workdir / run_path("BPRLong")).exists()
    state = first_run["checkpoint"]
    assert state is not None and 1 <= state["epoch"] < LONG_EPOCHS, first_run["checkpoints"]
    log = first_run["logs"]["BPRLong"]
    assert re.search(r"SIGTERM|signal 15", log) and "resume" in log, log[-2000:]  # "interrupted (...); rerun ... to resume"


def test_rerun_after_fixing_finishes_and_the_preempted_job_resumes(workdir, first_run, rerun):
    out = rerun["output"]
    assert rerun["rc"] == 0, out[-6000:]
    assert not submitted_ids(out, "BPR") and not submitted_ids(out, "DirectSpecPlus")  # done before
    fixed = record(workdir, "BPRBad")
    assert fixed["environment"]["slurm"]["job_id"] == submitted_ids(out, "BPRBad")[0]
    resumed = record(workdir, "BPRLong")
    job_id = resumed["environment"]["slurm"]["job_id"]
    assert job_id == submitted_ids(out, "BPRLong")[0] != first_run["monitor"].preempted
    assert [e["epoch"] for e in resumed["epochs"]] == list(range(1, LONG_EPOCHS + 1))
    # Resumed, not retrained: the epochs before the checkpoint are the pre-empted job's, to the last
    # digit of their timing; the later ones were trained by the new job.
    k = first_run["checkpoint"]["epoch"]
    assert resumed["epochs"][:k] == first_run["checkpoint"]["epochs"]
    assert not checkpoints(workdir, "BPRLong")  # dropped once the record is written
    job = rerun["monitor"].job_of("BPRLong")
    assert job["JobId"] == job_id and job["NumCPUs"] == "1"
    print(f"\nrerun {rerun['seconds']:.0f} s; BPRLong pre-empted as job {first_run['monitor'].preempted} "
          f"after epoch {k}, resumed as job {job_id} at epoch {k + 1}")


def test_gpu_jobs_request_a_gpu_from_sbatch(first_run):
    """A training job on CUDA (as every run of config/paper.yaml) carries gpu=1: the plugin's sbatch
    asks --gpus=1. This node has no GPU, so the scheduler refuses it at submission and nothing runs."""
    out = first_run["output"]
    calls = [c.split(" --wrap=")[0] for c in re.findall(r"sbatch call:\s*\n\s*(sbatch .*)", out)]
    assert len(calls) == 1 and "ml100k_mf_BPRCuda_0" in calls[0], out[-4000:]
    call = calls[0]
    assert " --gpus=1" in call and f" --mem {MEM_MB}" in call and f" -t {RUNTIME}" in call, call
    assert " --cpus-per-task=1" in call and " -p gpu" in call.replace("'", ""), call
    assert re.search(r"SLURM sbatch failed. The error message was 'sbatch: error: Invalid generic resource", out)
    assert not [j for j in first_run["monitor"].seen.values() if "BPRCuda" in j.get("Comment", "")]  # never queued
    print("\nGPU job's sbatch arguments (refused here, no GPU):\n" + call)
