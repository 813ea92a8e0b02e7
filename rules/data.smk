# Datasets: config/datasets.yaml --fetch--> data/raw/<ds>/ --prepare--> data/atomic/<ds>/, and the
# statistics table of the study's datasets. A mirror folder comes from the study's `data_mirror`,
# else $SPECBENCH_DATA_MIRROR, else config/datasets.yaml; files missing there are downloaded.
import shlex

from specbench.datasets import check_requested, load_catalog

DATASETS_YAML = str(Path(workflow.basedir) / "config" / "datasets.yaml")
DATASETS = load_catalog(DATASETS_YAML)
RAW_DIR = "data/raw"
ATOMIC_DIR = config.get("data_dir", "data/atomic")

# A dataset the study names but nobody can fetch stops the workflow here, before planning.
check_requested([*config["datasets"], *(d for s in (config.get("sweeps") or {}).values() for d in s["datasets"])],
                DATASETS, ATOMIC_DIR)


def _split_args(wildcards):
    """The study's `split` (test_fraction, seed) for a dataset split here; nothing for a fixed split."""
    split = config.get("split") or {}
    if not split or DATASETS.get(wildcards.dataset).fixed_split:
        return ""
    return " ".join(f"--{key.replace('_', '-')} {value}" for key, value in split.items())


rule fetch:
    localrule: True  # downloads run where the workflow was started (cluster nodes often have no internet)
    output:
        f"{RAW_DIR}/{{dataset}}/fetched.json",
    params:
        mirror=f"--mirror {shlex.quote(str(config['data_mirror']))}" if config.get("data_mirror") else "",
    wildcard_constraints:
        dataset=r"[A-Za-z0-9_-]+",
    shell:
        "specbench fetch {wildcards.dataset} --catalog {DATASETS_YAML:q} --raw {RAW_DIR} {params.mirror}"


rule prepare:
    input:
        f"{RAW_DIR}/{{dataset}}/fetched.json",
    output:
        train=f"{ATOMIC_DIR}/{{dataset}}/{{dataset}}.train.inter",
        test=f"{ATOMIC_DIR}/{{dataset}}/{{dataset}}.test.inter",
        stats=f"{ATOMIC_DIR}/{{dataset}}/stats.json",
    params:
        split=_split_args,
    wildcard_constraints:
        dataset=r"[A-Za-z0-9_-]+",
    shell:
        "specbench prepare {wildcards.dataset} --catalog {DATASETS_YAML:q} --raw {RAW_DIR} --out {ATOMIC_DIR} "
        "{params.split}"


rule datasets_table:
    localrule: True
    input:
        expand(f"{ATOMIC_DIR}/{{dataset}}/stats.json", dataset=config["datasets"]),
    output:
        table=report("results/tables/datasets.csv", caption="../report/datasets.rst", category="Tables"),
        other=multiext("results/tables/datasets", ".md", ".tex"),
    shell:
        "specbench datasets-table {input} --out results/tables/datasets"
