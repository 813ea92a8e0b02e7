# Sensitivity sweeps (config `sweeps:`): a grid of one method's settings, evaluated as main runs.


rule sweep_run:
    input:
        PATHS.stats,
    output:
        PATHS.sweep_run,
    params:
        spec=lambda w: study.spec_json(w.sweep, w.dataset, w.backbone, w.method, w.point, w.seed),
        code=lambda w: study.model_code(w.backbone, w.method),
    log:
        PATHS.log(PATHS.sweep_run),
    threads: 1
    resources:
        **RESOURCES,
    wildcard_constraints:
        point=r"\d+",
        seed=r"\d+",
    shell:
        "{SPECBENCH} run --spec {params.spec:q} --out {output} > {log} 2>&1"
