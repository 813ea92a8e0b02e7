# Run JSONs -> tables and figures. Reads only results/runs: no training.

rule report:
    input:
        study.run_paths(),
    output:
        multiext("results/tables/main", ".csv", ".md", ".tex"),
        multiext("results/figures/erank", ".png", ".pdf"),
    shell:
        "specbench report {input} --out results"
