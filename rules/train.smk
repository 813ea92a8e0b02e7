# One job per (dataset, backbone, method, seed): train, evaluate, write one JSON.
import json


def _spec(wildcards):
    return json.dumps(study.spec(wildcards.dataset, wildcards.backbone, wildcards.method, wildcards.seed),
                      sort_keys=True)


rule train:
    input:
        lambda w: [f"{config.get('data_dir', 'data/atomic')}/{w.dataset}/stats.json"],
    output:
        "results/runs/{dataset}/{backbone}/{method}/{seed}.json",
    params:
        spec=_spec,
    log:
        "results/logs/{dataset}/{backbone}/{method}/{seed}.log",
    threads: 1
    resources:
        gpu=lambda w: int(str(study.spec(w.dataset, w.backbone, w.method, w.seed)["params"].get("device", "cpu")).startswith("cuda")),
    wildcard_constraints:
        seed=r"\d+",
    shell:
        "specbench run --spec {params.spec:q} --out {output} > {log} 2>&1"
