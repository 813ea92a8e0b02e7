# Model selection on a validation split carved from train (specbench/tuner.py): per (dataset,
# backbone, method) an Optuna search in one journal file, filled by `tuning.workers` jobs that each
# run trials in one process, then `select` -> chosen.json, trials.csv, trials.json. Active when the
# study has a `tuning:` block.


rule carve_validation:
    input:
        PATHS.split_file("train"),
    output:
        fit=PATHS.split_file("fit"),
        valid=PATHS.split_file("valid"),
    params:
        args=study.carve_args(),
    shell:
        "{SPECBENCH} carve-valid {wildcards.dataset} {params.args}"


rule tune:
    input:
        rules.carve_validation.output,
    output:
        PATHS.tune_worker,
    params:
        args=lambda w: study.search_args(w.dataset, w.backbone, w.method),
        code=lambda w: study.model_code(w.backbone, w.method),  # a changed model reruns its search
    log:
        PATHS.log(PATHS.tune_worker),
    threads: 1
    resources:
        **RESOURCES,
    wildcard_constraints:
        worker=r"\d+",
    shell:
        "{SPECBENCH} tune {params.args} --out {output} > {log} 2>&1"


rule select:
    input:
        lambda w: study.worker_paths(w.dataset, w.backbone, w.method),
    output:
        chosen=PATHS.chosen,
        trials=multiext(PATHS.chosen.removesuffix("chosen.json") + "trials", ".csv", ".json"),
    params:
        args=lambda w: study.search_args(w.dataset, w.backbone, w.method),
    shell:
        "{SPECBENCH} select {params.args} --out {output.chosen}"
