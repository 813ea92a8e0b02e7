"""Resumable training state: model, optimiser, scheduler, every RNG and the history after an epoch.

A checkpoint is resumed only by a run with the same settings (its config hash); it is written
atomically, so a job killed while saving keeps the previous one.
"""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path

import numpy as np
import torch

from specbench.atomic_io import atomic_write_bytes


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
