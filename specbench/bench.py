"""Training speed of DirectSpec+ (`make bench`): seconds per epoch and peak memory of the real harness path.

For each dataset and variant (DirectSpec+ on MF and LightGCN, single τ and τ0/τ1) at the published
settings of config/methods.yaml (methods DirectSpecPlusPublished and DirectSpecPlusAdaptivePublished; batch
256, floor(|train| / B) steps per epoch), a fresh process builds what ``specbench run`` builds (the
RecBole dataset from atomic files, the model, the device sampler, the optimiser: ``specbench.harness.build``)
and times ``specbench.training.train_epoch``, the loop every run uses: one warm-up epoch, then ``repeats`` timed
epochs (mean and spread). Where an epoch would take longer than ``max_epoch_seconds`` (LightGCN on a
CPU), a probe sets a number of steps that fits, and the timed units are that many steps,
extrapolated to a whole epoch (``extrapolated: true``, ``timed_steps``). The device is synchronised
only around timed units. Peak memory: RSS of the process (CPU) after setup and after training;
``torch.cuda.max_memory_allocated`` during training (GPU).

Data: data/atomic/<ds>, prepared by the workflow (`make bench` asks Snakemake for it first).
Output: results/bench/<device kind>-<host>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {  # name -> (catalogue method, backbone)
    "mf": ("DirectSpecPlusPublished", "mf"),
    "mf-adaptive": ("DirectSpecPlusAdaptivePublished", "mf"),
    "lightgcn": ("DirectSpecPlusPublished", "lightgcn"),
    "lightgcn-adaptive": ("DirectSpecPlusAdaptivePublished", "lightgcn"),
}


def check_prepared(datasets, data_dir: Path) -> None:
    """Every benchmarked dataset must be prepared by the workflow (fetched, checksummed, converted)."""
    from specbench.errors import SpecbenchError
    missing = [ds for ds in datasets if not all((data_dir / ds / f"{ds}.{s}.inter").is_file() for s in ("train", "test"))]
    if missing:
        targets = " ".join(f"{data_dir}/{ds}/stats.json" for ds in missing)
        raise SpecbenchError(f"not prepared in {data_dir}: {', '.join(missing)}; run `snakemake -c1 {targets}` "
                             "first (`make bench` does)")


def variant_spec(dataset: str, variant: str, data_dir: Path, device: str) -> dict:
    """The run spec a study would give this (dataset, variant), with the device set."""
    from specbench.study import Study
    method, backbone = VARIANTS[variant]
    study = Study({"catalogue": str(ROOT / "config" / "methods.yaml"), "methods": [method],
                   "backbones": [backbone], "datasets": [dataset], "seeds": [0], "data_dir": str(data_dir)}, root=ROOT)
    from specbench.settings import layer
    spec = study.spec(dataset, backbone, method, 0)
    spec["layers"].append(layer("set", "specbench.bench --device", {"device": device}))
    return spec


class _Prefix:
    """The first ``steps`` batches of a sampler's epoch (a timed unit shorter than an epoch)."""

    def __init__(self, sampler, steps: int):
        self.sampler, self.steps, self.device = sampler, steps, sampler.device

    def epoch(self):
        return itertools.islice(self.sampler.epoch(), self.steps)


def time_variant(spec: dict, repeats: int, max_epoch_seconds: float, probe_steps: int = 10) -> dict:
    """Time ``specbench.training.train_epoch`` on the harness of ``spec``; returns the measurements."""
    import torch

    from specbench.harness import build
    from specbench.training import train_epoch
    from specbench.settings import resolve
    resolved = resolve(spec)
    entry, settings = resolved.entry, resolved.settings
    with tempfile.TemporaryDirectory() as work:
        h = build(spec, entry, settings, Path(work))
    device, model, sampler, optimizer, wrap = h.device, h.model, h.sampler, h.optimizer, h.wrap
    steps, cuda = sampler.steps_per_epoch(), device.type == "cuda"
    rss_setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
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

    model.train()
    probe = timed(_Prefix(sampler, probe_steps)) / probe_steps
    if probe * steps <= max_epoch_seconds:  # a warm-up epoch, then whole epochs
        unit_steps, warmup = steps, timed(sampler)
    else:  # the probe was the warm-up; time prefixes of about max_epoch_seconds
        unit_steps, warmup = max(probe_steps, int(max_epoch_seconds / probe)), None
    unit = sampler if unit_steps == steps else _Prefix(sampler, unit_steps)
    per_epoch = [timed(unit) * steps / unit_steps for _ in range(repeats)]
    encoder = getattr(model, "encoder", None)
    out = {
        "dataset": spec["dataset"], "method": spec["method"], "backbone": spec["backbone"],
        "adaptive": settings.get("tau0") is not None,
        "settings": {k: settings.get(k) for k in ("learning_rate", "lr_decay", "alpha", "tau", "tau0", "tau1",
                                                  "shrink_norm", "reg", "train_batch_size", "embedding_size",
                                                  "n_layers", "learner", "sparse_grad")},
        "sparse_gradients": bool(encoder is not None and encoder.user_embedding.sparse),
        "users": model.n_users - 1, "items": model.n_items - 1, "train_rows": sampler.n_train_rows,
        "steps_per_epoch": steps, "timed_steps": unit_steps, "extrapolated": unit_steps != steps,
        "repeats": repeats, "warmup_epoch_seconds": warmup, "probe_seconds_per_step": probe,
        "seconds_per_epoch": float(np.mean(per_epoch)),
        "seconds_per_epoch_std": float(np.std(per_epoch, ddof=1)) if repeats > 1 else 0.0,
        "seconds_per_epoch_min": float(np.min(per_epoch)), "seconds_per_epoch_max": float(np.max(per_epoch)),
        "seconds_per_epoch_all": per_epoch,
        # CPU time of this process per epoch: on a busy machine closer to what a quiet one takes (one thread).
        "cpu_seconds_per_epoch": float(np.mean(cpu_seconds[-repeats:])) * steps / unit_steps,
        "peak_rss_bytes_after_setup": rss_setup,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if cuda:
        out.update(gpu_bytes_before_training=gpu_before, peak_gpu_bytes=torch.cuda.max_memory_allocated(device))
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


def run_child(dataset: str, variant: str, data_dir: Path, args) -> dict:
    """One (dataset, variant) in a fresh interpreter, so that its peak RSS is its own."""
    cmd = [sys.executable, "-m", "specbench.bench", "--one", dataset, variant, "--data-dir", str(data_dir),
           "--device", args.device, "--repeats", str(args.repeats), "--max-epoch-seconds", str(args.max_epoch_seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"bench of {dataset}/{variant} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="specbench.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--datasets", nargs="+", default=["citeulike", "gowalla"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs (or step chunks) after the warm-up")
    ap.add_argument("--max-epoch-seconds", type=float, default=60.0,
                    help="longer epochs are timed on a prefix of steps and extrapolated")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data" / "atomic", help="prepared atomic datasets")
    ap.add_argument("--out", type=Path, default=None, help="default: results/bench/<device kind>-<host>.json")
    ap.add_argument("--one", nargs=2, metavar=("DATASET", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        spec = variant_spec(args.one[0], args.one[1], args.data_dir, args.device)
        print(json.dumps(time_variant(spec, args.repeats, args.max_epoch_seconds)))
        return 0
    from specbench.atomic_io import atomic_write_text
    info = hardware(args.device)
    out = args.out or ROOT / "results" / "bench" / f"{device_kind(info)}-{info['host']}.json"
    load_before, started, results = os.getloadavg(), time.time(), []
    check_prepared(args.datasets, args.data_dir)
    for ds in args.datasets:
        for variant in args.variants:
            row = {"variant": variant, **run_child(ds, variant, args.data_dir, args)}
            results.append(row)
            print(f"{ds:10s} {variant:18s} {row['seconds_per_epoch']:8.3f} s/epoch "
                  f"(±{row['seconds_per_epoch_std']:.3f}; CPU time {row['cpu_seconds_per_epoch']:.3f} s; "
                  f"{row['steps_per_epoch']} steps"
                  f"{', extrapolated from ' + str(row['timed_steps']) + ' steps' if row['extrapolated'] else ''}) "
                  f"peak RSS {row['peak_rss_bytes'] / 2**20:.0f} MiB"
                  + (f", peak GPU {row['peak_gpu_bytes'] / 2**20:.0f} MiB" if 'peak_gpu_bytes' in row else ""),
                  flush=True)
    record = {"schema": 1, "what": "seconds per training epoch of DirectSpec+ (specbench.training.train_epoch), "
                                   "published settings, batch 256, floor(|train|/B) steps per epoch",
              "hardware": info, "load_average_before": load_before, "load_average_after": os.getloadavg(),
              "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
              "wall_seconds": time.time() - started,
              "options": {"repeats": args.repeats, "max_epoch_seconds": args.max_epoch_seconds},
              "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
