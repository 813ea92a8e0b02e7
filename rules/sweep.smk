# Sensitivity sweeps (config `sweeps:`): a grid of one method's settings, evaluated as main runs.
import json


rule sweep_run:
    input:
        lambda w: f"{config.get('data_dir', 'data/atomic')}/{w.dataset}/stats.json",
    output:
        "results/sweeps/{sweep}/{dataset}/{backbone}/{method}/{point}-{seed}.json",
    params:
        spec=lambda w: json.dumps(study.sweep_spec(w.sweep, w.dataset, w.backbone, w.point, w.seed), sort_keys=True),
    log:
        "results/logs/sweeps/{sweep}/{dataset}/{backbone}/{method}/{point}-{seed}.log",
    threads: 1
    resources:
        gpu=lambda w: study.resources(w.dataset, w.backbone, w.method)["gpu"],
        mem_mb=lambda w: study.resources(w.dataset, w.backbone, w.method)["mem_mb"],
        runtime=lambda w: study.resources(w.dataset, w.backbone, w.method)["runtime"],
    wildcard_constraints:
        point=r"\d+",
        seed=r"\d+",
    shell:
        "specbench run --spec {params.spec:q} --out {output} > {log} 2>&1"
