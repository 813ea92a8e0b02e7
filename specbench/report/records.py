"""Read run JSONs into tidy tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from specbench.errors import SpecbenchError
from specbench.record import load_run
from specbench.report.style import display_labels


def load_runs(paths) -> list[dict]:
    if not paths:
        raise SpecbenchError("no run JSONs given to the report")
    return [load_run(Path(p)) for p in paths]


def trained_epochs(r: dict) -> int:
    """Epochs the run trained (0 for a training-free model): the number chosen on validation for a
    tuned method, its fixed setting otherwise."""
    return len(r.get("epochs") or [])


def embedding_dim(r: dict) -> int | None:
    """Width d of the embedding table (the effective rank's maximum), None without embeddings."""
    sv = r["final"].get("spectrum", {}).get("singular_values")
    if sv:
        return len(sv)
    return r.get("settings", {}).get("embedding_size") if r["final"].get("spectrum") else None


def final_metrics(runs: list[dict]) -> pd.DataFrame:
    """One row per run: identity columns, every final (last-epoch) metric, erank, seconds per epoch."""
    labels = display_labels(runs)
    rows = []
    for r in runs:
        row = {**{k: r["run"][k] for k in ("dataset", "backbone", "method", "seed")},
               "label": labels[r["run"]["method"]], "epoch": r["final"]["epoch"],
               **r["final"]["metrics"], "erank": r["final"]["spectrum"].get("erank", float("nan")),
               "dim": embedding_dim(r), "seconds_per_epoch": r["timing"]["seconds_per_epoch"]}
        rows.append(row)
    return pd.DataFrame(rows)


def history_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per (run, evaluation epoch)."""
    labels = display_labels(runs)
    rows = []
    for r in runs:
        ident = {**{k: r["run"][k] for k in ("dataset", "backbone", "method", "seed")},
                 "label": labels[r["run"]["method"]]}
        for h in r["history"]:
            rows.append({**ident, "epoch": h["epoch"], **h["metrics"], "erank": h["spectrum"].get("erank", float("nan"))})
    return pd.DataFrame(rows)
