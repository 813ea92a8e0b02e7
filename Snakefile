# specbench: reproduce "Balancing Embedding Spectrum for Recommendation" (arXiv 2406.12032).
# Default: the quick study (config/quick.yaml). The full grid: --configfile config/paper.yaml.
from pathlib import Path

from specbench.study import Study

configfile: str(Path(workflow.basedir) / "config" / "quick.yaml")

study = Study(config, root=Path(workflow.basedir))

include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/report.smk"

rule all:
    input:
        rules.report.output,
    default_target: True
