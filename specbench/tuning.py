"""Choose a method's settings from its validation trials (results/tuning/...); test data never enter.

A trial's score is its best validation value of the metric over its evaluation epochs; the
chosen setting is the best trial (the first on ties), and with ``select_epochs`` its best epoch
becomes the number of epochs of the final runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from specbench.atomic_io import atomic_write_text
from specbench.errors import SpecbenchError
from specbench.record import load_run


def summarise_trial(record: dict, metric: str) -> dict:
    if record["run"].get("eval_split") != "valid":
        raise SpecbenchError(f"{record['_path']}: a tuning trial must be evaluated on the validation split, "
                             f"not {record['run'].get('eval_split')!r}")
    # A training-free model (no epochs) is judged on its one evaluation, epoch 0.
    trained = [h for h in record["history"] if h["epoch"] > 0] or ([] if record["epochs"] else record["history"])
    if not trained or metric not in trained[0]["metrics"]:
        raise SpecbenchError(f"{record['_path']}: no evaluation with metric {metric!r}")
    best = max(trained, key=lambda h: h["metrics"][metric])
    return {"path": record["_path"], "settings": record["settings"], "best_epoch": best["epoch"],
            "best_value": best["metrics"][metric], "final_value": trained[-1]["metrics"][metric],
            "erank_at_best": best["spectrum"].get("erank"), "seconds_per_epoch": record["timing"]["seconds_per_epoch"]}


def select(trial_paths: list[Path], trial_params: list[dict], metric: str, select_epochs: bool, out: Path) -> dict:
    """Write ``out`` (chosen.json): the chosen params, and every trial with its validation score."""
    if len(trial_paths) != len(trial_params):
        raise SpecbenchError(f"{len(trial_paths)} trial files for {len(trial_params)} trial settings")
    trials = []
    for i, (path, params) in enumerate(zip(trial_paths, trial_params)):
        summary = summarise_trial(load_run(Path(path)), metric)
        trials.append({"trial": i, "params": params, **{k: v for k, v in summary.items() if k != "settings"}})
    best = max(trials, key=lambda t: (t["best_value"], -t["trial"]))
    chosen = dict(best["params"])
    if select_epochs and best["best_epoch"] > 0:  # a training-free model has no epochs to choose
        chosen["epochs"] = best["best_epoch"]
    result = {"metric": metric, "split": "valid", "select_epochs": select_epochs, "chosen_trial": best["trial"],
              "params": chosen, "value": best["best_value"], "trials": trials}
    atomic_write_text(Path(out), json.dumps(result, indent=1) + "\n")
    return result


def tuned_params(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)["params"]
