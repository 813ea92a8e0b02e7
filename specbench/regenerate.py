"""Rebuild a study's outputs from its run records alone: ``specbench figures results/<study>``.

A study folder (results/<study>/, or a committed results/reference/<name>/) holds ``runs/``
(test runs), ``tuning/`` (trials and chosen.json), ``sweeps/`` (sensitivity runs) and
``study.yaml`` (the study's settings as the workflow ran them). From those files only — no
Snakemake, so no job is ever planned whatever the file times are — this writes the tables,
figures, leaderboard and paper into the same folder, and says which records it used.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from specbench.errors import SpecbenchError

ROOT = Path(__file__).resolve().parents[1]
PAPER_TEX = ROOT / "paper" / "main.tex"
PUBLISHED = ROOT / "config" / "published.yaml"


@dataclass(frozen=True)
class StudyFolder:
    """The records of one study folder, found by its layout."""
    folder: Path
    study: dict
    runs: list
    chosen: list
    sensitivity: list  # sweep runs

    @classmethod
    def read(cls, folder: Path, study_file: Path | None = None) -> "StudyFolder":
        from specbench.schemas import check_file
        folder = Path(folder)
        if not folder.is_dir():
            raise SpecbenchError(f"{folder} is not a folder: expected a study folder such as results/quick or "
                                 "results/reference/quick-cpu (runs/, tuning/, study.yaml)")
        study_file = Path(study_file) if study_file else folder / "study.yaml"
        if not study_file.is_file():
            raise SpecbenchError(f"{study_file} does not exist: a study folder keeps the settings it was run with "
                                 f"there (the workflow writes it); pass --study config/<study>.yaml to use another")
        study = check_file(study_file, "study.schema.yaml")
        runs = _records(folder / "runs")
        if not runs:
            raise SpecbenchError(f"{folder / 'runs'} holds no run records (<dataset>/<backbone>/<method>/<seed>.json)")
        return cls(folder, study, runs, sorted((folder / "tuning").glob("*/*/*/chosen.json")),
                   _records(folder / "sweeps"))


def _records(folder: Path) -> list[Path]:
    """Every run JSON under ``folder``, scratch folders (.work) excluded, in path order."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.json") if ".work" not in p.parts)


def build_paper(results: Path, out: Path | None = None) -> Path:
    """paper/main.tex -> ``results``/paper.pdf, with the tables and figures of ``results`` (latexmk)."""
    results = Path(results)
    if not (shutil.which("latexmk") and shutil.which("pdflatex")):
        raise SpecbenchError("LaTeX is not installed (latexmk, pdflatex): run `make sysdeps`, or pass --no-paper")
    build = results / ".paper"
    build.mkdir(parents=True, exist_ok=True)
    log = build / "latexmk.log"
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", f"-output-directory={build.resolve()}",
           f"-usepretex=\\def\\results{{{results.resolve().as_posix()}}}", str(PAPER_TEX)]
    with open(log, "w") as f:
        done = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise SpecbenchError(f"latexmk failed (exit {done.returncode}); see {log} and {build / 'main.log'}")
    out = Path(out) if out else results / "paper.pdf"
    shutil.copyfile(build / "main.pdf", out)
    return out


def regenerate(folder: Path, study_file: Path | None = None, paper: bool = True) -> list[Path]:
    """Every table, figure, the leaderboard and (``paper``) the paper of a study folder."""
    from specbench.report import build_report
    from specbench.report.leaderboard import write_leaderboard
    records = StudyFolder.read(folder, study_file)
    report = records.study.get("report") or {}
    print(f"{folder}: {len(records.runs)} test runs (runs/), {len(records.chosen)} tuning choices (tuning/), "
          f"{len(records.sensitivity)} sensitivity runs (sweeps/);"
          f" study settings from {study_file or folder / 'study.yaml'}")
    written = build_report(records.runs, folder, ours=report.get("ours", []), ablation=report.get("ablation", []),
                           trial_paths=records.sensitivity, chosen_paths=records.chosen)
    written += write_leaderboard([str(p) for p in records.runs], folder / "leaderboard",
                                 [str(p) for p in records.chosen], str(PUBLISHED), str(folder / "figures"), None,
                                 ours=report.get("ours", []))
    if paper:
        written.append(build_paper(folder))
    return written
