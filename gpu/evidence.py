#!/usr/bin/env python3
"""GPU evidence in one prepared call: speed, fidelity and the CiteULike slice (gpu/README.md).

    python3 gpu/evidence.py --out DIR [--device cuda] [--budget-seconds 420]       # on the GPU machine
    python3 gpu/evidence.py --out DIR --dry                                         # here: CPU, stand-in data

On a bare GPU machine (torch installed; no recbole, no snakemake, no internet) it

0. installs the wheels of gpu/carry/wheels that the interpreter lacks (``pip install --no-index
   --no-deps --target``), makes the working tree importable (models/ as ``specbench_models``), checks
   the imports and the device, and unpacks the carried atomic CiteULike and Gowalla (gpu/carry/data,
   checked against gpu/carry/manifest.json); all written by ``make gpu-carry`` (gpu/carry.py);
1. times every method of the catalogue on both datasets (``specbench.bench``: seconds per epoch,
   peak memory, one evaluation; the four DirectSpec+ variants first), until its share of the budget;
2. trains DirectSpec+ (single τ) on MF and LightGCN on CiteULike at the published settings for the
   authors' epochs (300, 200) and τ0/τ1 on MF for its 50 epochs, evaluated every 10 epochs (which
   holds the epochs of the CPU fidelity check, results/reference/cpu-fidelity-citeulike: 30 and 60,
   10 to 50), and compares them with it at those epochs (and the authors' code at epoch 30);
3. runs as much of the CiteULike study (``--study``, restricted to CiteULike and one seed) as the
   remaining time allows: the main table's cells first (ours, then the other methods, cheapest first by
   the bench's estimate, each with its tuning search (one `specbench tune` job) and selection), then the ablations, then the sweeps.

Steps 2 and 3 share one pool of ``--workers`` processes (`specbench run` and `specbench tune` jobs, step 2 first). Nothing
runs past ``--budget-seconds``: a job that would not end in time is not started, a job still running at
the deadline is stopped (SIGTERM: it keeps its checkpoint; the evaluations it reached are saved beside
its record path as ``*.partial.json``) and every such job is listed in ``summary.json`` under
``stopped_at_budget``. What finished is kept. Written under ``--out`` (at most 8 files, as the device
tool returns them): summary.json, bench.json, fidelity.json, study.json, runs.tar.gz (every run record,
tuning journal, selection and job log), evidence.log.

``--dry``: the same steps on the CPU with stand-in data (two MovieLens-100k subsamples from the recbole
wheel, named citeulike and gowalla so that the CiteULike settings apply), tiny epochs and a few bench
rows, no install; tests/test_gpu_evidence.py runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / "gpu" / "carry"
CPU_FIDELITY = ROOT / "results" / "reference" / "cpu-fidelity-citeulike"
STUDY = ROOT / "config" / "paper.yaml"
PAPER = ROOT / "config" / "paper.yaml"
STEPS = ("bench", "fidelity", "study")
DATASETS = ("citeulike", "gowalla")
FIDELITY_DATASET = "citeulike"
# (name, catalogue method, backbone, eval_step, CPU reference records): the authors' epochs are the
# catalogue's (DirectSpecPlusPublished: 300 on MF, 200 on LightGCN; the τ0/τ1 script: 50). Every 10
# epochs covers the CPU check's evaluations (30, 60; 10..50) and is the paper study's protocol, so a
# fidelity run is also that study's cell (``study_jobs`` does not run it twice).
FIDELITY = (
    ("mf-single", "DirectSpecPlusPublished", "mf", 10, "mf-single-seed*.json"),
    ("mf-adaptive", "DirectSpecPlusAdaptivePublished", "mf", 10, "mf-adaptive-seed*.json"),
    ("lightgcn-single", "DirectSpecPlusPublished", "lightgcn", 10, None),
)
# The authors' directspec_mf.py at epoch 30 on CPU (results/reference/cpu-fidelity-citeulike/README.md,
# "Comparison, single τ", column "reference"; tests/test_gpu_evidence.py checks them against that table).
AUTHORS_MF_SINGLE = {30: {"recall_paper@20": 0.2174, "ndcg@20": 0.1846, "recall_paper@10": 0.1732, "ndcg@10": 0.1680,
                          "ref_recall@10": 0.1824, "ref_ndcg@10": 0.1726}}
METRICS = ("recall_paper@20", "ndcg@20", "recall_paper@10", "ndcg@10", "ref_recall@10", "ref_ndcg@10", "recall@20")
GPU_TARGET_SECONDS = 0.3   # DirectSpec+ MF on CiteULike, batch 256 (the goal)
AUTHORS_H100_SECONDS = 2.6  # the authors' code on an H100, as the issue quotes it
STOPPED, NOT_STARTED = "stopped at budget", "not started: budget"
# Dry mode: what the bench times and how long every job trains.
DRY_ROWS = ("mf", "BPR/mf")
DRY_EPOCHS = {"epochs": 2, "eval_step": 1}


class EvidenceError(Exception):
    """A step cannot go on (the message says why); the summary records it."""


# ---- the log and the clock --------------------------------------------------------------------------

class Log:
    """Lines to stdout and to <out>/evidence.log, each with the seconds since the start."""

    def __init__(self, path: Path, t0: float):
        self.file, self.t0 = open(path, "a", buffering=1), t0

    def __call__(self, text: str = "") -> None:
        for line in str(text).splitlines() or [""]:
            line = f"[{time.time() - self.t0:7.1f}s] {line}"
            print(line, flush=True)
            self.file.write(line + "\n")

    def close(self) -> None:
        self.file.close()


@dataclass
class Clock:
    """The budget: ``end`` is when the command must be done; jobs stop ``reserve`` seconds before it
    (time to stop them and to pack what they wrote)."""
    start: float
    budget: float
    reserve: float

    @property
    def end(self) -> float:
        return self.start + self.budget

    @property
    def jobs_end(self) -> float:
        return self.end - self.reserve

    def share_end(self, share: float) -> float:
        return min(self.jobs_end, self.start + share * self.budget)

    def left(self) -> float:
        return self.jobs_end - time.time()


# ---- step 0: install, import, device ----------------------------------------------------------------

def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def wheel_dist(path: Path) -> tuple[str, str]:
    """(distribution, version) from a wheel's file name."""
    name, version = path.name.split("-")[:2]
    return name, version


def install(args, work: Path, log: Log) -> dict:
    """Install the carried wheels this interpreter lacks; return the environment for child processes."""
    paths, report = [str(ROOT)], {"installed": [], "present": [], "target": None}
    if (args.install or not args.dry) and not args.skip_install:
        wheels = sorted((args.carry / "wheels").glob("*.whl"))
        if not wheels:
            log(f"no wheels in {args.carry / 'wheels'} (make gpu-carry writes them); installing nothing")
        missing = [w for w in wheels if not _installed(wheel_dist(w)[0])]
        report["present"] = [w.name for w in wheels if w not in missing]
        site = work / "site"
        if missing:
            site.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                   "--no-cache-dir", "--disable-pip-version-check", "--target", str(site), *map(str, missing)]
            log(f"installing {len(missing)} wheels into {site}: {', '.join(w.name for w in missing)}")
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise EvidenceError(f"pip install failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
            report["installed"], report["target"] = [w.name for w in missing], str(site)
            paths.insert(0, str(site))
        elif site.is_dir():
            paths.insert(0, str(site))
    if not _installed("specbench"):  # a bare machine: the working tree, models/ as specbench_models
        shim = work / "shim"
        shim.mkdir(parents=True, exist_ok=True)
        link = shim / "specbench_models"
        if not link.exists():
            link.symlink_to(ROOT / "models", target_is_directory=True)
        version = _pyproject_version()
        meta = shim / f"specbench-{version}.dist-info"
        meta.mkdir(exist_ok=True)
        (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: specbench\nVersion: {version}\n")
        paths.insert(0, str(shim))
        report["working_tree_on_path"] = str(shim)
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    importlib.invalidate_caches()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", str(args.threads))
    env.setdefault("PYTHONWARNINGS", "ignore")
    args._install = report
    return env


def _pyproject_version() -> str:
    for line in (ROOT / "pyproject.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    return "0"


def preflight(device: str, log: Log) -> dict:
    """Import what every job imports, find the models, and describe the device (torch, CUDA, driver)."""
    t0 = time.time()
    import torch

    import specbench.harness  # noqa: F401  (recbole through the compatibility shim)
    from specbench.plugins import discover
    from specbench.provenance import cpu_model, package_versions
    models = sorted(name for name, e in discover().items() if e.source != "recbole")
    info = {"requested": device, "python": platform.python_version(), "executable": sys.executable,
            "torch": torch.__version__, "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cuda_available": torch.cuda.is_available(), "host": socket.gethostname(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "packages": package_versions(), "models": models}
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EvidenceError(f"--device {device}: torch {torch.__version__} sees no CUDA GPU")
        index = torch.device(device).index or 0
        p = torch.cuda.get_device_properties(index)
        info["gpu"] = {"name": p.name, "total_memory_bytes": p.total_memory, "multiprocessors": p.multi_processor_count,
                       "capability": f"{p.major}.{p.minor}", "l2_cache_bytes": getattr(p, "L2_cache_size", None),
                       "count": torch.cuda.device_count()}
        x = torch.randn(1024, 1024, device=device)
        float((x @ x).sum())  # the device answers
        info["nvidia_smi"] = nvidia_smi(log)
        info["name"] = p.name
    else:
        info["name"] = info["cpu"]
    info["preflight_seconds"] = time.time() - t0
    log(f"device: {info['name']}; torch {info['torch']}, CUDA {info['cuda_runtime']}, python {info['python']}; "
        f"{len(models)} plugin models; preflight {info['preflight_seconds']:.1f} s")
    return info


def nvidia_smi(log: Log) -> dict | None:
    """The GPU as nvidia-smi reports it (name, driver, memory, clocks, power); the full table goes to the log."""
    query = "name,driver_version,memory.total,clocks.max.sm,clocks.max.memory,power.limit,pci.bus_id,compute_mode"
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
        table = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"nvidia-smi: {exc}")
        return None
    log(table.stdout)
    if done.returncode != 0 or not done.stdout.strip():
        return None
    values = [v.strip() for v in done.stdout.strip().splitlines()[0].split(",")]
    return dict(zip(query.split(","), values))


# ---- data ---------------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def prepare_data(args, work: Path, log: Log) -> tuple[Path, dict]:
    """The folder of prepared atomic datasets: stand-ins (dry), ``--data-dir``, the carried tarballs, or
    the workflow's data/atomic; and what was used."""
    from specbench.bench import check_prepared
    if args.dry:
        data_dir = work / "data"
        stand_ins(data_dir, DATASETS)
        return data_dir, {"source": "stand-ins: MovieLens-100k subsamples (recbole wheel) named "
                                    + ", ".join(DATASETS), "data_dir": str(data_dir)}
    if args.data_dir:
        check_prepared(DATASETS, args.data_dir)
        return args.data_dir, {"source": "--data-dir", "data_dir": str(args.data_dir)}
    manifest_path = args.carry / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        data_dir = work / "data"
        for entry in manifest.get("data", []):
            tarball = args.carry / entry["file"]
            got = sha256_file(tarball)
            if got != entry["sha256"]:
                raise EvidenceError(f"{tarball}: sha256 {got}, expected {entry['sha256']} (gpu/carry/manifest.json)")
            with tarfile.open(tarball) as tar:
                tar.extractall(data_dir, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(data_dir)
            log(f"unpacked {tarball.name} ({entry['bytes'] / 2**20:.1f} MiB) into {data_dir}")
        check_prepared(DATASETS, data_dir)
        return data_dir, {"source": "gpu/carry/data (make gpu-carry)", "data_dir": str(data_dir),
                          "files": manifest.get("data", [])}
    data_dir = ROOT / "data" / "atomic"
    check_prepared(DATASETS, data_dir)
    return data_dir, {"source": "the workflow's data/atomic", "data_dir": str(data_dir)}


def stand_ins(data_dir: Path, names, users_each: int = 120) -> None:
    """Disjoint slices of MovieLens-100k users (the recbole wheel), split 80/20 per user, one per name."""
    from specbench.data import read_recbole_inter, recbole_ml100k_path, split_per_user, write_atomic
    df = read_recbole_inter(recbole_ml100k_path())
    users = sorted(df["user"].unique(), key=int)
    for i, name in enumerate(names):
        if (data_dir / name / "stats.json").is_file():
            continue
        chosen = users[i * users_each:(i + 1) * users_each]
        write_atomic(data_dir / name, name, split_per_user(df[df["user"].isin(chosen)], 0.2, seed=7 + i))


# ---- step 1: the bench ----------------------------------------------------------------------------------

def stream(cmd: list[str], env: dict, log: Log, deadline: float, prefix: str = "  ") -> int:
    """Run ``cmd``, its output into the log as it comes; stopped (SIGTERM, then SIGKILL) at ``deadline``."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    import threading

    def pump():
        for line in proc.stdout:
            log(prefix + line.rstrip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while proc.poll() is None:
            if time.time() > deadline:
                log(f"{prefix}(stopping: past the deadline)")
                _stop_group(proc, 5.0)
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            _stop_group(proc, 2.0)
        reader.join(timeout=5)
    return proc.returncode


def _stop_group(proc, grace: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def step_bench(args, clock: Clock, data_dir: Path, env: dict, log: Log) -> dict:
    out = args.out / "bench.json"
    deadline = clock.share_end(args.bench_share)
    cmd = [sys.executable, "-m", "specbench.bench", "--device", args.device, "--datasets", *DATASETS,
           "--data-dir", str(data_dir), "--out", str(out), "--deadline", f"{deadline:.3f}",
           "--repeats", str(args.bench_repeats), "--max-epoch-seconds", str(args.bench_max_epoch_seconds),
           "--jobs", str(args.bench_jobs), "--time-eval"]
    if args.bench_methods:
        cmd += ["--methods", *args.bench_methods]
    log(f"step 1: bench until +{deadline - clock.start:.0f} s: {' '.join(cmd[3:])}")
    t0 = time.time()
    # The bench stops its own rows at the deadline; this is the backstop.
    rc = stream(cmd, env, log, min(deadline + 15, clock.end - 3))
    record = json.loads(out.read_text()) if out.is_file() else {"results": []}
    rows = record.get("results", [])
    by = {}
    for r in rows:
        by[r.get("status", "?")] = by.get(r.get("status", "?"), 0) + 1
    result = {"step": "bench", "seconds": time.time() - t0, "returncode": rc, "file": out.name,
              "rows": len(rows), "planned_rows": len(record.get("options", {}).get("rows", [])) * len(DATASETS),
              "by_status": by}
    result["status"] = "finished" if record.get("complete") else (
        STOPPED if by.get("not timed: budget") else ("failed" if not rows else "finished with failures"))
    log(f"step 1: {result['status']}: {by} in {result['seconds']:.0f} s")
    return result


def bench_headline(record: dict, device: str) -> dict:
    """DirectSpec+ MF on CiteULike against the GPU target, and what bounds its epoch (measured)."""
    row = next((r for r in record.get("results", []) if r.get("variant") == "mf" and r.get("dataset") == FIDELITY_DATASET
                and r.get("status") == "timed"), None)
    if row is None:
        return {"directspec_plus_mf_citeulike": "not timed"}
    spe, cpu = row["seconds_per_epoch"], row.get("cpu_seconds_per_epoch")
    out = {"seconds_per_epoch": spe, "seconds_per_epoch_std": row.get("seconds_per_epoch_std"),
           "steps_per_epoch": row["steps_per_epoch"], "milliseconds_per_step": 1000 * spe / row["steps_per_epoch"],
           "cpu_seconds_per_epoch": cpu, "target_seconds": GPU_TARGET_SECONDS,
           "meets_target": spe < GPU_TARGET_SECONDS, "authors_h100_seconds": AUTHORS_H100_SECONDS,
           "speedup_vs_authors_h100": AUTHORS_H100_SECONDS / spe if spe else None}
    if device.startswith("cuda") and cpu is not None:
        share = cpu / spe if spe else 0.0
        out["bound"] = (f"host-bound: the process used {share:.0%} of a CPU core during the timed epochs (the Python "
                        "loop, sampling and kernel launches of 648 small steps), so the GPU waits on the host"
                        if share > 0.85 else
                        f"device-bound: the process used {share:.0%} of a CPU core while the epoch ran")
    return out


# ---- steps 2 and 3: jobs in one pool ------------------------------------------------------------------

@dataclass
class Job:
    key: str
    step: str                      # fidelity | study
    spec: dict
    out: Path
    priority: tuple
    estimate: float | None = None  # seconds, from the bench
    needs: list = field(default_factory=list)      # keys of jobs that must finish first
    tuned: Path | None = None      # chosen.json a test run reads (made by ``select`` before it starts)
    select: dict | None = None     # {"journal", "spec", "space", "protocol"}: the search to export first
    search: dict | None = None     # a tuning job: {"journal", "space", "protocol"} (specbench tune)
    info: dict = field(default_factory=dict)
    group: str = ""                # a study cell (its trials and runs) is admitted whole or not at all
    group_estimate: float | None = None
    gated: bool = True             # False: started whatever its estimate (a fidelity run: its evaluations count)
    status: str = "pending"
    note: str = ""
    started: float | None = None
    ended: float | None = None
    proc: object = None

    @property
    def log(self) -> Path:
        return self.out.with_suffix(".log")

    @property
    def identity(self) -> str:
        """What the run is: its record's config hash (dataset, backbone, method, model, settings) and seed."""
        from specbench.run import config_hash_of
        from specbench.settings import resolve
        return f"{config_hash_of(self.spec, resolve(self.spec).settings)}/seed{self.spec['seed']}"

    def command(self) -> list[str]:
        if self.search:
            return [sys.executable, "-m", "specbench.cli", "tune", "--journal", str(self.search["journal"]),
                    "--spec", json.dumps(self.spec, sort_keys=True), "--space", json.dumps(self.search["space"]),
                    "--protocol", json.dumps(self.search["protocol"]), "--out", str(self.out)]
        cmd = [sys.executable, "-m", "specbench.cli", "run", "--spec", json.dumps(self.spec, sort_keys=True),
               "--out", str(self.out)]
        return cmd + (["--tuned", str(self.tuned)] if self.tuned else [])

    def describe(self, base: Path) -> dict:
        return {"key": self.key, "step": self.step, "status": self.status, "note": self.note,
                "estimate_seconds": self.estimate,
                "seconds": (self.ended - self.started) if self.started and self.ended else None,
                "record": _rel(self.out, base) if self.out.is_file() else None,
                "partial": _rel(partial_path(self.out), base) if partial_path(self.out).is_file() else None, **self.info}


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).relative_to(base))
    except ValueError:
        return str(path)


def partial_path(out: Path) -> Path:
    return out.with_name(out.stem + ".partial.json")


def extra_layer(values: dict, source: str) -> dict:
    """A ``set`` layer (the highest): what this script changes in a job's settings."""
    from specbench.settings import layer
    return layer("set", source, values)


def estimate_seconds(bench: dict, dataset: str, method: str, backbone: str, settings: dict) -> float | None:
    """A job's seconds from its bench row (process start, setup, epochs, evaluations), or None."""
    from specbench.estimate import CostModel
    cost = CostModel(bench, {}).cost(dataset, method, backbone)
    if cost is None or cost.extrapolated_from is not None:
        return None
    return cost.run(settings, 0 if cost.training_free else int(settings["epochs"]))


def fidelity_jobs(args, data_dir: Path, results: Path, bench: dict) -> list[Job]:
    from specbench.bench import method_spec
    from specbench.settings import resolve
    jobs = []
    for i, (name, method, backbone, eval_step, _) in enumerate(FIDELITY):
        spec = method_spec(FIDELITY_DATASET, method, backbone, data_dir, args.device)
        values = {"eval_step": eval_step, "topk": [10, 20], "device": args.device, **(DRY_EPOCHS if args.dry else {})}
        spec["layers"].append(extra_layer(values, "gpu/evidence.py step 2 (every 10 epochs: the CPU fidelity "
                                                  "check's evaluation epochs among them)"))
        settings = resolve(spec).settings
        out = results / "gpu-fidelity" / "runs" / FIDELITY_DATASET / backbone / method / "0.json"
        est = estimate_seconds(bench, FIDELITY_DATASET, method, backbone, settings)
        jobs.append(Job(f"fidelity/{name}", "fidelity", spec, out, (0, i), est, group=f"fidelity/{name}", gated=False,
                        info={"name": name, "method": method, "backbone": backbone, "epochs": settings["epochs"],
                              "eval_step": settings["eval_step"]}))
    return jobs


def restricted_study(args, data_dir: Path):
    """The study of ``--study`` on ``--study-datasets`` only, at its first ``--study-seeds`` seeds, on our device
    and data; in dry mode with one tuning trial of DRY_EPOCHS per method."""
    from specbench.schemas import load_yaml
    from specbench.study import Study
    config = deepcopy(load_yaml(args.study))
    keep = [d for d in config.get("datasets", []) if d in args.study_datasets]
    if not keep:
        raise EvidenceError(f"{args.study}: none of {args.study_datasets} among its datasets {config.get('datasets')}")
    config["study"] = f"gpu-{config.get('study', 'study')}-{'-'.join(keep)}"
    config["datasets"] = keep
    config["seeds"] = list(config.get("seeds", [0]))[:args.study_seeds]
    config["data_dir"] = str(data_dir)
    config["run_settings"] = {**(config.get("run_settings") or {}), "device": args.device}
    config.pop("data_mirror", None)
    sweeps = {}
    for name, sweep in (config.get("sweeps") or {}).items():
        ds = [d for d in sweep.get("datasets", []) if d in keep]
        if ds:
            sweeps[name] = {**sweep, "datasets": ds}
    config["sweeps"] = sweeps
    if not sweeps:
        config.pop("sweeps", None)
    if args.dry and config.get("tuning"):
        config["tuning"] = {**config["tuning"], "trials": 1, "max_epochs": DRY_EPOCHS["epochs"],
                            "eval_step": DRY_EPOCHS["eval_step"], "min_epochs": 1}
    return Study(config, root=ROOT, source=f"{args.study} (restricted by gpu/evidence.py to {', '.join(keep)}, "
                                            f"seeds {config['seeds']})")


def study_jobs(args, study, results: Path, bench: dict, fidelity: list[Job], log: Log) -> list[Job]:
    """Every job of the restricted study, prioritised so that the main table fills first.

    A cell is a (dataset, backbone, method) of the main table: its tuning trials, selection and test run
    at the first seed. Tier 0: the cells of ``report.ours``; tier 1: the other methods' cells; tier 2: the
    ablations; in a tier the cells the bench timed come first, cheapest first. Tier 3: the other seeds;
    tier 4: the sweeps. A cell is started only if its estimate (trials spread over the workers, then the
    run) fits in the time left. A test run that a fidelity job already is (same settings and seed) is not
    run twice: the fidelity job writes the cell's record.
    """
    from specbench.settings import resolve
    base = results
    report = study.config.get("report") or {}
    ours, ablation = set(report.get("ours", [])), set(report.get("ablation", []))
    dry = [extra_layer(DRY_EPOCHS, "gpu/evidence.py --dry")] if args.dry else []
    same = {job.identity: job for job in fidelity}
    first_seed = study.seeds[0]
    cells = sorted({(j.dataset, j.backbone, j.method) for j in study.jobs()},
                   key=lambda k: (list(study.methods).index(k[2]), k[1]))
    groups = []  # (tier, estimate, all estimated, [jobs])
    for ds, bb, method in cells:
        tier = 0 if method in ours else 2 if method in ablation else 1
        cell = f"{ds}/{bb}/{method}"
        trials, trial_estimates = [], []
        if study.is_tuned(method):  # one tuning job per search: its trials in one process
            spec = study.trial_spec(ds, bb, method)
            spec["layers"] += dry
            out = base / study.paths.tune_worker.format(dataset=ds, backbone=bb, method=method, worker=0)
            search = {"journal": base / study.journal_path(ds, bb, method), "space": study.search_space(method, bb),
                      "protocol": study.tuning}
            one = estimate_seconds(bench, ds, method, bb, resolve(spec).settings)  # a trial at max_epochs
            est = None if one is None else one * int(study.tuning["trials"])
            trial_estimates.append(est)
            trials.append(Job(f"study/tune/{cell}", "study", spec, out, (), est, search=search,
                              info={"kind": "tune", "cell": cell}))
        for seed in study.seeds:
            spec = study.spec(ds, bb, method, seed)
            spec["layers"] += dry
            out = base / study.paths.run.format(dataset=ds, backbone=bb, method=method, seed=seed)
            settings = resolve(spec).settings
            if trials and not args.dry:
                settings = {**settings, "epochs": study.tuning["max_epochs"]}  # at most the trials' epochs
            est = estimate_seconds(bench, ds, method, bb, settings)
            job = Job(f"study/run/{cell}/{seed}", "study", spec, out, (), est, needs=[t.key for t in trials],
                      info={"kind": "run", "cell": cell, "seed": seed})
            if trials:
                job.tuned = base / study.chosen_path(ds, bb, method)
                job.select = {**trials[0].search, "spec": trials[0].spec}
            elif job.identity in same:  # the fidelity run is this cell: it writes the cell's record
                twin = same[job.identity]
                twin.out, twin.info = job.out, {**twin.info, "kind": "run", "cell": cell, "seed": seed}
                continue
            if seed != first_seed:
                groups.append((3, est or 0.0, est is not None, [job]))
                continue
            known = est is not None and all(e is not None for e in trial_estimates)
            spread = sum(e or 0.0 for e in trial_estimates) / max(1, min(args.workers, len(trials) or 1))
            groups.append((tier, spread + (est or 0.0), known, trials + [job]))
    for name, sweep in study.sweeps().items():
        for ds in sweep["datasets"]:
            for bb in sweep["backbones"]:
                for point in range(len(study.sweep_points(name))):
                    for seed in sweep.get("seeds", [0]):
                        spec = study.sweep_spec(name, ds, bb, point, seed)
                        spec["layers"] += dry
                        out = base / study.paths.sweep_run.format(sweep=name, dataset=ds, backbone=bb,
                                                                  method=sweep["method"], point=point, seed=seed)
                        est = estimate_seconds(bench, ds, sweep["method"], bb, resolve(spec).settings)
                        groups.append((4, est or 0.0, est is not None,
                                       [Job(f"study/sweep/{name}/{ds}/{bb}/{point}/{seed}", "study", spec, out, (), est,
                                            info={"kind": "sweep", "sweep": name, "point": point, "seed": seed})]))
    ordered = sorted(range(len(groups)), key=lambda i: (groups[i][0], not groups[i][2], groups[i][1], i))
    jobs = []
    for rank, i in enumerate(ordered):
        tier, estimate, known, members = groups[i]
        for k, job in enumerate(members):
            job.priority, job.group, job.group_estimate = (1, rank, k), f"group{rank}", estimate if known else None
            jobs.append(job)
    twins = [j.key for j in fidelity if "cell" in j.info]
    log(f"step 3: {len(jobs)} jobs of {study.source}: {sum(1 for g in groups if g[0] < 3)} cells of the main table "
        f"and the ablations, {sum(1 for g in groups if g[0] == 4)} sweep points"
        + (f"; run by step 2: {', '.join(twins)}" if twins else ""))
    return jobs


def run_pool(jobs: list[Job], clock: Clock, env: dict, workers: int, grace: float, log: Log) -> None:
    """Start jobs by priority on ``workers`` processes until the jobs' deadline; stop what still runs then."""
    pending = sorted(jobs, key=lambda j: j.priority)
    by_key = {j.key: j for j in jobs}
    running: list[Job] = []
    admitted: set[str] = set()

    def drop(job, status, note):
        job.status, job.note = status, note
        pending.remove(job)

    while pending or running:
        now = time.time()
        if now >= clock.jobs_end:
            break
        for job in list(pending):
            if len(running) >= workers:
                break
            if job not in pending:  # dropped with its group in this pass
                continue
            left = clock.jobs_end - now
            if job.group and job.group not in admitted:
                if job.gated and job.group_estimate is not None and job.group_estimate > left:
                    for other in [j for j in pending if j.group == job.group]:
                        drop(other, NOT_STARTED, f"its cell is estimated at {job.group_estimate:.0f} s, "
                                                 f"{left:.0f} s left")
                    continue
                admitted.add(job.group)
            blocked = [by_key[k] for k in job.needs if by_key[k].status not in ("pending", "running", "finished")]
            if blocked:
                drop(job, "not started: blocked", f"{blocked[0].key} {blocked[0].status}")
                continue
            if any(by_key[k].status != "finished" for k in job.needs):
                continue
            if job.gated and job.estimate is not None and job.estimate > left:
                drop(job, NOT_STARTED, f"estimated {job.estimate:.0f} s, {left:.0f} s left")
                continue
            pending.remove(job)
            if job.select:
                try:
                    from specbench.tuner import export, study_name
                    sel = job.select
                    chosen = export(sel["journal"], study_name(sel["spec"], sel["space"], sel["protocol"]),
                                    sel["space"], sel["protocol"], job.tuned)
                    job.info["chosen"] = chosen["params"]
                except Exception as exc:  # noqa: BLE001  (a broken trial: the run cannot start)
                    job.status, job.note = "failed", f"select: {exc}"
                    continue
            job.out.parent.mkdir(parents=True, exist_ok=True)
            with open(job.log, "w") as logf:
                job.proc = subprocess.Popen(job.command(), cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                            start_new_session=True)
            job.status, job.started = "running", time.time()
            running.append(job)
            log(f"  start {job.key}" + (f" (estimated {job.estimate:.0f} s)" if job.estimate is not None else ""))
        for job in list(running):
            if job.proc.poll() is None:
                continue
            job.ended = time.time()
            running.remove(job)
            if job.proc.returncode == 0 and job.out.is_file():
                job.status = "finished"
            else:
                tail = job.log.read_text(errors="replace").strip().splitlines()[-1:] if job.log.is_file() else []
                job.status, job.note = "failed", f"exit {job.proc.returncode}: {tail[0] if tail else ''}"
            log(f"  {job.status} {job.key} in {job.ended - job.started:.0f} s {job.note}")
        if not running and not any(all(by_key[k].status == "finished" for k in j.needs) for j in pending):
            for job in pending:  # waiting on a job that will not finish
                job.status, job.note = "not started: blocked", "its trials did not all finish"
            pending = []
        time.sleep(0.2)
    for job in running:
        log(f"  stopping {job.key} at the deadline (after {time.time() - job.started:.0f} s)")
        try:
            os.killpg(job.proc.pid, signal.SIGTERM)  # specbench run keeps its checkpoint
        except ProcessLookupError:
            pass
    limit = time.time() + grace
    for job in running:
        try:
            job.proc.wait(timeout=max(0.1, limit - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(job.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            job.proc.wait()
        job.ended = time.time()
        job.status = "finished" if job.proc.returncode == 0 and job.out.is_file() else STOPPED
        if job.status == STOPPED:
            job.note = salvage(job)
        log(f"  {job.status} {job.key}: {job.note}")
    for job in pending:
        job.status, job.note = NOT_STARTED, "the deadline came first"


def salvage(job: Job) -> str:
    """The evaluations a stopped job reached, from its checkpoint, as ``<record>.partial.json``."""
    from specbench.run import CHECKPOINT, work_dir_for
    path = work_dir_for(job.out) / CHECKPOINT
    if not path.is_file():
        return "no checkpoint yet (stopped before its first evaluation)"
    try:
        from specbench.checkpoint import read_state
        from specbench.record import json_safe
        state = read_state(path)
    except Exception as exc:  # noqa: BLE001
        return f"checkpoint unreadable: {exc}"
    partial = {"partial": True, "why": f"{STOPPED}: stopped by gpu/evidence.py at the deadline; the evaluations "
                                       "up to its last checkpoint", "run": {k: job.spec.get(k) for k in
                                                                              ("dataset", "backbone", "method", "model", "seed")},
               "last_epoch": state["epoch"], "epochs": json_safe(state["epochs"]), "history": json_safe(state["history"])}
    partial_path(job.out).write_text(json.dumps(partial, indent=1) + "\n")
    return f"reached epoch {state['epoch']}; evaluations kept in {partial_path(job.out).name}"


# ---- the fidelity comparison ----------------------------------------------------------------------------

def _history_of(job: Job) -> tuple[list, str]:
    if job.out.is_file():
        return json.loads(job.out.read_text())["history"], "record"
    if partial_path(job.out).is_file():
        return json.loads(partial_path(job.out).read_text())["history"], "partial"
    return [], "none"


def _mean_sd(values):
    import statistics
    return (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def _metric(entry: dict, name: str):
    if name == "erank":
        return (entry.get("spectrum") or {}).get("erank")
    return (entry.get("metrics") or {}).get(name)


def compare_fidelity(jobs: list[Job], reference: Path = CPU_FIDELITY) -> dict:
    """GPU run vs the committed CPU runs (3 seeds) at every epoch the CPU runs evaluated, and at epoch 30
    vs the authors' code (single τ MF). Gap = GPU / CPU mean - 1."""
    out = {"reference": _rel(reference, ROOT), "runs": {}}
    for job in jobs:
        name = job.info["name"]
        history, source = _history_of(job)
        pattern = next(f[4] for f in FIDELITY if f[0] == name)
        record = json.loads(job.out.read_text()) if job.out.is_file() else None
        entry = {"status": job.status, "note": job.note, "from": source, "method": job.info["method"],
                 "backbone": job.info["backbone"], "epochs_planned": job.info["epochs"], "eval_step": job.info["eval_step"],
                 "evaluated_epochs": [h["epoch"] for h in history],
                 "history": [{"epoch": h["epoch"], **{m: _metric(h, m) for m in METRICS + ("erank",)}} for h in history]}
        if record:
            entry["seconds_per_epoch"] = record["timing"]["seconds_per_epoch"]
            entry["device"] = record["environment"].get("gpu") or record["environment"].get("device")
        gpu = {h["epoch"]: h for h in history}
        if pattern is None:
            entry["comparison"] = "no CPU reference for this run (the CPU check covered MF only)"
            out["runs"][name] = entry
            continue
        cpu_runs = sorted(reference.glob(pattern))
        cpu = [json.loads(p.read_text()) for p in cpu_runs]
        seed0 = next((r for r in cpu if r["run"]["seed"] == 0), None)
        epochs = sorted({h["epoch"] for r in cpu for h in r["history"]})
        rows = []
        for epoch in epochs:
            for m in METRICS + ("erank",):
                values = [v for r in cpu for h in r["history"] if h["epoch"] == epoch for v in [_metric(h, m)]
                          if v is not None]
                if not values:
                    continue
                mean, sd = _mean_sd(values)
                g = _metric(gpu[epoch], m) if epoch in gpu else None
                s0 = next((_metric(h, m) for h in (seed0 or {}).get("history", []) if h["epoch"] == epoch), None)
                row = {"epoch": epoch, "metric": m, "gpu": g, "cpu_mean": mean, "cpu_sd": sd,
                       "cpu_min": min(values), "cpu_max": max(values), "cpu_seeds": len(values), "cpu_seed0": s0}
                if g is None:
                    row["gpu"] = "not reached"
                else:
                    row["gap_vs_cpu_mean"] = g / mean - 1 if mean else None
                    row["within_cpu_seed_range"] = min(values) <= g <= max(values)
                    row["sds_from_cpu_mean"] = (g - mean) / sd if sd else None
                    row["minus_cpu_seed0"] = g - s0 if s0 is not None else None
                authors = AUTHORS_MF_SINGLE.get(epoch, {}).get(m) if name == "mf-single" else None
                if authors is not None:
                    row["authors"] = authors
                    if g is not None:
                        row["gap_vs_authors"] = g / authors - 1
                rows.append(row)
        entry["cpu_records"] = [_rel(p, ROOT) for p in cpu_runs]
        entry["comparison"] = rows
        compared = [r for r in rows if isinstance(r["gpu"], float) and r["metric"] != "erank" and r["epoch"] > 0]
        entry["headline"] = ({"compared": len(compared),
                              "max_abs_gap_vs_cpu_mean": max(abs(r["gap_vs_cpu_mean"]) for r in compared),
                              "all_within_cpu_seed_range": all(r["within_cpu_seed_range"] for r in compared),
                              "epochs": sorted({r["epoch"] for r in compared})}
                             if compared else {"compared": 0, "why": "the GPU run reached none of the CPU run's "
                                                                     "evaluation epochs after epoch 0"})
        out["runs"][name] = entry
    return out


# ---- packing ----------------------------------------------------------------------------------------------

MAX_FILE_BYTES = 16 * 2**20


def pack_runs(results: Path, tarball: Path, log: Log) -> dict:
    """Every record, trial, selection, partial and job log under ``results`` (not the checkpoints)."""
    files = sorted(p for p in results.rglob("*") if p.is_file() and ".work" not in p.relative_to(results).parts) \
        if results.is_dir() else []

    def write(chosen):
        with tarfile.open(tarball, "w:gz") as tar:
            for p in chosen:
                tar.add(p, arcname=str(p.relative_to(results)))
        return tarball.stat().st_size

    size = write(files)
    dropped = []
    if size > MAX_FILE_BYTES - 2**20:  # the device tool returns files of at most 16 MiB
        dropped = [p for p in files if p.suffix == ".log"]
        size = write([p for p in files if p.suffix != ".log"])
        log(f"runs.tar.gz was over 15 MiB: job logs left out ({len(dropped)})")
    return {"file": tarball.name, "bytes": size, "files": len(files) - len(dropped),
            "records": sum(1 for p in files if p.suffix == ".json" and not p.name.endswith(".partial.json")),
            "partials": sum(1 for p in files if p.name.endswith(".partial.json")), "logs_left_out": len(dropped)}


# ---- main -------------------------------------------------------------------------------------------------

def parse(argv=None):
    ap = argparse.ArgumentParser(prog="gpu/evidence.py", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="where the files go (on the device: $OUT)")
    ap.add_argument("--budget-seconds", type=float, default=None,
                    help="the whole command's time, install to packing (default 420; --dry: 50)")
    ap.add_argument("--device", default=None, help="cuda (default), cuda:N or cpu (default with --dry)")
    ap.add_argument("--dry", action="store_true", help="CPU, stand-in data, tiny epochs, no install")
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS), help="steps to run (default: all)")
    ap.add_argument("--work", type=Path, default=None,
                    help="scratch folder, kept (default: a new temporary folder, removed at the end)")
    ap.add_argument("--carry", type=Path, default=CARRY, help="the carried wheels and data (make gpu-carry)")
    ap.add_argument("--skip-install", action="store_true", help="install no wheel (the environment has them)")
    ap.add_argument("--install", action="store_true", help="install the carried wheels even with --dry")
    ap.add_argument("--data-dir", type=Path, default=None, help="prepared atomic datasets instead of the carried ones")
    ap.add_argument("--study", type=Path, default=STUDY, help="the study of step 3 (default config/paper.yaml)")
    ap.add_argument("--study-datasets", nargs="+", default=[FIDELITY_DATASET])
    ap.add_argument("--study-seeds", type=int, default=1, help="the study's first N seeds")
    ap.add_argument("--workers", type=int, default=None, help="parallel jobs of steps 2-3 (cuda 4, cpu 1)")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of every job (cuda 2, cpu 1)")
    ap.add_argument("--bench-share", type=float, default=None,
                    help="step 1 ends at this share of the budget (default 0.4; --dry 0.5)")
    ap.add_argument("--bench-methods", nargs="+", default=None, help="bench rows (default: all; --dry: a few)")
    ap.add_argument("--bench-repeats", type=int, default=None, help="timed epochs per row (cuda 2, --dry 1)")
    ap.add_argument("--bench-max-epoch-seconds", type=float, default=None,
                    help="longer epochs are timed on a prefix (cuda 2, --dry 1)")
    ap.add_argument("--bench-jobs", type=int, default=None, help="bench rows built at once (cuda 4, cpu 2)")
    ap.add_argument("--reserve-seconds", type=float, default=None,
                    help="jobs stop this long before the end of the budget (default 25; --dry 5)")
    args = ap.parse_args(argv)
    cuda = not args.dry and (args.device or "cuda").startswith("cuda")
    args.device = args.device or ("cpu" if args.dry else "cuda")
    args.budget_seconds = args.budget_seconds if args.budget_seconds is not None else (50.0 if args.dry else 420.0)
    args.bench_share = args.bench_share if args.bench_share is not None else (0.5 if args.dry else 0.4)
    args.workers = args.workers or (4 if cuda else 1)
    args.threads = args.threads or (2 if cuda else 1)
    args.bench_repeats = args.bench_repeats or (2 if cuda else 1)
    args.bench_max_epoch_seconds = args.bench_max_epoch_seconds or (2.0 if cuda else 1.0)
    args.bench_jobs = args.bench_jobs or (4 if cuda else 2)
    args.bench_methods = args.bench_methods or (list(DRY_ROWS) if args.dry else None)
    args.reserve_seconds = args.reserve_seconds if args.reserve_seconds is not None else (5.0 if args.dry else 25.0)
    args.keep_work = args.work is not None
    return args


def main(argv=None) -> int:
    args = parse(argv)
    clock = Clock(time.time(), args.budget_seconds, args.reserve_seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("summary.json", "bench.json", "fidelity.json", "study.json", "runs.tar.gz", "evidence.log"):
        (args.out / name).unlink(missing_ok=True)
    if args.keep_work:
        marker = args.work / ".specbench-evidence"
        if args.work.exists() and any(args.work.iterdir()) and not marker.is_file():
            raise SystemExit(f"--work {args.work} is not empty and not an earlier gpu/evidence.py work folder")
        if args.work.exists():
            shutil.rmtree(args.work)
        args.work.mkdir(parents=True)
        marker.touch()
    else:
        args.work = Path(tempfile.mkdtemp(prefix="specbench-evidence-"))
    results = args.work / "results"
    log = Log(args.out / "evidence.log", clock.start)
    summary = {"schema": 1, "what": "gpu/evidence.py: bench, fidelity and the CiteULike study in one call",
               "started": datetime.fromtimestamp(clock.start, timezone.utc).isoformat(timespec="seconds"),
               "budget_seconds": args.budget_seconds, "dry": args.dry, "device_requested": args.device,
               "argv": sys.argv[1:] if argv is None else list(argv), "steps": [], "stopped_at_budget": [],
               "files": {}}
    manifest = args.carry / "manifest.json"
    if manifest.is_file():
        m = json.loads(manifest.read_text())
        summary["carry"] = {k: m.get(k) for k in ("created", "git", "total_bytes")}
    log(f"gpu/evidence.py: budget {args.budget_seconds:.0f} s, device {args.device}, steps {' '.join(args.steps)}"
        f"{', dry' if args.dry else ''}; out {args.out}, work {args.work}")
    error = None
    try:
        t0 = time.time()
        env = install(args, args.work, log)
        summary["install"] = {**args._install, "seconds": time.time() - t0}
        summary["device"] = preflight(args.device, log)
        data_dir, summary["data"] = prepare_data(args, args.work, log)
        bench = {"results": []}
        if "bench" in args.steps:
            step = step_bench(args, clock, data_dir, env, log)
            summary["steps"].append(step)
            if (args.out / "bench.json").is_file():
                bench = json.loads((args.out / "bench.json").read_text())
                summary["files"]["bench"] = "bench.json"
                kind = "cuda" if args.device.startswith("cuda") else "cpu"
                from specbench.bench import device_kind
                summary["commit_bench_as"] = f"results/bench/{kind}-{device_kind(bench.get('hardware', {}))}.json" \
                    if kind == "cuda" else f"results/bench/cpu-{bench.get('hardware', {}).get('host')}.json"
                summary["headline"] = bench_headline(bench, args.device)
                summary["not_timed"] = [f"{r['dataset']}/{r['variant']}: {r['status']}" for r in bench["results"]
                                        if r.get("status") != "timed"]
                summary["stopped_at_budget"] += [f"bench {r['dataset']}/{r['variant']}" for r in bench["results"]
                                                 if r.get("status") == "not timed: budget"]
                try:
                    from specbench.bench import project_study
                    summary["paper_projection"] = project_study(PAPER, bench)
                except Exception as exc:  # noqa: BLE001  (a projection is a by-product)
                    summary["paper_projection"] = {"error": f"{type(exc).__name__}: {exc}"}
            bench_note = "the bench stopped at its share of the budget" if step["status"] == STOPPED else None
            if bench_note:
                log(bench_note)
        jobs = []
        if "fidelity" in args.steps:
            jobs += fidelity_jobs(args, data_dir, results, bench)
        study = None
        if "study" in args.steps:
            study = restricted_study(args, data_dir)
            if study.tuned_keys():  # the validation carve the trials train and score on
                from specbench.data import carve_validation
                tuning = study.tuning
                for ds in study.datasets:
                    carve_validation(data_dir, ds, tuning["valid_fraction"], tuning["split_seed"])
            jobs += study_jobs(args, study, results, bench, [j for j in jobs if j.step == "fidelity"], log)
        if jobs:
            left = clock.left()
            log(f"steps 2-3: {len(jobs)} jobs on {args.workers} workers, {left:.0f} s left")
            t0 = time.time()
            run_pool(jobs, clock, env, args.workers, grace=min(10.0, max(2.0, args.reserve_seconds / 2)), log=log)
            for step_name in ("fidelity", "study"):
                mine = [j for j in jobs if j.step == step_name]
                if not mine:
                    continue
                by = {}
                for j in mine:
                    by[j.status] = by.get(j.status, 0) + 1
                summary["steps"].append({"step": step_name, "seconds": time.time() - t0, "jobs": len(mine), "by_status": by,
                                         "status": "finished" if by.get("finished") == len(mine) else
                                         STOPPED if by.get(STOPPED) or by.get(NOT_STARTED) else "finished with failures"})
                summary["stopped_at_budget"] += [f"{j.key}: {j.status}" + (f" ({j.note})" if j.note else "")
                                                 for j in mine if j.status in (STOPPED, NOT_STARTED)]
        fid = [j for j in jobs if j.step == "fidelity"]
        if fid:
            comparison = compare_fidelity(fid)
            (args.out / "fidelity.json").write_text(json.dumps(comparison, indent=1) + "\n")
            summary["files"]["fidelity"] = "fidelity.json"
            summary["fidelity"] = {name: {k: r.get(k) for k in ("status", "evaluated_epochs", "seconds_per_epoch",
                                                                 "headline")}
                                   for name, r in comparison["runs"].items()}
        st = [j for j in jobs if j.step == "study" or "cell" in j.info]  # with the fidelity runs that are cells
        if study is not None:
            cells = sorted({j.info["cell"] for j in st if j.info.get("kind") == "run"})
            done = sorted({j.info["cell"] for j in st if j.info.get("kind") == "run" and j.status == "finished"})
            record = {"study": study.source, "config": study.config, "workers": args.workers,
                      "cells": {"total": len(cells), "finished": len(done), "finished_cells": done},
                      "jobs": [j.describe(results) for j in sorted(st, key=lambda j: j.priority)]}
            (args.out / "study.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
            summary["files"]["study"] = "study.json"
            summary["study"] = {"cells_finished": len(done), "cells": len(cells),
                                "jobs_finished": sum(j.status == "finished" for j in st), "jobs": len(st)}
    except Exception as exc:  # noqa: BLE001  (every failure ends in the summary and the log)
        error = f"{type(exc).__name__}: {exc}"
        log(f"ERROR: {error}\n{traceback.format_exc()}")
        summary["error"] = error
    finally:
        try:
            summary["runs"] = pack_runs(results, args.out / "runs.tar.gz", log)
            summary["files"]["runs"] = "runs.tar.gz"
        except Exception as exc:  # noqa: BLE001
            summary["runs"] = {"error": f"{type(exc).__name__}: {exc}"}
        summary["files"]["log"] = "evidence.log"
        summary["wall_seconds"] = time.time() - clock.start
        summary["within_budget"] = summary["wall_seconds"] <= args.budget_seconds
        log(f"done in {summary['wall_seconds']:.0f} s of {args.budget_seconds:.0f}"
            + (f"; stopped at budget: {len(summary['stopped_at_budget'])}" if summary["stopped_at_budget"] else "")
            + (f"; ERROR {error}" if error else ""))
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        log.close()
        if not args.keep_work:
            shutil.rmtree(args.work, ignore_errors=True)
    return 1 if error else 0


if __name__ == "__main__":
    raise SystemExit(main())
