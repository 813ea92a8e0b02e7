# Run JSONs (and sweep runs or tuning trials) -> tables and figures. Reads only results/: no training.


rule report:
    input:
        runs=study.run_paths(),
        trials=study.sensitivity_paths(),
    output:
        main=report(f"{PATHS.tables}/main.csv", caption="../report/main.rst", category="Tables"),
        main_other=multiext(f"{PATHS.tables}/main", ".md", ".tex"),
        efficiency=report(f"{PATHS.tables}/efficiency.csv", caption="../report/efficiency.rst", category="Tables"),
        efficiency_other=multiext(f"{PATHS.tables}/efficiency", ".md", ".tex"),
        erank=report(f"{PATHS.figures}/erank.png", caption="../report/erank.rst", category="Figures"),
        spectrum=report(f"{PATHS.figures}/spectrum.png", caption="../report/spectrum.rst", category="Figures"),
        accuracy_time=report(f"{PATHS.figures}/accuracy_time.png", caption="../report/accuracy_time.rst",
                             category="Figures"),
        pdfs=expand(f"{PATHS.figures}/{{name}}.pdf", name=["erank", "spectrum", "accuracy_time"]),
    params:
        args=study.report_args(),
        trials=lambda w, input: f"--trials {' '.join(input.trials)}" if input.trials else "",
    shell:
        "specbench report {input.runs} {params.args} {params.trials}"
