# Model selection on a validation split carved from train: trials -> chosen.json per
# (dataset, backbone, method). Active when the study has a `tuning:` block.


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


rule tune_trial:
    input:
        rules.carve_validation.output,
    output:
        PATHS.trial,
    params:
        spec=lambda w: study.spec_json("trial", w.dataset, w.backbone, w.method, w.trial),
    log:
        PATHS.log(PATHS.trial),
    threads: 1
    resources:
        **RESOURCES,
    wildcard_constraints:
        trial=r"\d+",
    shell:
        "{SPECBENCH} run --spec {params.spec:q} --out {output} > {log} 2>&1"


rule select:
    input:
        lambda w: study.trial_paths(w.dataset, w.backbone, w.method),
    output:
        PATHS.chosen,
    params:
        args=lambda w: study.select_args(w.dataset, w.backbone, w.method),
    shell:
        "{SPECBENCH} select {input} {params.args} --out {output}"
