"""The tuning check's failing MF searches under other pruners and samplers: summary.md from the records here.

Each variant is the quick study's 8-trial search (config/quick.yaml `tuning`) with one thing changed (see
NOTE.md and configs/); the quick study's own searches and the tuning check's 32-trial searches are read
from the folders above. Run from the repository root:
    .venv/bin/python results/reference/quick-cpu/search-budget/summarize.py
"""
import json
from pathlib import Path

HERE = Path(__file__).parent
REF = HERE.parent
VARIANTS = {
    "quick": ("the quick study: TPE, successive halving (first rung 10, factor 3)", REF / "tuning"),
    "nopruner": ("TPE, no pruner (early stopping only)", HERE / "nopruner"),
    "tpe-multivariate": ("multivariate TPE, successive halving", HERE / "tpe-multivariate"),
    "qmc": ("scrambled Sobol (QMC) points, successive halving", HERE / "qmc"),
    "gp": ("GP sampler (GPSampler), successive halving", HERE / "gp"),
    "check": ("the tuning check: TPE, 32 trials, 80 epochs", REF / "tuning-check" / "tuning"),
}
METHODS = ["BPR", "PositivesOnly", "DirectAU", "DirectSpecPlus"]


def search(folder: Path, method: str):
    d = folder / "ml100k" / "mf" / method
    if not (d / "trials.json").is_file():
        return None
    trials = json.loads((d / "trials.json").read_text())
    chosen = json.loads((d / "chosen.json").read_text())
    points = {tuple(sorted((k, float(f"{v:.2g}") if isinstance(v, float) else v) for k, v in t["params"].items()))
              for t in trials}  # to 2 significant digits: a repeated proposal counts once
    return {"value": chosen["value"], "epoch": chosen["best_epoch"], "trial": chosen["chosen_trial"],
            "complete": sum(t["state"] == "complete" for t in trials), "distinct": len(points),
            "epochs": sum(t["epochs_trained"] or 0 for t in trials), "n": len(trials)}


def main() -> None:
    lines = ["| method | search | best valid nDCG@20 | vs quick | vs check | chosen trial | best epoch | "
             "trials (complete / distinct points) | epochs trained, all trials |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m in METHODS:
        q, c = search(VARIANTS["quick"][1], m), search(VARIANTS["check"][1], m)
        for key, (label, folder) in VARIANTS.items():
            s = search(folder, m)
            if s is None:
                continue
            lines.append(f"| {m} | {label} | {s['value']:.4f} | {(s['value'] - q['value']) / q['value']:+.1%} | "
                         f"{(s['value'] - c['value']) / c['value']:+.1%} | {s['trial']} | {s['epoch']} | "
                         f"{s['n']} ({s['complete']} / {s['distinct']}) | {s['epochs']} |")
    (HERE / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
