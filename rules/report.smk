# Run JSONs (and tuning trials) -> tables and figures. Reads only results/: no training.
REPORT = config.get("report") or {}


def _sensitivity_runs(wildcards=None):
    """Sweep runs when the study has sweeps, else the tuning trials (validation split)."""
    if study.sweeps():
        return study.sweep_paths()
    return [p for key in study.tuned_keys() for p in study.trial_paths(*key)]


rule report:
    input:
        runs=study.run_paths(),
        trials=_sensitivity_runs(),
    output:
        multiext("results/tables/main", ".csv", ".md", ".tex"),
        multiext("results/tables/efficiency", ".csv", ".md", ".tex"),
        multiext("results/figures/erank", ".png", ".pdf"),
        multiext("results/figures/spectrum", ".png", ".pdf"),
        multiext("results/figures/accuracy_time", ".png", ".pdf"),
    params:
        ours=" ".join(REPORT.get("ours", [])),
        ablation=" ".join(REPORT.get("ablation", [])),
        trials=lambda w, input: f"--trials {' '.join(input.trials)}" if input.trials else "",
    shell:
        "specbench report {input.runs} --out results --ours {params.ours} --ablation {params.ablation} {params.trials}"
