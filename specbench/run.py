"""Train and evaluate one configuration; write one JSON record atomically.

One run = one (dataset, backbone, method, seed, settings). This is the only module that talks
to RecBole (Config, Dataset, the model classes); its compatibility shim is imported first.
The training loop is ours (RecBole's Trainer syncs with the device every step and cannot
resume a pre-empted job): batches are sampled on the device, the loss is summed on the
device and read once per epoch, evaluation is full ranking in large user blocks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from specbench import compat  # noqa: F401  (must precede recbole)
from specbench.atomic_io import atomic_write_bytes, atomic_write_text
from specbench.data import atomic_files
from specbench.errors import SpecbenchError
from specbench.metrics import RankingEvaluator
from specbench.sampling import TrainSampler
from specbench.spectrum import spectrum_record
from specbench.study import canonical_hash
from specbench.validate import resolve_settings

# RecBole 1.2.1 on pandas 2.3 / torch 2.13 warns on every run about APIs it uses; they are harmless
# at these pins (../shared/reference/recbole.md) and would bury the job log.
warnings.filterwarnings("ignore", category=FutureWarning, module="recbole")
warnings.filterwarnings("ignore", message=".*torch.sparse.SparseTensor.*", category=UserWarning)

SCHEMA_VERSION = 1
PER_USER_METRICS = ("recall@20", "ndcg@20", "recall@10", "ndcg@10")  # kept per user at the last epoch
PACKAGES = ("specbench", "recbole", "torch", "numpy", "scipy", "pandas")
OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
              "rmsprop": torch.optim.RMSprop, "adamw": torch.optim.AdamW}


def resolve_device(requested: str) -> torch.device:
    """CPU unless CUDA is asked for; asking for CUDA without a visible GPU is an error."""
    requested = str(requested or "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SpecbenchError(f"device {requested!r} was asked for, but torch {torch.__version__} sees no CUDA GPU "
                                 f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                                 "set device: cpu or run on a GPU node")
        return torch.device(requested)
    raise SpecbenchError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {requested!r}")


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> dict:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip() or None, "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def device_info(device: torch.device) -> dict:
    info = {"device": str(device), "hostname": socket.gethostname(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_bytes=props.total_memory, cuda=torch.version.cuda,
                    driver=_nvidia_driver())
    return info


def cpu_model() -> str:
    """The processor's marketing name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def json_safe(value):
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


@contextmanager
def _recbole_config_guard():
    """RecBole's Config parses sys.argv and overwrites CUDA_VISIBLE_DEVICES: undo both."""
    argv, cvd = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = sys.argv[:1]
    try:
        yield
    finally:
        sys.argv = argv
        if cvd is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cvd


def recbole_config(model_cls, spec: dict, settings: dict, work_dir: Path):
    from recbole.config import Config
    # Model selection trains on `fit` and scores `valid` (both carved from train); test is not loaded.
    splits = ["fit", "valid"] if settings.get("validation") else ["train", "test"]
    fixed = {
        "data_path": str(Path(spec["data_dir"]).resolve()), "benchmark_filename": splits,
        "load_col": {"inter": ["user_id", "item_id"]}, "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "seed": int(spec["seed"]), "reproducibility": True, "checkpoint_dir": str(work_dir),
        "gpu_id": "", "show_progress": False, "log_wandb": False, "state": "WARNING", "save_dataset": False,
        "save_dataloaders": False, "filter_inter_by_user_or_item": False, "user_inter_num_interval": None,
        "item_inter_num_interval": None, "val_interval": None, "unused_col": None,
    }
    if settings["train_sampler"] == "users" or not settings.get("neg_samples", _default_negatives(model_cls)):
        fixed["train_neg_sample_args"] = None
    else:
        fixed["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": int(settings.get("neg_samples", 1)),
                                          "alpha": 1.0, "dynamic": False, "candidate_num": 0}
    with _recbole_config_guard():
        return Config(model=model_cls, dataset=spec["dataset"], config_dict={**settings, **fixed}), splits


def _default_negatives(model_cls) -> int:
    from recbole.utils import InputType
    return 1 if getattr(model_cls, "input_type", None) == InputType.PAIRWISE else 0


class Checkpoint:
    """Model, optimiser, RNG and history after an epoch; resumed on rerun if the settings match."""

    def __init__(self, path: Path, config_hash: str):
        self.path, self.config_hash = Path(path), config_hash

    def save(self, epoch, model, optimizer, scheduler, sampler, history, epochs_log):
        state = {"config_hash": self.config_hash, "epoch": epoch, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "sampler": sampler.generator.get_state(), "torch": torch.get_rng_state(),
                 "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                 "numpy": np.random.get_state(), "random": random.getstate(),
                 "history": history, "epochs": epochs_log}
        import io
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(self.path, buf.getvalue())

    def load(self):
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        if state.get("config_hash") != self.config_hash:
            logging.warning("ignoring checkpoint %s: it belongs to other settings", self.path)
            return None
        return state

    def restore(self, state, model, optimizer, scheduler, sampler):
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.generator.set_state(state["sampler"])
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        np.random.set_state(state["numpy"])
        random.setstate(state["random"])


def batch_wrapper(config):
    """A function turning the sampler's {user, item, neg_item} tensors into a RecBole Interaction."""
    from recbole.data.interaction import Interaction
    names = {"user": config["USER_ID_FIELD"], "item": config["ITEM_ID_FIELD"],
             "neg_item": config["NEG_PREFIX"] + config["ITEM_ID_FIELD"]}
    return lambda batch: Interaction({names[k]: v for k, v in batch.items()})


def train_epoch(model, sampler, optimizer, wrap, clip_grad_norm=None) -> torch.Tensor:
    """One epoch of optimiser steps; returns the summed loss as a device tensor (no host sync here).

    The sum is kept in float64: in float32 a sum near 450 (648 steps at log 2) carries rounding
    of a few 1e-6, which made the logged loss zig-zag beside the reference's."""
    loss_sum = torch.zeros((), dtype=torch.float64, device=sampler.device)
    for batch in sampler.epoch():
        optimizer.zero_grad(set_to_none=True)
        loss = _total_loss(model.calculate_loss(wrap(batch)))
        loss.backward()
        if clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip_grad_norm))
        optimizer.step()
        loss_sum += loss.detach().double()
    return loss_sum


def _total_loss(loss):
    """RecBole models may return a tuple of loss terms, or a one-element tensor."""
    return (sum(loss) if isinstance(loss, (tuple, list)) else loss).sum()


def _peak_memory(device) -> dict:
    out = {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device.type == "cuda":
        out["peak_gpu_bytes"] = torch.cuda.max_memory_allocated(device)
    return out


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_and_evaluate(spec: dict, work_dir: Path) -> dict:
    """Run one job and return its record (not yet written)."""
    wall_start = time.time()
    entry, settings = resolve_settings(spec)
    device = resolve_device(settings["device"])
    config_hash = canonical_hash({k: spec[k] for k in ("dataset", "backbone", "method", "model")} | {"settings": settings})
    atomic_files(Path(spec["data_dir"]), spec["dataset"], ("fit", "valid") if settings.get("validation") else ("train", "test"))
    work_dir.mkdir(parents=True, exist_ok=True)

    logging.getLogger().setLevel(logging.WARNING)
    from recbole.data import create_dataset
    from recbole.utils import init_seed
    config, splits = recbole_config(entry.cls, spec, settings, work_dir)
    config["device"] = device
    init_seed(int(spec["seed"]), True)
    dataset = create_dataset(config)
    train_split, eval_split = splits
    built = dict(zip(splits, dataset.build()))
    train_matrix = built[train_split].inter_matrix(form="csr")
    test_matrix = built[eval_split].inter_matrix(form="csr")

    t_setup = time.perf_counter()
    model = entry.cls(config, built[train_split]).to(device)
    _sync(device)
    setup_seconds = time.perf_counter() - t_setup  # a training-free model (a graph filter) fits here
    batch = settings["train_batch_size"]
    if batch > train_matrix.nnz:
        raise SpecbenchError(f"train_batch_size = {batch} is larger than the training data of {spec['dataset']} "
                             f"({train_matrix.nnz} rows in {Path(spec['data_dir']) / spec['dataset']}/"
                             f"{spec['dataset']}.{train_split}.inter); use at most {train_matrix.nnz}")
    neg = config["train_neg_sample_args"] or {}
    n_neg = int(neg["sample_num"]) if neg.get("distribution", "none") != "none" else 0
    sampler = TrainSampler(train_matrix, settings["train_batch_size"], settings["train_sampler"], n_neg,
                           device=device, seed=int(spec["seed"]))
    learner = str(settings["learner"]).lower()
    if learner not in OPTIMIZERS:
        raise SpecbenchError(f"learner must be one of {sorted(OPTIMIZERS)}, got {settings['learner']!r}")
    epochs, eval_step = int(settings["epochs"]), int(settings["eval_step"])
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        epochs = 0  # training-free: the model is fitted in __init__, evaluated once as epoch 0
    optimizer = scheduler = None
    if trainable:
        optimizer = OPTIMIZERS[learner](trainable, lr=float(settings["learning_rate"]),
                                        weight_decay=float(settings["weight_decay"]))
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=float(settings["lr_decay"]))
    evaluator = RankingEvaluator(train_matrix, test_matrix, ks=settings["topk"], device=device,
                                 scores_per_block=int(settings["eval_scores_per_block"]))
    user_field, wrap = config["USER_ID_FIELD"], batch_wrapper(config)
    from recbole.data.interaction import Interaction

    def score_users(users):
        return model.full_sort_predict(Interaction({user_field: users})).view(len(users), -1)

    checkpoint_every = int(settings["checkpoint_every"]) or eval_step
    checkpoint = Checkpoint(work_dir / "checkpoint.pt", config_hash)
    history, epochs_log, start_epoch, per_user_record = [], [], 1, {}
    state = checkpoint.load()
    if state is not None:
        checkpoint.restore(state, model, optimizer, scheduler, sampler)
        history, epochs_log, start_epoch = state["history"], state["epochs"], state["epoch"] + 1

    def evaluate(epoch, loss):
        model.eval()
        t1 = time.perf_counter()
        final = epoch == epochs
        metrics, per_user = evaluator.evaluate(score_users, keep_per_user=PER_USER_METRICS if final else ())
        spectrum = spectrum_record(model, (sampler.rows, sampler.cols))
        _sync(device)
        history.append({"epoch": epoch, "loss": loss, "metrics": metrics, "spectrum": spectrum,
                        "eval_seconds": time.perf_counter() - t1})
        if final:
            per_user_record.update(encode_per_user(per_user, evaluator.users))
            tokens = dataset.field2id_token[config["USER_ID_FIELD"]]
            per_user_record["user_tokens_sha256"] = hashlib.sha256("\n".join(map(str, tokens)).encode()).hexdigest()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    if start_epoch == 1 and (settings["eval_at_start"] or epochs == 0):
        evaluate(0, None)  # the initial embeddings: where every spectrum curve starts
    for epoch in range(start_epoch, epochs + 1):
        if hasattr(model, "on_epoch_start"):
            model.on_epoch_start(epoch)
        model.train()
        _sync(device)
        t0 = time.perf_counter()
        loss_sum = train_epoch(model, sampler, optimizer, wrap, settings["clip_grad_norm"])
        scheduler.step()
        mean_loss = float(loss_sum) / sampler.steps_per_epoch()  # one sync per epoch
        seconds = time.perf_counter() - t0
        epochs_log.append({"epoch": epoch, "loss": mean_loss, "seconds": seconds})
        if not math.isfinite(mean_loss):
            last = history[-1] if history else None
            raise SpecbenchError(
                f"training diverged: mean loss is {mean_loss} at epoch {epoch} "
                f"({spec['dataset']}/{spec['backbone']}/{spec['method']}, seed {spec['seed']}). "
                + (f"Last finite evaluation (epoch {last['epoch']}): {_headline(last['metrics'])}. " if last else "")
                + "Lower learning_rate or check the loss for log(0) or division by zero.")
        if epoch % eval_step == 0 or epoch == epochs:
            evaluate(epoch, mean_loss)
        if epoch % checkpoint_every == 0 and epoch < epochs:
            checkpoint.save(epoch, model, optimizer, scheduler, sampler, history, epochs_log)

    train_seconds = [e["seconds"] for e in epochs_log]
    return {
        "schema": SCHEMA_VERSION,
        "run": {k: spec[k] for k in ("dataset", "backbone", "method", "model", "seed")}
               | {"label": spec.get("label", spec["method"]), "config_hash": config_hash, "eval_split": eval_split},
        "settings": json_safe(settings),
        "recbole_config": json_safe({k: v for k, v in config.final_config_dict.items() if k != "device"}),
        "environment": {"git": git_state(), "packages": package_versions(), **device_info(device),
                        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "data": {"users": int(train_matrix.shape[0] - 1), "items": int(train_matrix.shape[1] - 1),
                 "train_rows": int(train_matrix.nnz), f"{eval_split}_rows": int(test_matrix.nnz),
                 "eval_users": int(len(evaluator.users))},
        "epochs": epochs_log,
        "history": history,
        "final": history[-1],
        "per_user": per_user_record,
        "timing": {"seconds_per_epoch": float(np.mean(train_seconds)) if train_seconds else 0.0,
                   "train_seconds": float(np.sum(train_seconds)), "setup_seconds": setup_seconds,
                   "eval_seconds": float(sum(h["eval_seconds"] for h in history)),
                   "wall_seconds": time.time() - wall_start, "steps_per_epoch": sampler.steps_per_epoch()},
        "memory": _peak_memory(device),
    }


def encode_per_user(values: dict, users: torch.Tensor) -> dict:
    """Per-user metrics of the last evaluation, compact (float32, zlib, base64), for paired tests."""
    import base64
    import zlib
    pack = lambda a, dtype: base64.b64encode(zlib.compress(np.asarray(a, dtype=dtype).tobytes())).decode()  # noqa: E731
    return {"encoding": "base64(zlib(little-endian array))", "users": pack(users.cpu().numpy(), "<i4"),
            "users_dtype": "int32", "metrics_dtype": "float32",
            "metrics": {name: pack(v, "<f4") for name, v in values.items()}}


def decode_per_user(record: dict) -> dict[str, np.ndarray]:
    """The inverse of encode_per_user: {"users": ids, metric: values} (empty if the run has none)."""
    import base64
    import zlib
    enc = record.get("per_user") or {}
    if not enc:
        return {}
    unpack = lambda s, dtype: np.frombuffer(zlib.decompress(base64.b64decode(s)), dtype=dtype)  # noqa: E731
    return {"users": unpack(enc["users"], "<i4"), **{k: unpack(v, "<f4") for k, v in enc["metrics"].items()}}


def _headline(metrics: dict) -> str:
    keys = [k for k in ("recall@20", "ndcg@20") if k in metrics]
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in keys)


def work_dir_for(out: Path) -> Path:
    """Per-job scratch (checkpoint) folder: results/.work/<path of the run JSON without .json>."""
    out = Path(out)
    parts = out.with_suffix("").parts
    anchor = parts.index("runs") if "runs" in parts else len(parts) - 1
    return Path(*parts[:anchor], ".work", *parts[anchor:]) if anchor else Path(".work") / out.with_suffix("")


def run(spec: dict, out: Path) -> dict:
    """Train, evaluate, write ``out`` atomically, then drop the job's checkpoint."""
    out = Path(out)
    work_dir = work_dir_for(out)
    # A pre-empted job gets SIGTERM: turn it into an exception so the last checkpoint stays and no JSON is written.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        record = train_and_evaluate(spec, work_dir)
    except SpecbenchError:
        _discard(work_dir)  # bad input or divergence: a rerun must start afresh
        raise
    except torch.cuda.OutOfMemoryError as exc:
        p = spec.get("params", {})
        raise SpecbenchError(
            f"GPU out of memory in {spec['dataset']}/{spec['backbone']}/{spec['method']} seed {spec['seed']}: "
            f"lower train_batch_size (now {p.get('train_batch_size', 'the default')}) if it happened in training, "
            f"or eval_scores_per_block (now {p.get('eval_scores_per_block', 2**24)}) if in evaluation; "
            f"the last checkpoint in {work_dir} is kept. ({str(exc).splitlines()[0]})") from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    atomic_write_text(out, json.dumps(record, indent=1) + "\n")
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
