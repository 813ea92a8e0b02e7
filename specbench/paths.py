"""Where a study reads and writes: the one place every path pattern is spelled.

The rules (rules/*.smk) use the patterns with Snakemake wildcards; the study (specbench/study.py)
fills them in for each job. The data folders come from the study config (``data_dir``) and are
shared by studies (the same prepared split); every output of a study lies under
``results/<study>/`` (runs, tuning, sweeps, logs, tables, figures, leaderboard, paper), so two
studies never share an output path. A committed reference folder (results/reference/<name>/) has
the same layout, which is what lets ``specbench figures`` rebuild its outputs from records alone.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_DIR = "data/atomic"  # prepared RecBole atomic files: <data_dir>/<ds>/<ds>.<split>.inter, stats.json
RAW_DIR = "data/raw"      # fetched, checksummed originals: data/raw/<ds>/


@dataclass(frozen=True)
class StudyPaths:
    """Path patterns of one study; ``{name}`` fields are Snakemake wildcards."""
    data_dir: str = DATA_DIR
    raw_dir: str = RAW_DIR
    results: str = "results"

    @classmethod
    def of(cls, config: dict) -> "StudyPaths":
        return cls(data_dir=str(config.get("data_dir") or DATA_DIR), results=f"results/{config['study']}")

    @property
    def study_file(self) -> str:
        """The study's settings as the workflow ran them (what regeneration reads for ours/ablation)."""
        return f"{self.results}/study.yaml"

    # ---- data ----
    @property
    def fetched(self) -> str:
        return f"{self.raw_dir}/{{dataset}}/fetched.json"

    def split_file(self, split: str) -> str:
        """<data_dir>/<ds>/<ds>.<split>.inter (split: train, test, fit, valid)."""
        return f"{self.data_dir}/{{dataset}}/{{dataset}}.{split}.inter"

    @property
    def stats(self) -> str:
        return f"{self.data_dir}/{{dataset}}/stats.json"

    # ---- runs, tuning, sweeps ----
    @property
    def run(self) -> str:
        return f"{self.results}/runs/{{dataset}}/{{backbone}}/{{method}}/{{seed}}.json"

    @property
    def journal(self) -> str:
        """The Optuna journal of one search (specbench/tuner.py): every trial, kept across reruns."""
        return f"{self.results}/tuning/{{dataset}}/{{backbone}}/{{method}}/optuna.journal"

    @property
    def tune_worker(self) -> str:
        """What one tuning job (worker) of a search did: the trials it ran."""
        return f"{self.results}/tuning/{{dataset}}/{{backbone}}/{{method}}/worker-{{worker}}.json"

    @property
    def chosen(self) -> str:
        return f"{self.results}/tuning/{{dataset}}/{{backbone}}/{{method}}/chosen.json"

    @property
    def sweep_run(self) -> str:
        return f"{self.results}/sweeps/{{sweep}}/{{dataset}}/{{backbone}}/{{method}}/{{point}}-{{seed}}.json"

    def log(self, pattern: str) -> str:
        """The log of the job that writes ``pattern``: <results>/logs/<its path below results>.log, a
        test run's without the ``runs/`` part (<results>/logs/<ds>/<backbone>/<method>/<seed>.log)."""
        inner = pattern.removeprefix(self.results + "/").removeprefix("runs/")
        return f"{self.results}/logs/{inner.rsplit('.', 1)[0]}.log"

    # ---- outputs of the report ----
    @property
    def tables(self) -> str:
        return f"{self.results}/tables"

    @property
    def figures(self) -> str:
        return f"{self.results}/figures"

    @property
    def leaderboard(self) -> str:
        return f"{self.results}/leaderboard"

    @property
    def paper(self) -> str:
        return f"{self.results}/paper.pdf"
