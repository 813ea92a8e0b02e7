"""Run one job: train and evaluate one configuration, and write its record atomically.

One run = one (dataset, backbone, method, seed, settings). This module only orchestrates: it
resolves the settings, builds the harness (specbench.harness), fits (specbench.training),
assembles the record (specbench.record) and owns the job's scratch folder: a pre-empted job
(SIGTERM) keeps its last checkpoint for resuming, a failed one discards it.
"""

from __future__ import annotations

import resource
import shutil
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from specbench.checkpoint import Checkpoint
from specbench.errors import SpecbenchError
from specbench.harness import build
from specbench.provenance import device_info, git_state, package_versions
from specbench.record import SCHEMA_VERSION, json_safe, write_record
from specbench.settings import Resolved, resolve
from specbench.study import canonical_hash
from specbench.training import fit


def train_and_evaluate(spec: dict, resolved: Resolved, work_dir: Path) -> dict:
    """Run one job with its resolved settings and return its record (not yet written)."""
    wall_start = time.time()
    entry, settings = resolved.entry, resolved.settings
    config_hash = canonical_hash({k: spec[k] for k in ("dataset", "backbone", "method", "model")} | {"settings": settings})
    h = build(spec, entry, settings, work_dir)
    fitted = fit(h, settings, Checkpoint(work_dir / "checkpoint.pt", config_hash),
                 job=f"{spec['dataset']}/{spec['backbone']}/{spec['method']}, seed {spec['seed']}")
    train_seconds = [e["seconds"] for e in fitted.epochs]
    return {
        "schema": SCHEMA_VERSION,
        "run": {k: spec[k] for k in ("dataset", "backbone", "method", "model", "seed")}
               | {"label": spec.get("label", spec["method"]), "config_hash": config_hash, "eval_split": h.eval_split},
        "settings": json_safe(settings),
        "settings_origin": resolved.origin_record(),
        "recbole_config": json_safe({k: v for k, v in h.config.final_config_dict.items() if k != "device"}),
        "environment": {"git": git_state(), "packages": package_versions(), **device_info(h.device),
                        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "data": {"users": int(h.train_matrix.shape[0] - 1), "items": int(h.train_matrix.shape[1] - 1),
                 "train_rows": int(h.train_matrix.nnz), f"{h.eval_split}_rows": int(h.test_matrix.nnz),
                 "eval_users": int(len(h.evaluator.users))},
        "epochs": fitted.epochs,
        "history": fitted.history,
        "final": fitted.history[-1],
        "per_user": fitted.per_user,
        "timing": {"seconds_per_epoch": float(np.mean(train_seconds)) if train_seconds else 0.0,
                   "train_seconds": float(np.sum(train_seconds)), "setup_seconds": h.setup_seconds,
                   "eval_seconds": float(sum(e["eval_seconds"] for e in fitted.history)),
                   "wall_seconds": time.time() - wall_start, "steps_per_epoch": h.sampler.steps_per_epoch()},
        "memory": _peak_memory(h.device),
    }


def _peak_memory(device) -> dict:
    out = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device.type == "cuda":
        out["peak_gpu_bytes"] = torch.cuda.max_memory_allocated(device)
    return out


def work_dir_for(out: Path) -> Path:
    """Per-job scratch (checkpoint) folder: results/.work/<path of the run JSON without .json>."""
    out = Path(out)
    parts = out.with_suffix("").parts
    anchor = parts.index("runs") if "runs" in parts else len(parts) - 1
    return Path(*parts[:anchor], ".work", *parts[anchor:]) if anchor else Path(".work") / out.with_suffix("")


def run(spec: dict, out: Path, extra_layers: list[dict] = ()) -> dict:
    """Resolve the settings (the spec's layers, then ``extra_layers``: tuned, --set), train, evaluate,
    write ``out`` atomically, then drop the job's checkpoint."""
    out = Path(out)
    work_dir = work_dir_for(out)
    resolved = resolve(spec, extra_layers)  # bad settings stop here, before anything is built
    # A pre-empted job gets SIGTERM: turn it into an exception so the last checkpoint stays and no JSON is written.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        record = train_and_evaluate(spec, resolved, work_dir)
    except SpecbenchError:
        _discard(work_dir)  # bad input or divergence: a rerun must start afresh
        raise
    except torch.cuda.OutOfMemoryError as exc:
        p = resolved.settings
        raise SpecbenchError(
            f"GPU out of memory in {spec['dataset']}/{spec['backbone']}/{spec['method']} seed {spec['seed']}: "
            f"lower train_batch_size (now {p['train_batch_size']}) if it happened in training, "
            f"or eval_scores_per_block (now {p['eval_scores_per_block']}) if in evaluation; "
            f"the last checkpoint in {work_dir} is kept. ({str(exc).splitlines()[0]})") from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    write_record(out, record)
    _discard(work_dir)
    return record


def _discard(work_dir: Path) -> None:
    """Remove a job's scratch folder and the folders above it that it leaves empty, up to .work."""
    shutil.rmtree(work_dir, ignore_errors=True)
    for parent in work_dir.parents:
        if not parent.is_dir() or any(parent.iterdir()):
            break
        parent.rmdir()
        if parent.name == ".work":
            break


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"received signal {signum}; the last checkpoint is kept for resuming")
