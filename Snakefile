# specbench: reproduce "Balancing Embedding Spectrum for Recommendation" (arXiv 2406.12032).
# Default: the quick study (config/quick.yaml). The full grid: --configfile config/paper.yaml.
from pathlib import Path

from snakemake.utils import validate

from specbench.study import Study

# The quick study unless --configfile names another: studies are complete files, never merged
# with quick.yaml (a key it sets, such as `restrict`, must not leak into the paper grid).
if not workflow.config_settings.configfiles:
    configfile: str(Path(workflow.basedir) / "config" / "quick.yaml")

# Bad input stops here, before any job: the workflow config against its schema, then every
# run's settings against the harness and model schemas (specbench/validate.py).
validate(config, str(Path(workflow.basedir) / "config" / "schema" / "study.schema.yaml"))
study = Study(config, root=Path(workflow.basedir))
study.validate()

report: "report/workflow.rst"

include: "rules/data.smk"
include: "rules/tune.smk"
include: "rules/train.smk"
include: "rules/sweep.smk"
include: "rules/report.smk"
include: "rules/leaderboard.smk"
include: "rules/paper.smk"

rule all:
    input:
        rules.datasets_table.output,
        rules.report.output,
        rules.leaderboard.output,
    default_target: True
