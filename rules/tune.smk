# Model selection on a validation split carved from train: trials -> chosen.json per
# (dataset, backbone, method). Active when the study has a `tuning:` block.
import json

DATA = config.get("data_dir", "data/atomic")
TUNING = config.get("tuning") or {}


rule carve_validation:
    input:
        f"{DATA}/{{dataset}}/{{dataset}}.train.inter",
    output:
        fit=f"{DATA}/{{dataset}}/{{dataset}}.fit.inter",
        valid=f"{DATA}/{{dataset}}/{{dataset}}.valid.inter",
    params:
        fraction=TUNING.get("valid_fraction", 0.1),
        seed=TUNING.get("split_seed", 2024),
    shell:
        "specbench carve-valid {wildcards.dataset} --data-dir {DATA} --fraction {params.fraction} --seed {params.seed}"


rule tune_trial:
    input:
        rules.carve_validation.output,
    output:
        "results/tuning/{dataset}/{backbone}/{method}/trial-{trial}.json",
    params:
        spec=lambda w: json.dumps(study.trial_spec(w.dataset, w.backbone, w.method, w.trial), sort_keys=True),
    log:
        "results/logs/tuning/{dataset}/{backbone}/{method}/trial-{trial}.log",
    threads: 1
    resources:
        gpu=lambda w: study.resources(w.dataset, w.backbone, w.method)["gpu"],
        mem_mb=lambda w: study.resources(w.dataset, w.backbone, w.method)["mem_mb"],
        runtime=lambda w: study.resources(w.dataset, w.backbone, w.method)["runtime"],
    wildcard_constraints:
        trial=r"\d+",
    shell:
        "specbench run --spec {params.spec:q} --out {output} > {log} 2>&1"


rule select:
    input:
        lambda w: study.trial_paths(w.dataset, w.backbone, w.method),
    output:
        "results/tuning/{dataset}/{backbone}/{method}/chosen.json",
    params:
        trials=lambda w: json.dumps(study.trials(w.dataset, w.backbone, w.method)),
        metric=TUNING.get("metric", "ndcg@20"),
        epochs="--select-epochs" if TUNING.get("select_epochs", True) else "",
    shell:
        "specbench select {input} --trials {params.trials:q} --metric {params.metric} {params.epochs} --out {output}"
