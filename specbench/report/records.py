"""Read run JSONs into tidy tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from specbench.errors import SpecbenchError
from specbench.record import load_run


def load_runs(paths) -> list[dict]:
    if not paths:
        raise SpecbenchError("no run JSONs given to the report")
    return [load_run(Path(p)) for p in paths]


def final_metrics(runs: list[dict]) -> pd.DataFrame:
    """One row per run: identity columns, every final metric, erank, seconds per epoch."""
    rows = []
    for r in runs:
        row = {**{k: r["run"][k] for k in ("dataset", "backbone", "method", "seed")},
               "label": r["run"].get("label", r["run"]["method"]), "epoch": r["final"]["epoch"],
               **r["final"]["metrics"], "erank": r["final"]["spectrum"].get("erank", float("nan")),
               "seconds_per_epoch": r["timing"]["seconds_per_epoch"]}
        rows.append(row)
    return pd.DataFrame(rows)


def history_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per (run, evaluation epoch)."""
    rows = []
    for r in runs:
        ident = {**{k: r["run"][k] for k in ("dataset", "backbone", "method", "seed")},
                 "label": r["run"].get("label", r["run"]["method"])}
        for h in r["history"]:
            rows.append({**ident, "epoch": h["epoch"], **h["metrics"], "erank": h["spectrum"].get("erank", float("nan"))})
    return pd.DataFrame(rows)
