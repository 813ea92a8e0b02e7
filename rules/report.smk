# Run JSONs (and sweep runs, tuning choices) -> tables, figures and the paper's generated text.
# Reads only the study's records: no training.
SENSITIVITY = study.sensitivity_paths()


rule report:
    input:
        runs=study.run_paths(),
        trials=SENSITIVITY,
        chosen=[study.chosen_path(*key) for key in study.tuned_keys()],
    output:
        main=report(f"{PATHS.tables}/main.csv", caption="../report/main.rst", category="Tables"),
        main_other=multiext(f"{PATHS.tables}/main", ".md", ".tex"),
        # written when the study names its own methods (report.ours) and they have a baseline
        significance=[report(f"{PATHS.tables}/significance.csv", caption="../report/significance.rst",
                             category="Tables")] if study.ours else [],
        significance_other=multiext(f"{PATHS.tables}/significance", ".md", ".tex") if study.ours else [],
        efficiency=report(f"{PATHS.tables}/efficiency.csv", caption="../report/efficiency.rst", category="Tables"),
        efficiency_other=multiext(f"{PATHS.tables}/efficiency", ".md", ".tex"),
        claims=report(f"{PATHS.tables}/claims.csv", caption="../report/claims.rst", category="Tables"),
        claims_other=multiext(f"{PATHS.tables}/claims", ".md", ".tex"),
        erank=report(f"{PATHS.figures}/erank.png", caption="../report/erank.rst", category="Figures"),
        spectrum=report(f"{PATHS.figures}/spectrum.png", caption="../report/spectrum.rst", category="Figures"),
        accuracy_time=report(f"{PATHS.figures}/accuracy_time.png", caption="../report/accuracy_time.rst",
                             category="Figures"),
        sensitivity=[report(f"{PATHS.figures}/sensitivity.png", caption="../report/sensitivity.rst",
                            category="Figures")] if SENSITIVITY else [],
        pdfs=expand(f"{PATHS.figures}/{{name}}.pdf",
                    name=["erank", "spectrum", "accuracy_time"] + (["sensitivity"] if SENSITIVITY else [])),
        ablation=multiext(f"{PATHS.tables}/ablation", ".csv", ".md", ".tex") if study.ablation else [],
        tuning=multiext(f"{PATHS.tables}/tuning", ".csv", ".md", ".tex") if study.tuned_keys() else [],
        paper_text=expand(f"{PATHS.results}/paper/{{name}}.tex", name=["abstract", "results", "discussion", "provenance"]),
    params:
        args=study.report_args(),
        trials=lambda w, input: f"--trials {' '.join(input.trials)}" if input.trials else "",
        chosen=lambda w, input: f"--chosen {' '.join(input.chosen)}" if input.chosen else "",
    shell:
        "{SPECBENCH} report {input.runs} {params.args} {params.trials} {params.chosen}"
