# specbench: reproduce "Balancing Embedding Spectrum for Recommendation" (arXiv 2406.12032).
# Default: the quick study (config/quick.yaml). The full grid: --configfile config/paper.yaml.
# The rules only wire files; what a job does is the `specbench` CLI, what it gets is specbench/study.py.
import json
import shlex
import sys
from pathlib import Path

from specbench.study import Study

# The quick study unless --configfile names another: studies are complete files, never merged
# with quick.yaml (a key it sets, such as `restrict`, must not leak into the paper grid).
if not workflow.config_settings.configfiles:
    configfile: str(Path(workflow.basedir) / "config" / "quick.yaml")

# Bad input stops here, before any job: the study and the catalogue against their schemas, the
# datasets against config/datasets.yaml, every run's settings against the harness and model schemas.
study = Study(config, root=Path(workflow.basedir),
              source=", ".join(map(str, workflow.config_settings.configfiles)) or "config/quick.yaml")
study.validate()
PATHS = study.paths  # every output under results/<study>/ (specbench/paths.py)
RESOURCES = study.job_resources()  # gpu, mem_mb, runtime of every training job
# Jobs call the CLI through the interpreter that runs this Snakemake, so `.venv/bin/snakemake`
# works without activating the environment (and a cluster job uses its node's own interpreter).
SPECBENCH = f"{shlex.quote(sys.executable)} -m specbench.cli"

report: "report/workflow.rst"

include: "rules/data.smk"
include: "rules/tune.smk"
include: "rules/train.smk"
include: "rules/sweep.smk"
include: "rules/report.smk"
include: "rules/leaderboard.smk"
include: "rules/paper.smk"

rule study_file:
    localrule: True
    output:
        PATHS.study_file,
    params:
        config=json.dumps(config, sort_keys=True, default=str),
    shell:
        "{SPECBENCH} study-file --config {params.config:q} --out {output}"


rule all:
    input:
        rules.study_file.output,
        rules.datasets_table.output,
        rules.report.output,
        rules.leaderboard.output,
    default_target: True
