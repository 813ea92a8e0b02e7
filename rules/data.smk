# Datasets: config/datasets.yaml --fetch--> data/raw/<ds>/ --prepare--> <data_dir>/<ds>/, and the
# statistics table of the study's datasets. A mirror folder comes from the study's `data_mirror`,
# else $SPECBENCH_DATA_MIRROR, else config/datasets.yaml; files missing there are downloaded.


rule fetch:
    localrule: True  # downloads run where the workflow was started (cluster nodes often have no internet)
    output:
        PATHS.fetched,
    params:
        args=study.fetch_args(),
    wildcard_constraints:
        dataset=r"[A-Za-z0-9_-]+",
    shell:
        "{SPECBENCH} fetch {wildcards.dataset} {params.args}"


rule prepare:
    input:
        PATHS.fetched,
    output:
        train=PATHS.split_file("train"),
        test=PATHS.split_file("test"),
        stats=PATHS.stats,
    params:
        args=lambda w: study.prepare_args(w.dataset),
    wildcard_constraints:
        dataset=r"[A-Za-z0-9_-]+",
    shell:
        "{SPECBENCH} prepare {wildcards.dataset} {params.args}"


rule datasets_table:
    localrule: True
    input:
        expand(PATHS.stats, dataset=study.datasets),
    output:
        table=report(f"{PATHS.tables}/datasets.csv", caption="../report/datasets.rst", category="Tables"),
        other=multiext(f"{PATHS.tables}/datasets", ".md", ".tex"),
    params:
        stem=f"{PATHS.tables}/datasets",
    shell:
        "{SPECBENCH} datasets-table {input} --out {params.stem}"
