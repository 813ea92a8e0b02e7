"""Resumable training state: model, optimiser, scheduler, every RNG and the history after an epoch.

A checkpoint is resumed only by a run with the same settings (its config hash). It is written
atomically, and the one before it is kept as ``checkpoint.previous.pt`` until the new one is
complete on disk. Each file ends with a line holding the length and SHA-256 of torch's bytes before
it (torch.load still reads the file as it is), checked when loading: an unreadable file (truncated,
empty, garbage, a byte changed) is named in a warning, moved aside to ``<name>.unreadable``, and
the run resumes from the previous checkpoint, or starts from scratch if that one is unreadable or
missing too.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
from pathlib import Path

import numpy as np
import torch

from specbench.atomic_io import atomic_write_bytes
from specbench.errors import SpecbenchError

log = logging.getLogger("specbench")

TRAILER = b"\nspecbench-checkpoint sha256 "  # then <64 hex> bytes <n>\n: the file's last line
STATE_KEYS = ("config_hash", "epoch", "model", "optimizer", "scheduler", "sampler", "torch", "cuda", "numpy",
              "random", "history", "epochs")


class UnreadableCheckpoint(Exception):
    """A checkpoint file that cannot be what ``Checkpoint.save`` wrote (why: the message)."""


def encode(payload: bytes) -> bytes:
    """A checkpoint file: torch's bytes, then a last line with their SHA-256 and length. torch.load
    reads the file as it is (a zip archive ignores what follows it)."""
    return payload + TRAILER + f"{hashlib.sha256(payload).hexdigest()} bytes {len(payload)}\n".encode()


def read_state(path: Path) -> dict:
    """The state saved in the checkpoint file ``path``, after checking its length and checksum;
    UnreadableCheckpoint if it is not a complete checkpoint. A file without the checksum line
    (written by an older specbench) is loaded as it is."""
    data = Path(path).read_bytes()
    if not data:
        raise UnreadableCheckpoint("the file is empty")
    at = data.rfind(TRAILER)
    payload = data
    if at >= 0 and len(data) - at <= len(TRAILER) + 100:
        fields = data[at + len(TRAILER):].decode("ascii", "replace").split()
        if len(fields) != 3 or fields[1] != "bytes" or not fields[2].isdigit() or not data.endswith(b"\n"):
            raise UnreadableCheckpoint("its checksum line is damaged")
        payload = data[:at]
        if len(payload) != int(fields[2]):
            raise UnreadableCheckpoint(f"it holds {len(payload)} bytes where {int(fields[2])} were written")
        if hashlib.sha256(payload).hexdigest() != fields[0]:
            raise UnreadableCheckpoint("its SHA-256 does not match the one written with it (the file was changed "
                                       "or damaged)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds (RuntimeError, UnpicklingError, EOFError, ...)
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UnreadableCheckpoint(f"torch cannot load it: {type(exc).__name__}: {first}") from None
    if not isinstance(state, dict) or "config_hash" not in state:
        raise UnreadableCheckpoint("it is not a specbench checkpoint")
    return state


class Checkpoint:
    """Model, optimiser, RNG and history after an epoch; resumed on rerun if the settings match."""

    def __init__(self, path: Path, config_hash: str):
        self.path, self.config_hash = Path(path), config_hash
        self.previous = self.path.with_name(f"{self.path.stem}.previous{self.path.suffix}")
        self.loaded_from: Path | None = None

    def files(self) -> list[Path]:
        """The checkpoint files that exist now, newest first."""
        return [p for p in (self.path, self.previous) if p.is_file()]

    def save(self, epoch, model, optimizer, scheduler, sampler, history, epochs_log):
        state = {"config_hash": self.config_hash, "epoch": epoch, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "sampler": sampler.generator.get_state(), "torch": torch.get_rng_state(),
                 "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                 "numpy": np.random.get_state(), "random": random.getstate(),
                 "history": history, "epochs": epochs_log}
        buf = io.BytesIO()
        torch.save(state, buf)
        # The new file is complete on disk before the last one becomes checkpoint.previous.pt.
        atomic_write_bytes(self.path, encode(buf.getvalue()), previous=self.previous)

    def load(self):
        """The newest readable checkpoint of these settings, or None (start from scratch)."""
        candidates = [self.path, self.previous]
        for i, path in enumerate(candidates):
            if not path.is_file():
                continue
            fallback = next((f"resuming from the previous one, {p}" for p in candidates[i + 1:] if p.is_file()),
                            "starting from scratch")
            try:
                state = read_state(path)
            except (UnreadableCheckpoint, OSError) as exc:
                aside = path.with_name(path.name + ".unreadable")
                try:
                    os.replace(path, aside)
                    moved = f"moved it to {aside}"
                except OSError as move_error:
                    moved = f"could not move it aside ({move_error})"
                log.warning("checkpoint %s is unreadable (%s); %s; %s", path, exc, moved, fallback)
                continue
            if state.get("config_hash") != self.config_hash:
                log.warning("ignoring checkpoint %s: it belongs to other settings", path)
                continue
            missing = [k for k in STATE_KEYS if k not in state]
            if missing:
                log.warning("ignoring checkpoint %s: it lacks %s; %s", path, ", ".join(missing), fallback)
                continue
            self.loaded_from = path
            return state
        return None

    def restore(self, state, model, optimizer, scheduler, sampler):
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            sampler.generator.set_state(state["sampler"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            # The model is half restored now: this process cannot start afresh; the rerun does.
            raise SpecbenchError(f"checkpoint {self.loaded_from or self.path} does not fit this model "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                 "it is removed with the job's scratch folder: rerun to start from scratch") from exc
        torch.set_rng_state(state["torch"])
        if state["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        np.random.set_state(state["numpy"])
        random.setstate(state["random"])
