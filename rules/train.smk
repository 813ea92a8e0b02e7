# One job per (dataset, backbone, method, seed): train, evaluate, write one JSON.
import json


def _spec(wildcards):
    return json.dumps(study.spec(wildcards.dataset, wildcards.backbone, wildcards.method, wildcards.seed),
                      sort_keys=True)


def _tuned(w):
    """The chosen.json of this (dataset, backbone, method) when the study tunes, else nothing."""
    return [study.chosen_path(w.dataset, w.backbone, w.method)] if study.is_tuned(w.method) else []


rule train:
    input:
        stats=lambda w: f"{config.get('data_dir', 'data/atomic')}/{w.dataset}/stats.json",
        tuned=_tuned,
    output:
        "results/runs/{dataset}/{backbone}/{method}/{seed}.json",
    params:
        spec=_spec,
        tuned=lambda w, input: f"--tuned {input.tuned}" if input.tuned else "",
    log:
        "results/logs/{dataset}/{backbone}/{method}/{seed}.log",
    threads: 1
    resources:
        gpu=lambda w: study.resources(w.dataset, w.backbone, w.method)["gpu"],
        mem_mb=lambda w: study.resources(w.dataset, w.backbone, w.method)["mem_mb"],
        runtime=lambda w: study.resources(w.dataset, w.backbone, w.method)["runtime"],
    wildcard_constraints:
        seed=r"\d+",
    shell:
        "specbench run --spec {params.spec:q} {params.tuned} --out {output} > {log} 2>&1"
