"""The training loop, split as RecBole's Trainer is: an epoch, an evaluation, a checkpoint, and ``fit``.

Ours rather than RecBole's Trainer, which syncs with the device every step and cannot resume a
pre-empted job: batches are sampled on the device, the loss is summed on the device and read once
per epoch, evaluation is full ranking in large user blocks.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

import torch

from specbench.checkpoint import Checkpoint
from specbench.errors import SpecbenchError
from specbench.harness import Harness, sync
from specbench.progress import Progress
from specbench.record import PER_USER_METRICS, encode_per_user
from specbench.spectrum import spectrum_record


@dataclass
class Fit:
    """What ``fit`` returns: the parts of the run record that training produces."""
    history: list = field(default_factory=list)   # one entry per evaluation: epoch, loss, metrics, spectrum
    epochs: list = field(default_factory=list)    # one entry per trained epoch: epoch, mean loss, seconds
    per_user: dict = field(default_factory=dict)  # the final evaluation's per-user metrics (encoded)
    stopped_early: int | None = None              # the epoch early stopping ended training at, if it did


class Stop(Exception):
    """Raised by an ``on_evaluate`` callback of ``fit`` to end training (e.g. a pruned tuning trial)."""


def train_epoch(model, sampler, optimizer, wrap, clip_grad_norm=None, on_step=None) -> torch.Tensor:
    """One epoch of optimiser steps; returns the summed loss as a device tensor (no host sync here).

    The sum is kept in float64: in float32 a sum near 450 (648 steps at log 2) carries rounding
    of a few 1e-6, which made the logged loss zig-zag beside the reference's. ``on_step(step)`` is
    called after each step with its 1-based number (progress; it must not touch the device)."""
    loss_sum = torch.zeros((), dtype=torch.float64, device=sampler.device)
    for step, batch in enumerate(sampler.epoch(), 1):
        optimizer.zero_grad(set_to_none=True)
        loss = _total_loss(model.calculate_loss(wrap(batch)))
        loss.backward()
        if clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip_grad_norm))
        optimizer.step()
        loss_sum += loss.detach().double()
        if on_step is not None:
            on_step(step)
    return loss_sum


def _total_loss(loss):
    """RecBole models may return a tuple of loss terms, or a one-element tensor."""
    return (sum(loss) if isinstance(loss, (tuple, list)) else loss).sum()


def evaluate(h: Harness, epoch: int, loss: float | None, final: bool) -> tuple[dict, dict]:
    """(history entry, per-user record): metrics, spectrum and seconds of one evaluation; the per-user
    metrics and a fingerprint of the user order only when ``final`` (else {})."""
    h.model.eval()
    t1 = time.perf_counter()
    metrics, per_user = h.evaluator.evaluate(h.score_users, keep_per_user=PER_USER_METRICS if final else ())
    spectrum = spectrum_record(h.model, (h.sampler.rows, h.sampler.cols))
    sync(h.device)
    entry = {"epoch": epoch, "loss": loss, "metrics": metrics, "spectrum": spectrum,
             "eval_seconds": time.perf_counter() - t1}
    if not final:
        return entry, {}
    record = encode_per_user(per_user, h.evaluator.users.cpu())
    tokens = h.dataset.field2id_token[h.config["USER_ID_FIELD"]]
    record["user_tokens_sha256"] = hashlib.sha256("\n".join(map(str, tokens)).encode()).hexdigest()
    return entry, record


def save_checkpoint(h: Harness, checkpoint: Checkpoint, epoch: int, fitted: Fit) -> None:
    checkpoint.save(epoch, h.model, h.optimizer, h.scheduler, h.sampler, fitted.history, fitted.epochs)


def _trained_epoch(h: Harness, epoch: int, clip_grad_norm, on_step=None) -> dict:
    """Train one epoch (after the model's ``on_epoch_start`` hook) and step the lr schedule: its log entry."""
    if hasattr(h.model, "on_epoch_start"):
        h.model.on_epoch_start(epoch)
    h.model.train()
    sync(h.device)
    t0 = time.perf_counter()
    loss_sum = train_epoch(h.model, h.sampler, h.optimizer, h.wrap, clip_grad_norm, on_step)
    h.scheduler.step()
    mean_loss = float(loss_sum) / h.sampler.steps_per_epoch()  # one sync per epoch
    return {"epoch": epoch, "loss": mean_loss, "seconds": time.perf_counter() - t0}


def _headline(metrics: dict) -> str:
    keys = [k for k in ("recall@20", "ndcg@20") if k in metrics]
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in keys)


def fit(h: Harness, settings: dict, checkpoint: Checkpoint | None, job: str, progress: bool = True,
        on_evaluate=None) -> Fit:
    """Train and evaluate as ``settings`` say, resuming from ``checkpoint`` if it holds a later epoch.

    Evaluates at epoch 0 if ``eval_at_start`` (a training-free model: only there), every ``eval_step``
    epochs and at the last; checkpoints every ``checkpoint_every`` epochs (0: at each evaluation) before
    the last (never with ``checkpoint`` None: a tuning trial). ``job`` names the run in the divergence
    error and in the progress lines (specbench/progress.py, on stderr unless ``progress`` is false).

    Early stopping: with ``early_stop_patience`` P > 0 (validation runs only, see specbench/validate.py)
    training ends once P evaluations in a row have not improved the best ``early_stop_metric``;
    ``epochs`` is then the maximum. ``on_evaluate(history entry)`` is called after each evaluation
    and may raise ``Stop`` to end training there (a pruned trial)."""
    epochs = int(settings["epochs"]) if h.optimizer is not None else 0  # training-free: fitted when built
    eval_step = int(settings["eval_step"])
    checkpoint_every = int(settings["checkpoint_every"]) or eval_step
    fitted, start_epoch = Fit(), 1
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        checkpoint.restore(state, h.model, h.optimizer, h.scheduler, h.sampler)
        fitted.history, fitted.epochs, start_epoch = state["history"], state["epochs"], state["epoch"] + 1

    shown = Progress(job, epochs, h.sampler.steps_per_epoch(), enabled=progress)
    shown.start(start_epoch, h.device)

    patience, stop_metric = int(settings.get("early_stop_patience") or 0), settings.get("early_stop_metric")

    def evaluate_at(epoch, loss):
        entry, per_user = evaluate(h, epoch, loss, final=epoch == epochs)
        fitted.history.append(entry)
        fitted.per_user.update(per_user)
        shown.evaluated(entry)
        if on_evaluate is not None:
            on_evaluate(entry)
        return patience and epoch < epochs and _stalled(fitted.history, stop_metric, patience)

    if h.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(h.device)
    if start_epoch == 1 and (settings["eval_at_start"] or epochs == 0):
        evaluate_at(0, None)  # the initial embeddings: where every spectrum curve starts
    for epoch in range(start_epoch, epochs + 1):
        log = _trained_epoch(h, epoch, settings["clip_grad_norm"], shown.epoch_started(epoch))
        fitted.epochs.append(log)
        shown.epoch_done(epoch, log["loss"], log["seconds"])
        if not math.isfinite(log["loss"]):
            last = fitted.history[-1] if fitted.history else None
            raise SpecbenchError(
                f"training diverged: mean loss is {log['loss']} at epoch {epoch} ({job}). "
                + (f"Last finite evaluation (epoch {last['epoch']}): {_headline(last['metrics'])}. " if last else "")
                + "Lower learning_rate or check the loss for log(0) or division by zero.")
        if (epoch % eval_step == 0 or epoch == epochs) and evaluate_at(epoch, log["loss"]):
            fitted.stopped_early = epoch
            break
        if checkpoint is not None and epoch % checkpoint_every == 0 and epoch < epochs:
            save_checkpoint(h, checkpoint, epoch, fitted)
    return fitted


def _stalled(history: list, metric: str, patience: int) -> bool:
    """Whether the last ``patience`` evaluations after training began all fell short of the best before them."""
    values = [e["metrics"][metric] for e in history if e["epoch"] > 0]
    if len(values) <= patience:
        return False
    return max(values[-patience:]) <= max(values[:-patience])
