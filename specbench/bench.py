"""Training speed of every method (`make bench`): seconds per epoch and peak memory of the real harness path.

Rows: the four DirectSpec+ variants first (``VARIANTS``: MF and LightGCN, single τ and τ0/τ1, at the
published settings of config/methods.yaml, methods DirectSpecPlusPublished and
DirectSpecPlusAdaptivePublished; batch 256, floor(|train| / B) steps per epoch), then every other
method x backbone of the catalogue (``catalogue_rows``): the other DirectSpec(+) methods, the baselines,
the training-free filters last. Each row runs at the settings its method has in the catalogue for the
dataset (presets over the model's yaml; a tuned method at its untuned settings), so at its own batch
size. ``--methods`` selects rows (a method name, ``Method/backbone`` or a variant name); ``--variants``
keeps its old meaning. The variants run on every dataset first, then the other rows dataset by dataset.

For each (dataset, row) a fresh process builds what ``specbench run`` builds (the RecBole dataset from
atomic files, the model, the device sampler, the optimiser: ``specbench.harness.build``) and times
``specbench.training.train_epoch``, the loop every run uses: one warm-up epoch, then ``repeats`` timed
epochs (mean and spread). A model's ``on_epoch_start`` hook (NCL's clustering) runs once before the
warm-up and is timed on its own (``epoch_hook_seconds``; the run records leave it out of an epoch's
seconds too). Where an epoch would take longer than ``max_epoch_seconds`` (LightGCN on a CPU), a probe
sets a number of steps that fits, and the timed units are that many steps, extrapolated to a whole
epoch (``extrapolated: true``, ``timed_steps``). The device is synchronised only around timed units.
A training-free filter has no epochs: its fit (building the model) is timed (``fit_seconds``).
``--time-eval`` also times one evaluation as a run does it (full-ranking metrics and the spectrum,
``eval_seconds``). Peak memory: RSS of the process (CPU) after setup and after training;
``torch.cuda.max_memory_allocated`` during training (GPU; ``peak_gpu_bytes_eval`` for the evaluation).

``--jobs N`` builds up to N rows at once while only one is timed at a time (a file lock around the
timed part: probe, epochs, evaluation, a filter's fit), so the setup of one row overlaps the timing of
another. ``--deadline`` / ``--budget-seconds`` stop cleanly: a row not started by then, or stopped at
it, is recorded with ``status: "not timed: budget"``; a row whose process fails is recorded with
``status: "failed"`` and its error, and the others still run (exit status 1). The JSON is rewritten
after every row, so what finished is kept if the bench itself is stopped.

``--project STUDY --from BENCH_JSON`` projects the wall time of a study (config/paper.yaml) at one seed
from a bench record (``project_study``).

Data: data/atomic/<ds>, prepared by the workflow (`make bench` asks Snakemake for it first).
Output: results/bench/<device kind>-<host>.json.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

T_START = time.perf_counter()  # the process's start, as near as Python gives it (import_seconds)
ROOT = Path(__file__).resolve().parents[1]
CATALOGUE = ROOT / "config" / "methods.yaml"
VARIANTS = {  # name -> (catalogue method, backbone)
    "mf": ("DirectSpecPlusPublished", "mf"),
    "mf-adaptive": ("DirectSpecPlusAdaptivePublished", "mf"),
    "lightgcn": ("DirectSpecPlusPublished", "lightgcn"),
    "lightgcn-adaptive": ("DirectSpecPlusAdaptivePublished", "lightgcn"),
}
DIRECTSPEC_MODELS = ("DirectSpec", "DirectSpecPlus")  # their other catalogue methods come right after VARIANTS
BACKBONE_ORDER = ("mf", "lightgcn", "filter")
TRAINING_FREE = "filter"  # the catalogue's backbone of the training-free graph filters
TIMED, BUDGET, FAILED = "timed", "not timed: budget", "failed"
KILL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Row:
    """One timed row: a catalogue method on one backbone (name: a VARIANTS key or ``Method/backbone``)."""
    name: str
    method: str
    backbone: str
    model: str

    @property
    def training_free(self) -> bool:
        return self.backbone == TRAINING_FREE


def catalogue_rows(catalogue: Path = CATALOGUE) -> list[Row]:
    """Every (method, backbone) of the catalogue, in bench order: the four VARIANTS, the other
    DirectSpec(+) methods, the other trained methods, the training-free filters; catalogue order within."""
    from specbench.schemas import check_file, display_path
    from specbench.study import Method
    entries = (check_file(catalogue, "methods.schema.yaml") or {}).get("methods", {})
    methods = [Method.from_catalogue(name, entry, f"{display_path(catalogue)}: methods.{name}")
               for name, entry in entries.items()]
    by_name = {m.name: m for m in methods}
    rows = [Row(name, method, backbone, by_name[method].models[backbone])
            for name, (method, backbone) in VARIANTS.items() if method in by_name and backbone in by_name[method].models]
    taken = {(r.method, r.backbone) for r in rows}

    def tier(m) -> int:
        if TRAINING_FREE in m.models:
            return 2
        return 0 if set(m.models.values()) & set(DIRECTSPEC_MODELS) else 1

    for rank in (0, 1, 2):
        for m in methods:
            if tier(m) != rank:
                continue
            for backbone in sorted(m.models, key=lambda b: BACKBONE_ORDER.index(b) if b in BACKBONE_ORDER else 99):
                if (m.name, backbone) not in taken:
                    rows.append(Row(f"{m.name}/{backbone}", m.name, backbone, m.models[backbone]))
    return rows


def select_rows(rows: list[Row], tokens) -> list[Row]:
    """The rows that ``tokens`` name (``all``, a variant name, a method, ``Method/backbone``), in bench order."""
    from specbench.errors import SpecbenchError
    from specbench.schemas import suggest
    tokens = list(tokens or ["all"])
    if "all" in tokens:
        return list(rows)
    names = {r.name for r in rows} | {r.method for r in rows} | {f"{r.method}/{r.backbone}" for r in rows}
    unknown = [t for t in tokens if t not in names]
    if unknown:
        hint = suggest(unknown[0], sorted(names))
        raise SpecbenchError(f"--methods: {', '.join(unknown)} not in the catalogue"
                             + (f" (did you mean {hint!r}?)" if hint else "")
                             + f"; known rows: {', '.join(r.name for r in rows)}")
    wanted = set(tokens)
    return [r for r in rows if r.name in wanted or r.method in wanted or f"{r.method}/{r.backbone}" in wanted]


def check_prepared(datasets, data_dir: Path) -> None:
    """Every benchmarked dataset must be prepared by the workflow (fetched, checksummed, converted)."""
    from specbench.errors import SpecbenchError
    missing = [ds for ds in datasets if not all((data_dir / ds / f"{ds}.{s}.inter").is_file() for s in ("train", "test"))]
    if missing:
        targets = " ".join(f"{data_dir}/{ds}/stats.json" for ds in missing)
        raise SpecbenchError(f"not prepared in {data_dir}: {', '.join(missing)}; run `snakemake -c1 {targets}` "
                             "first (`make bench` does)")


def method_spec(dataset: str, method: str, backbone: str, data_dir: Path, device: str,
                catalogue: Path = CATALOGUE) -> dict:
    """The run spec a study would give this (dataset, method, backbone), with the device set."""
    from specbench.settings import layer
    from specbench.study import Study
    study = Study({"study": "bench", "catalogue": str(catalogue), "methods": [method], "backbones": [backbone],
                   "datasets": [dataset], "seeds": [0], "data_dir": str(data_dir)}, root=ROOT)
    spec = study.spec(dataset, backbone, method, 0)
    spec["layers"].append(layer("set", "specbench.bench --device", {"device": device}))
    return spec


def variant_spec(dataset: str, variant: str, data_dir: Path, device: str) -> dict:
    """The run spec of a bench row (a VARIANTS key, or ``Method/backbone``) on ``dataset``."""
    if variant in VARIANTS:
        method, backbone = VARIANTS[variant]
    else:
        method, _, backbone = variant.partition("/")
    return method_spec(dataset, method, backbone, data_dir, device)


class _Prefix:
    """The first ``steps`` batches of a sampler's epoch (a timed unit shorter than an epoch)."""

    def __init__(self, sampler, steps: int):
        self.sampler, self.steps, self.device = sampler, steps, sampler.device

    def epoch(self):
        return itertools.islice(self.sampler.epoch(), self.steps)


class _TimingLock:
    """An exclusive file lock around the timed part of a row (``--jobs``): one row timed at a time.
    Re-entrant: entered again while held, it only counts."""

    def __init__(self, path: Path | None):
        self.path, self.fd, self.depth, self.waited = path, None, 0, 0.0

    def __enter__(self):
        self.depth += 1
        if self.path is not None and self.fd is None:
            t0 = time.perf_counter()
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.waited = time.perf_counter() - t0
        return self

    def __exit__(self, *exc):
        self.depth = max(0, self.depth - 1)
        if self.depth == 0 and self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


SETTING_KEYS = ("learning_rate", "lr_decay", "alpha", "tau", "tau0", "tau1", "shrink_norm", "reg", "train_batch_size",
                "embedding_size", "n_layers", "learner", "sparse_grad")


def time_variant(spec: dict, repeats: int, max_epoch_seconds: float, probe_steps: int = 10, time_eval: bool = False,
                 lock: Path | None = None, steps: int | None = None) -> dict:
    """Time ``specbench.training.train_epoch`` (a filter: its fit) on the harness of ``spec``; the measurements.
    ``steps``: time units of exactly that many steps (after a warm-up of ``probe_steps``) instead of epochs."""
    import torch

    from specbench.harness import build, sync
    from specbench.settings import resolve
    from specbench.training import evaluate, train_epoch
    import_seconds = time.perf_counter() - T_START
    resolved = resolve(spec)
    entry, settings = resolved.entry, resolved.settings
    timing = _TimingLock(lock)
    if spec["backbone"] == TRAINING_FREE:  # the fit happens while building: time it under the lock
        timing.__enter__()
    try:
        t_build = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            h = build(spec, entry, settings, Path(work))
        build_seconds = time.perf_counter() - t_build
        with timing:
            out = _measure(h, spec, settings, repeats, max_epoch_seconds, probe_steps, time_eval, torch, sync,
                           evaluate, train_epoch, steps)
    finally:
        timing.__exit__()
    out.update(import_seconds=import_seconds, build_seconds=build_seconds, lock_wait_seconds=timing.waited)
    return out


def _measure(h, spec, settings, repeats, max_epoch_seconds, probe_steps, time_eval, torch, sync, evaluate,
             train_epoch, fixed_steps: int | None = None) -> dict:
    device, model, sampler, optimizer, wrap = h.device, h.model, h.sampler, h.optimizer, h.wrap
    steps, cuda = sampler.steps_per_epoch(), device.type == "cuda"
    rss_setup = _peak_rss()
    encoder = getattr(model, "encoder", None)
    out = {
        "dataset": spec["dataset"], "method": spec["method"], "backbone": spec["backbone"], "model": spec["model"],
        "label": spec.get("label", spec["method"]), "status": TIMED,
        "adaptive": settings.get("tau0") is not None,
        "settings": {k: settings.get(k) for k in SETTING_KEYS},
        "sparse_gradients": bool(encoder is not None and getattr(encoder, "user_embedding", None) is not None
                                 and encoder.user_embedding.sparse),
        "users": model.n_users - 1, "items": model.n_items - 1, "train_rows": sampler.n_train_rows,
        "steps_per_epoch": steps,
    }
    if optimizer is None:  # a training-free filter: fitted when built, evaluated once
        out.update(training_free=True, fit_seconds=h.setup_seconds, seconds_per_epoch=None,
                   peak_rss_bytes_after_setup=rss_setup, peak_rss_bytes=_peak_rss())
        if cuda:
            out.update(peak_gpu_bytes=torch.cuda.max_memory_allocated(device))
        out.update(_time_evaluation(h, evaluate, sync, torch, cuda))
        return out
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    gpu_before = torch.cuda.memory_allocated(device) if cuda else None
    cpu_seconds = []

    def timed(unit) -> float:
        if cuda:
            torch.cuda.synchronize(device)
        t0, c0 = time.perf_counter(), time.process_time()
        float(train_epoch(model, unit, optimizer, wrap, settings["clip_grad_norm"]))  # waits for queued work
        cpu_seconds.append(time.process_time() - c0)
        return time.perf_counter() - t0

    hook = None
    if hasattr(model, "on_epoch_start"):  # as training.fit does before every epoch (e.g. NCL's clustering)
        sync(device)
        t0 = time.perf_counter()
        model.on_epoch_start(1)
        sync(device)
        hook = time.perf_counter() - t0
    model.train()
    probe = timed(_Prefix(sampler, probe_steps)) / probe_steps
    if fixed_steps:  # the probe was the warm-up; units of exactly fixed_steps (bench_reference: the reference's count)
        unit_steps, warmup = int(fixed_steps), None
    elif probe * steps <= max_epoch_seconds:  # a warm-up epoch, then whole epochs
        unit_steps, warmup = steps, timed(sampler)
    else:  # the probe was the warm-up; time prefixes of about max_epoch_seconds
        unit_steps, warmup = max(probe_steps, int(max_epoch_seconds / probe)), None
    unit = sampler if unit_steps == steps else _Prefix(sampler, unit_steps)
    per_epoch = [timed(unit) * steps / unit_steps for _ in range(repeats)]
    out.update({
        "training_free": False,
        "timed_steps": unit_steps, "extrapolated": unit_steps != steps,
        "repeats": repeats, "warmup_epoch_seconds": warmup, "probe_seconds_per_step": probe,
        "epoch_hook_seconds": hook,
        "seconds_per_epoch": float(np.mean(per_epoch)),
        "seconds_per_epoch_std": float(np.std(per_epoch, ddof=1)) if repeats > 1 else 0.0,
        "seconds_per_epoch_min": float(np.min(per_epoch)), "seconds_per_epoch_max": float(np.max(per_epoch)),
        "seconds_per_epoch_all": per_epoch,
        "seconds_per_step_all": [e / steps for e in per_epoch],
        # CPU time of this process per epoch: on a busy machine closer to what a quiet one takes (one thread).
        "cpu_seconds_per_epoch": float(np.mean(cpu_seconds[-repeats:])) * steps / unit_steps,
        "peak_rss_bytes_after_setup": rss_setup,
        "peak_rss_bytes": _peak_rss(),
    })
    if cuda:
        out.update(gpu_bytes_before_training=gpu_before, peak_gpu_bytes=torch.cuda.max_memory_allocated(device))
    if time_eval:
        out.update(_time_evaluation(h, evaluate, sync, torch, cuda))
    return out


def _time_evaluation(h, evaluate, sync, torch, cuda) -> dict:
    """One evaluation as a run makes it (``training.evaluate``: full-ranking metrics and the spectrum)."""
    if cuda:
        torch.cuda.reset_peak_memory_stats(h.device)
    sync(h.device)
    t0 = time.perf_counter()
    entry, _ = evaluate(h, 0, None, final=False)
    sync(h.device)
    out = {"eval_seconds": time.perf_counter() - t0, "eval_metrics": {k: entry["metrics"].get(k)
                                                                      for k in ("recall@20", "ndcg@20")}}
    if cuda:
        out["peak_gpu_bytes_eval"] = torch.cuda.max_memory_allocated(h.device)
    return out


def hardware(device: str) -> dict:
    import torch

    from specbench.harness import resolve_device
    from specbench.provenance import device_info, git_state, package_versions
    info = device_info(resolve_device(device))
    info.pop("hostname", None)
    return {**info, "host": socket.gethostname(), "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "packages": package_versions(), "git": git_state()}


def device_kind(info: dict) -> str:
    name = info.get("gpu") or "cpu"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def child_command(dataset: str, row: str, data_dir: Path, args, lock: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "specbench.bench", "--one", dataset, row, "--data-dir", str(data_dir),
           "--device", args.device, "--repeats", str(args.repeats), "--max-epoch-seconds", str(args.max_epoch_seconds)]
    if args.time_eval:
        cmd.append("--time-eval")
    if lock is not None:
        cmd += ["--lock", str(lock)]
    return cmd


class _Child:
    """A running ``--one`` process, its output in files (no pipe to fill)."""

    def __init__(self, index: int, dataset: str, row: Row, cmd: list[str], scratch: Path):
        self.index, self.dataset, self.row = index, dataset, row
        self.stdout, self.stderr = scratch / f"{index}.out", scratch / f"{index}.err"
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT, start_new_session=True)
        self.started = time.time()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period (the whole process group)."""
        for sig, wait in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, KILL_GRACE_SECONDS)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def result(self) -> dict:
        text = self.stdout.read_text().strip()
        if self.proc.returncode == 0 and text:
            return json.loads(text.splitlines()[-1])
        tail = self.stderr.read_text()[-3000:]
        return {"status": FAILED, "returncode": self.proc.returncode, "error": tail}


def _placeholder(dataset: str, row: Row, status: str, **extra) -> dict:
    return {"variant": row.name, "dataset": dataset, "method": row.method, "backbone": row.backbone,
            "model": row.model, "status": status, **extra}


def bench_tasks(datasets, rows: list[Row]) -> list[tuple[str, Row]]:
    """(dataset, row) in bench order: the VARIANTS on every dataset, then the other rows dataset by dataset."""
    first = [(ds, r) for ds in datasets for r in rows if r.name in VARIANTS]
    return first + [(ds, r) for ds in datasets for r in rows if r.name not in VARIANTS]


def run_rows(tasks, data_dir: Path, args, deadline: float | None, on_result) -> list[dict]:
    """Run the (dataset, row) tasks, ``args.jobs`` at a time, until done or ``deadline``; ``on_result(results)``
    after every finished task (results: one entry per task, None while pending)."""
    results: list[dict | None] = [None] * len(tasks)
    pending, running = list(range(len(tasks))), []
    jobs = max(1, int(args.jobs))
    with tempfile.TemporaryDirectory(prefix="specbench-bench-") as scratch:
        scratch = Path(scratch)
        lock = scratch / "timing.lock" if jobs > 1 else None
        try:
            while pending or running:
                now = time.time()
                while pending and len(running) < jobs:
                    i = pending.pop(0)
                    ds, row = tasks[i]
                    if deadline is not None and now >= deadline:
                        results[i] = _placeholder(ds, row, BUDGET, reason="not started: the deadline had passed")
                        on_result(results)
                        continue
                    running.append(_Child(i, ds, row, child_command(ds, row.name, data_dir, args, lock), scratch))
                for child in list(running):
                    late = deadline is not None and time.time() >= deadline
                    if child.proc.poll() is None and not late:
                        continue
                    ds, row = tasks[child.index]
                    if child.proc.poll() is None:
                        child.stop()
                        results[child.index] = _placeholder(ds, row, BUDGET, reason="stopped at the deadline",
                                                            stopped_after_seconds=round(time.time() - child.started, 1))
                    else:
                        got = child.result()
                        results[child.index] = {"variant": row.name, **got} if got.get("status") != FAILED else \
                            _placeholder(ds, row, FAILED, returncode=got["returncode"], error=got["error"])
                    running.remove(child)
                    _print_row(results[child.index])
                    on_result(results)
                time.sleep(0.05)
        finally:
            for child in running:  # interrupted: leave no process behind
                child.stop()
    return results


def _print_row(row: dict) -> None:
    head = f"{row['dataset']:10s} {row['variant']:34s}"
    if row.get("status") != TIMED:
        lines = (row.get("error") or "").strip().splitlines()
        detail = row.get("reason") or (lines[-1] if lines else "")
        print(f"{head} {row['status']}{': ' + detail if detail else ''}", flush=True)
    elif row.get("training_free"):
        print(f"{head} fit {row['fit_seconds']:8.3f} s, evaluation {row['eval_seconds']:.3f} s "
              f"peak RSS {row['peak_rss_bytes'] / 2**20:.0f} MiB"
              + (f", peak GPU {row['peak_gpu_bytes'] / 2**20:.0f} MiB" if 'peak_gpu_bytes' in row else ""), flush=True)
    else:
        print(f"{head} {row['seconds_per_epoch']:8.3f} s/epoch "
              f"(±{row['seconds_per_epoch_std']:.3f}; CPU time {row['cpu_seconds_per_epoch']:.3f} s; "
              f"{row['steps_per_epoch']} steps"
              f"{', extrapolated from ' + str(row['timed_steps']) + ' steps' if row['extrapolated'] else ''}) "
              f"peak RSS {row['peak_rss_bytes'] / 2**20:.0f} MiB"
              + (f", peak GPU {row['peak_gpu_bytes'] / 2**20:.0f} MiB" if 'peak_gpu_bytes' in row else "")
              + (f", evaluation {row['eval_seconds']:.3f} s" if row.get('eval_seconds') is not None else ""),
              flush=True)


# ---- the wall time of a study, projected from a bench record (specbench.estimate schedules it) ----

def project_study(study_file: Path, record: dict, seeds: int = 1) -> dict:
    """Seconds a study takes run one job after another on the bench's device, at ``seeds`` seeds.

    Each job (test run, tuning trial, sweep point) costs a process start and setup, its epochs and its
    evaluations (``specbench.estimate.Cost``); a tuned test run and every trial are counted at the upper
    bound, ``max_epochs``. ``specbench estimate`` schedules the same costs on cores, with searches as one
    process and the epochs early stopping leaves. A (method, backbone) without a timed row is left out and
    listed in ``missing``.
    """
    from specbench.estimate import CostModel
    from specbench.study import Study
    study = Study.from_file(study_file, root=ROOT)
    model = CostModel(record, study.datasets_catalog)
    kept_seeds = study.seeds[:max(1, seeds)]
    jobs = [("run", j.dataset, j.backbone, j.method, j.seed) for j in study.jobs() if j.seed in kept_seeds]
    for key in study.tuned_keys():
        jobs += [("trial",) + key + (t,) for t in range(int(study.tuning["trials"]))]
    for name, sweep in study.sweeps().items():
        for ds, bb in itertools.product(sweep["datasets"], sweep["backbones"]):
            jobs += [(name, ds, bb, sweep["method"], p) for p in range(len(study.sweep_points(name)))]
    total, by_kind, by_dataset, by_method, missing, extrapolated = 0.0, {}, {}, {}, set(), {}
    for kind, ds, bb, method, index in jobs:
        if kind == "run":
            settings = study.settings(ds, bb, method)
            if study.is_tuned(method):
                settings = {**settings, "epochs": study.tuning["max_epochs"]}  # upper bound
        elif kind == "trial":
            settings = study.settings(ds, bb, method, trial=True)
        else:
            settings = study._resolved(kind, ds, bb, method, index).settings
        cost = model.cost(ds, method, bb)
        if cost is None:
            missing.add(f"{method}/{bb}")
            continue
        if cost.extrapolated_from is not None:
            extrapolated[ds] = cost.extrapolated_from
        seconds = cost.run(settings, int(settings.get("epochs") or 0))
        total += seconds
        group = kind if kind in ("run", "trial") else "sweep"
        by_kind[group] = by_kind.get(group, 0.0) + seconds
        by_dataset[ds] = by_dataset.get(ds, 0.0) + seconds
        by_method[f"{method}/{bb}"] = by_method.get(f"{method}/{bb}", 0.0) + seconds
    evals_timed = any(r.get("eval_seconds") is not None for r in model.timed.values())
    return {
        "study": str(study_file), "seeds": kept_seeds, "jobs": len(jobs), "seconds": total, "hours": total / 3600,
        "by_kind_seconds": by_kind, "by_dataset_seconds": by_dataset,
        "largest_seconds": dict(sorted(by_method.items(), key=lambda kv: -kv[1])[:10]),
        "missing": sorted(missing), "extrapolated_from": extrapolated, "evaluations_timed": evals_timed,
        "device": record.get("hardware", {}).get("gpu") or record.get("hardware", {}).get("device"),
        "assumptions": "one job after another on one device; tuned test runs at the trials' epochs (upper bound); "
                       "process start and setup as measured per bench row"
                       + ("" if evals_timed else "; evaluations not timed (counted as 0 s)"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="specbench.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--datasets", nargs="+", default=["citeulike", "gowalla"])
    ap.add_argument("--methods", nargs="+", default=None,
                    help="rows to time: all (default), a catalogue method, Method/backbone or a variant name")
    ap.add_argument("--variants", nargs="+", default=None, choices=list(VARIANTS),
                    help="only these DirectSpec+ variants (with --methods: added to its rows)")
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs (or step chunks) after the warm-up")
    ap.add_argument("--max-epoch-seconds", type=float, default=60.0,
                    help="longer epochs are timed on a prefix of steps and extrapolated")
    ap.add_argument("--time-eval", action="store_true", help="also time one evaluation per row")
    ap.add_argument("--jobs", type=int, default=1, help="rows built at once (only one is timed at a time)")
    ap.add_argument("--deadline", type=float, default=None, help="unix time: rows not done by then are not timed")
    ap.add_argument("--budget-seconds", type=float, default=None, help="the deadline, from now")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data" / "atomic", help="prepared atomic datasets")
    ap.add_argument("--out", type=Path, default=None, help="default: results/bench/<device kind>-<host>.json")
    ap.add_argument("--project", type=Path, default=None, metavar="STUDY",
                    help="print the projected wall time of a study yaml at one seed (needs --from)")
    ap.add_argument("--from", dest="from_record", type=Path, default=None, help="the bench JSON for --project")
    ap.add_argument("--one", nargs=2, metavar=("DATASET", "VARIANT"), help=argparse.SUPPRESS)
    ap.add_argument("--lock", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help=argparse.SUPPRESS)  # with --one: units of N steps
    args = ap.parse_args(argv)
    if args.one:
        spec = variant_spec(args.one[0], args.one[1], args.data_dir, args.device)
        print(json.dumps(time_variant(spec, args.repeats, args.max_epoch_seconds, time_eval=args.time_eval,
                                      lock=args.lock, steps=args.steps)))
        return 0
    if args.project:
        if not args.from_record:
            ap.error("--project needs --from BENCH_JSON")
        print(json.dumps(project_study(args.project, json.loads(args.from_record.read_text())), indent=1))
        return 0
    from specbench.atomic_io import atomic_write_text
    deadline = args.deadline if args.deadline is not None else (
        time.time() + args.budget_seconds if args.budget_seconds is not None else None)
    rows = catalogue_rows()
    if args.methods is None and args.variants is not None:
        rows = [r for r in rows if r.name in args.variants]
    else:
        rows = [r for r in rows if r in select_rows(rows, args.methods) or r.name in (args.variants or [])]
    info = hardware(args.device)
    out = args.out or ROOT / "results" / "bench" / f"{device_kind(info)}-{info['host']}.json"
    load_before, started = os.getloadavg(), time.time()
    check_prepared(args.datasets, args.data_dir)
    tasks = bench_tasks(args.datasets, rows)
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(results) -> None:
        done = [r for r in results if r is not None]
        record = {"schema": 1,
                  "what": "seconds per training epoch (specbench.training.train_epoch) of every method of the catalogue "
                          "at its own settings (a training-free filter: its fit); the four DirectSpec+ variants at the "
                          "published settings, batch 256, floor(|train|/B) steps per epoch",
                  "hardware": info, "load_average_before": load_before, "load_average_after": os.getloadavg(),
                  "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
                  "wall_seconds": time.time() - started,
                  "options": {"repeats": args.repeats, "max_epoch_seconds": args.max_epoch_seconds,
                              "time_eval": args.time_eval, "jobs": args.jobs,
                              "deadline": datetime.fromtimestamp(deadline, timezone.utc).isoformat(timespec="seconds")
                              if deadline else None,
                              "rows": [r.name for r in rows], "datasets": list(args.datasets)},
                  "complete": len(done) == len(results) and all(r.get("status") == TIMED for r in done),
                  "results": done}
        atomic_write_text(out, json.dumps(record, indent=1) + "\n")

    results = run_rows(tasks, args.data_dir, args, deadline, write)
    write(results)
    print(f"wrote {out}")
    return 1 if any(r is not None and r.get("status") == FAILED for r in results) else 0


def _main() -> int:
    from specbench.errors import SpecbenchError
    try:
        return main()
    except SpecbenchError as exc:
        print(f"specbench.bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(_main())
