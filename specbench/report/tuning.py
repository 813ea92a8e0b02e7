"""The tuning table: per (dataset, backbone, method) search, what was tried and what was chosen on validation.

Read from each search's chosen.json (specbench/tuner.py ``export``): trials finished, complete,
pruned and diverged, the chosen settings and their validation score and epoch, the seconds spent,
and two warnings a reviewer looks for: a chosen value at the edge of its range (the range may be
too narrow) and a best epoch at the trials' maximum (training may not have converged).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from specbench.errors import SpecbenchError
from specbench.report.style import backbone_name
from specbench.report.tables import write_frame


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def protocol_caption(chosen: dict) -> str:
    """The tuning protocol of a study's searches ({key: chosen.json}, ``leaderboard.load_chosen``) as the
    captions and the leaderboard print it; the searches of one study must share one protocol."""
    from specbench.tuner import caption
    protocols = {json.dumps(c.get("protocol"), sort_keys=True) for c in chosen.values() if c.get("protocol")}
    if len(protocols) > 1:
        raise SpecbenchError("the searches of one study ran under different tuning protocols: "
                             + ", ".join("/".join(k) for k in chosen))
    return caption(json.loads(protocols.pop())) if protocols else ""


def tuning_table(chosen: dict) -> pd.DataFrame:
    """One row per search of ``chosen`` ({(dataset, backbone, method): chosen.json})."""
    rows = []
    for (dataset, backbone, method), c in chosen.items():
        trials = c.get("trials", [])
        states = [t.get("state") for t in trials]
        protocol = c.get("protocol") or {}
        chosen = {k: v for k, v in c["params"].items() if k != "epochs"}
        edges = c.get("edges") or {}
        best_epoch = c.get("best_epoch")
        at_max = bool(best_epoch) and best_epoch == protocol.get("max_epochs")
        warnings = [f"{k} at the {side} end" for k, side in sorted(edges.items())]
        if at_max:
            warnings.append("best epoch = max_epochs")
        rows.append({"dataset": dataset, "backbone": backbone, "method": method, "trials": len(trials),
                     "complete": states.count("complete"), "pruned": states.count("pruned"),
                     "diverged": states.count("diverged"), "failed": states.count("fail"),
                     "valid_value": c["value"], "metric": c["metric"], "best_epoch": best_epoch,
                     "max_epochs": protocol.get("max_epochs"), "chosen_trial": c["chosen_trial"],
                     "defaults_chosen": bool(next((t.get("defaults") for t in trials
                                                   if t["trial"] == c["chosen_trial"]), False)),
                     "chosen": ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(chosen.items())),
                     "seconds": sum(t.get("seconds") or 0.0 for t in trials),
                     "at_edge": "; ".join(sorted(f"{k}:{side}" for k, side in edges.items())),
                     "epochs_at_max": at_max, "warning": "; ".join(warnings)})
    return pd.DataFrame(rows)


def write_tuning(table: pd.DataFrame, stem: Path, caption: str) -> list[Path]:
    shown = table.assign(backbone=table["backbone"].map(backbone_name),
                         epoch=[f"{e}" if e else "n/a" for e in table["best_epoch"]],
                         runs=[f"{c}/{p}/{d}" for c, p, d in zip(table["complete"], table["pruned"], table["diverged"])],
                         seconds=table["seconds"].round(0).astype(int))
    headings = {"dataset": "Dataset", "backbone": "Backbone", "method": "Method",
                "runs": "Complete/pruned/diverged", "valid_value": "Valid", "epoch": "Epoch", "chosen": "Chosen",
                "seconds": "Seconds", "warning": "Check"}
    caption = (f"{caption} Valid: the chosen trial's best validation {table['metric'].iloc[0]}; Epoch: its best "
               "epoch (the final runs' epochs). Check: a chosen value within 5% of an end of its range (log scale "
               "for log ranges), or a best epoch at the trials' maximum: widen that range or raise max_epochs.")
    return write_frame(shown, stem, caption, headings, align="lllrrrlrl")
