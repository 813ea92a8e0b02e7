"""Run one job: train and evaluate one configuration, and write its record atomically.

One run = one (dataset, backbone, method, seed, settings). This module only orchestrates: it
resolves the settings, builds the harness (specbench.harness), fits (specbench.training),
assembles the record (specbench.record) and owns the job's scratch folder
(results/<study>/.work/<run path>/, ``work_dir_for``):

- before anything is built, the run JSON's folder is checked writable and the job's lock
  (``lock`` in the scratch folder, an OS file lock) is taken: a second copy of a running job
  refuses, naming the PID that holds it; the kernel drops the lock when its holder dies, so a
  rerun after a crash or SIGKILL resumes without a hand;
- temp files left by a killed writer of this job's JSON or checkpoint are removed;
- a pre-empted job (SIGTERM, Ctrl-C) keeps its last checkpoint for resuming; a job failed by bad
  input or divergence (a SpecbenchError) discards the folder; any other failure keeps a checkpoint
  if there is one and otherwise leaves no folder;
- if the finished record cannot be written to its path, it is kept as ``record.json`` in the
  scratch folder and the rerun writes it without training again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import resource
import shutil
import signal
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from specbench.atomic_io import remove_stale_temps
from specbench.checkpoint import Checkpoint
from specbench.errors import SpecbenchError
from specbench.harness import build
from specbench.provenance import device_info, git_state, package_versions
from specbench.record import SCHEMA_VERSION, json_safe, write_record
from specbench.settings import Resolved, resolve
from specbench.study import canonical_hash
from specbench.training import fit

log = logging.getLogger("specbench")

CHECKPOINT = "checkpoint.pt"
KEPT_RECORD = "record.json"   # a finished record whose run JSON could not be written
LOCK = "lock"


class RecordKept(SpecbenchError):
    """Training finished but the run JSON could not be written: the record is kept in the scratch folder."""


def config_hash_of(spec: dict, settings: dict) -> str:
    return canonical_hash({k: spec[k] for k in ("dataset", "backbone", "method", "model")} | {"settings": settings})


def train_and_evaluate(spec: dict, resolved: Resolved, work_dir: Path, progress: bool = True) -> dict:
    """Run one job with its resolved settings and return its record (not yet written); ``progress``:
    a line per epoch and evaluation on stderr (specbench/progress.py)."""
    wall_start = time.time()
    started_at = git_state()  # the code the run imported: a commit landing while it trains is not its code
    entry, settings = resolved.entry, resolved.settings
    config_hash = config_hash_of(spec, settings)
    h = build(spec, entry, settings, work_dir)
    fitted = fit(h, settings, Checkpoint(work_dir / CHECKPOINT, config_hash),
                 job=f"{spec['dataset']}/{spec['backbone']}/{spec['method']}, seed {spec['seed']}", progress=progress)
    train_seconds = [e["seconds"] for e in fitted.epochs]
    return {
        "schema": SCHEMA_VERSION,
        "run": {k: spec[k] for k in ("dataset", "backbone", "method", "model", "seed")}
               | {"label": spec.get("label", spec["method"]), "config_hash": config_hash, "eval_split": h.eval_split},
        "settings": json_safe(settings),
        "settings_origin": resolved.origin_record(),
        "recbole_config": json_safe({k: v for k, v in h.config.final_config_dict.items() if k != "device"}),
        "environment": {"git": started_at, "packages": package_versions(), **device_info(h.device),
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
    """Per-job scratch (checkpoint) folder: results/<study>/.work/<path of the run JSON without .json>."""
    out = Path(out)
    parts = out.with_suffix("").parts
    anchor = parts.index("runs") if "runs" in parts else len(parts) - 1
    return Path(*parts[:anchor], ".work", *parts[anchor:]) if anchor else Path(".work") / out.with_suffix("")


def run(spec: dict, out: Path, extra_layers: list[dict] = (), progress: bool = True) -> dict:
    """Resolve the settings (the spec's layers, then ``extra_layers``: tuned, --set), train, evaluate,
    write ``out`` atomically, then drop the job's scratch folder (see the module's docstring)."""
    out = Path(out)
    work_dir = work_dir_for(out)
    resolved = resolve(spec, extra_layers)  # bad settings stop here, before anything is built
    made = check_output(out)  # an unwritable --out stops here, before any training
    try:
        lock = JobLock(work_dir / LOCK, out)
        try:
            return _locked_run(spec, resolved, out, work_dir, progress)
        finally:
            lock.release()
    except RecordKept:
        raise
    except BaseException:
        _remove_empty(made)  # the folders check_output made for the JSON, if nothing is in them
        raise


def _locked_run(spec: dict, resolved: Resolved, out: Path, work_dir: Path, progress: bool) -> dict:
    for stale in remove_stale_temps(out) + _remove_scratch_temps(work_dir):
        log.warning("removed %s, left by a run that was killed while writing it", stale)
    config_hash = config_hash_of(spec, resolved.settings)
    record = _kept_record(work_dir, config_hash)
    if record is not None:
        log.warning("%s: writing the finished record that an earlier run kept in %s (nothing is retrained)",
                    out, work_dir / KEPT_RECORD)
    else:
        record = _train(spec, resolved, work_dir, progress)
    _write(out, record, work_dir)
    _discard(work_dir)
    return record


def _train(spec: dict, resolved: Resolved, work_dir: Path, progress: bool) -> dict:
    # A pre-empted job gets SIGTERM: turn it into an exception so the last checkpoint stays and no JSON is written.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    job = f"{spec['dataset']}/{spec['backbone']}/{spec['method']} seed {spec['seed']}"
    try:
        return train_and_evaluate(spec, resolved, work_dir, progress)
    except SpecbenchError:
        _discard(work_dir)  # bad input or divergence: a rerun must start afresh
        raise
    except KeyboardInterrupt as exc:
        why = str(exc) or "Ctrl-C (SIGINT)"
        raise KeyboardInterrupt(f"{why}; {_keep_or_discard(work_dir)}") from None
    except torch.cuda.OutOfMemoryError as exc:
        raise _out_of_memory(job, resolved.settings, exc, "GPU", _keep_or_discard(work_dir)) from exc
    except RuntimeError as exc:
        if "can't allocate memory" in str(exc) or "not enough memory" in str(exc):
            raise _out_of_memory(job, resolved.settings, exc, "CPU", _keep_or_discard(work_dir)) from exc
        _keep_or_discard(work_dir)
        raise
    except BaseException:
        _keep_or_discard(work_dir)  # a bug or a plugin's error: no empty scratch tree is left
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _out_of_memory(job: str, p: dict, exc: BaseException, kind: str, kept: str) -> SpecbenchError:
    return SpecbenchError(
        f"{kind} out of memory in {job}: lower train_batch_size (now {p['train_batch_size']}) if it happened in "
        f"training, or eval_scores_per_block (now {p['eval_scores_per_block']}) if in evaluation"
        + (f", or embedding_size (now {p['embedding_size']})" if p.get("embedding_size") else "")
        + f"; {kept}. ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")


# ---------------------------------------------------------------- the output

def check_output(out: Path) -> list[Path]:
    """Before any training: ``out`` is a file path whose folder takes a new file (a probe, created
    and removed). Returns the folders it created (removed again if the run fails)."""
    if out.is_dir():
        raise SpecbenchError(f"the run JSON {out} is an existing folder: --out names the file to write "
                             f"(e.g. {out / '0.json'}); nothing was trained")
    missing = [p for p in [out.parent, *out.parent.parents] if not p.exists()][::-1]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _remove_empty([p for p in missing if p.is_dir()])
        folder = next((p for p in [out.parent, *out.parent.parents] if p.exists()), out.parent)
        raise SpecbenchError(f"cannot write the run JSON {out}: {folder} is not writable "
                             f"({type(exc).__name__}: {exc.strerror or exc}); nothing was trained. "
                             f"Make {folder} writable or choose another --out, and rerun") from None
    return missing


def _write(out: Path, record: dict, work_dir: Path) -> None:
    """Write the run JSON; if that fails, keep the record in the scratch folder and say where."""
    try:
        write_record(out, record)
        return
    except OSError as exc:
        problem = f"{type(exc).__name__}: {exc.strerror or exc}"
    kept = work_dir / KEPT_RECORD
    try:
        write_record(kept, record)
    except OSError as exc:
        raise SpecbenchError(f"training finished, but neither the run JSON {out} ({problem}) nor a copy in "
                             f"{kept} ({type(exc).__name__}: {exc.strerror or exc}) could be written") from None
    for path in Checkpoint(work_dir / CHECKPOINT, "").files():  # the record supersedes them
        path.unlink(missing_ok=True)
    raise RecordKept(f"training finished, but the run JSON {out} could not be written ({problem}). "
                         f"The finished record is kept in {kept}: rerun the same command once {out.parent} "
                         f"is writable (and {out} is not a folder) to write it without training again")


def _kept_record(work_dir: Path, config_hash: str) -> dict | None:
    """The finished record a run kept when its JSON could not be written, if it is of these settings."""
    path = work_dir / KEPT_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if record["run"]["config_hash"] == config_hash and "final" in record:
            return record
    except (OSError, ValueError, KeyError, TypeError):
        pass
    log.warning("ignoring %s: not a finished record of these settings", path)
    return None


# ---------------------------------------------------------------- the scratch folder

class JobLock:
    """An exclusive OS lock (flock) on ``path`` in the job's scratch folder, held until ``release``;
    the file holds the holder's PID. The kernel releases it when the holder dies, however it dies."""

    def __init__(self, path: Path, out: Path):
        self.path, self.fd = Path(path), None
        for _attempt in range(20):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
            except FileNotFoundError:  # a finishing job removed an empty parent just now: try again
                continue
            except OSError as exc:
                raise SpecbenchError(f"cannot create the job's scratch folder {self.path.parent} "
                                     f"({type(exc).__name__}: {exc.strerror or exc}); nothing was trained. "
                                     f"Make {self.path.parent.parent} writable and rerun") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise SpecbenchError(
                    f"another specbench run (PID {self._holder()}) holds {self.path}: it is running this job "
                    f"({out}) now. Wait for it to finish, or stop it and rerun (it resumes from its last "
                    "checkpoint)") from None
            try:  # the holder may have finished and removed the file between our open and flock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return
            os.close(fd)
        raise SpecbenchError(f"could not take the job lock {self.path}: its folder keeps disappearing")

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            if self.path.exists() and os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                self.path.unlink()  # while still held: whoever opens it next makes a new one
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        _remove_empty_scratch(self.path.parent)


def _remove_scratch_temps(work_dir: Path) -> list[Path]:
    """Temp files a killed run left in its scratch folder (a checkpoint or record half written)."""
    removed = []
    for name in (CHECKPOINT, KEPT_RECORD):
        removed += remove_stale_temps(work_dir / name)
    return removed


def _keep_or_discard(work_dir: Path) -> str:
    """After a failure: keep the scratch folder if it holds a checkpoint (say which), else remove it."""
    files = Checkpoint(work_dir / CHECKPOINT, "").files()
    if files:
        return f"the last checkpoint is kept in {work_dir} for resuming"
    _discard(work_dir)
    return "no checkpoint was saved yet, so a rerun starts from the beginning"


def _remove_empty_scratch(work_dir: Path) -> None:
    """Remove ``work_dir`` if nothing is left in it, and its empty parents up to .work."""
    try:
        if work_dir.is_dir() and not any(work_dir.iterdir()):
            _discard(work_dir)
    except OSError:
        pass


def _discard(work_dir: Path) -> None:
    """Remove a job's scratch folder and the folders above it that it leaves empty, up to .work.
    The lock file stays while its holder runs (``JobLock.release`` removes it)."""
    if work_dir.is_dir():
        for child in work_dir.iterdir():
            if child.name == LOCK:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
        try:
            work_dir.rmdir()
        except OSError:
            return  # the lock is still in it (released later), or someone else's file
    for parent in work_dir.parents:
        try:
            if not parent.is_dir() or any(parent.iterdir()):
                break
            parent.rmdir()
        except OSError:  # another job's scratch folder appeared in it just now
            break
        if parent.name == ".work":
            break


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders ``check_output`` created if they are still empty (deepest first)."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"received {signal.Signals(signum).name}")
