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
        main=report("results/tables/main.csv", caption="../report/main.rst", category="Tables"),
        main_other=multiext("results/tables/main", ".md", ".tex"),
        efficiency=report("results/tables/efficiency.csv", caption="../report/efficiency.rst", category="Tables"),
        efficiency_other=multiext("results/tables/efficiency", ".md", ".tex"),
        erank=report("results/figures/erank.png", caption="../report/erank.rst", category="Figures"),
        spectrum=report("results/figures/spectrum.png", caption="../report/spectrum.rst", category="Figures"),
        accuracy_time=report("results/figures/accuracy_time.png", caption="../report/accuracy_time.rst",
                             category="Figures"),
        pdfs=expand("results/figures/{name}.pdf", name=["erank", "spectrum", "accuracy_time"]),
    params:
        ours=" ".join(REPORT.get("ours", [])),
        ablation=" ".join(REPORT.get("ablation", [])),
        trials=lambda w, input: f"--trials {' '.join(input.trials)}" if input.trials else "",
    shell:
        "specbench report {input.runs} --out results --ours {params.ours} --ablation {params.ablation} {params.trials}"
