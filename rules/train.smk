# One job per (dataset, backbone, method, seed): train, evaluate, write one JSON.


rule train:
    input:
        stats=PATHS.stats,
        tuned=lambda w: study.tuned_inputs(w.dataset, w.backbone, w.method),
    output:
        PATHS.run,
    params:
        spec=lambda w: study.spec_json("run", w.dataset, w.backbone, w.method, w.seed),
        tuned=lambda w, input: f"--tuned {input.tuned}" if input.tuned else "",
        code=lambda w: study.model_code(w.backbone, w.method),  # a changed model reruns its runs
    log:
        PATHS.log(PATHS.run),
    threads: 1
    resources:
        **RESOURCES,
    wildcard_constraints:
        seed=r"\d+",
    shell:
        "{SPECBENCH} run --spec {params.spec:q} {params.tuned} --out {output} > {log} 2>&1"
