"""Regeneration from committed records: `specbench figures <study folder>` trains nothing, and two
studies never share an output path."""

import shutil
import subprocess
import sys

import yaml

from specbench.paths import StudyPaths
from specbench.study import Study
from tests.conftest import REPO

REFERENCE = REPO / "results" / "reference" / "quick-cpu"


def test_figures_rebuilds_every_output_of_a_reference_folder_from_its_records(tmp_path):
    folder = tmp_path / "quick-cpu"
    for part in ("runs", "tuning", "sweeps"):
        shutil.copytree(REFERENCE / part, folder / part)
    shutil.copy(REFERENCE / "study.yaml", folder / "study.yaml")
    n_runs = len(list((folder / "runs").rglob("*.json")))
    out = subprocess.run([sys.executable, "-m", "specbench.cli", "figures", str(folder)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"{n_runs} test runs (runs/)" in out.stdout and "sensitivity runs (sweeps/)" in out.stdout
    for name in ("tables/main.csv", "tables/main.tex", "tables/efficiency.csv", "figures/erank.png",
                 "figures/spectrum.png", "figures/accuracy_time.png", "figures/sensitivity.png",
                 "leaderboard.html", "leaderboard.csv", "paper.pdf"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    assert (folder / "paper.pdf").read_bytes().startswith(b"%PDF")
    assert not (tmp_path / "results").exists() and not (folder / ".work").exists()  # nothing trained, no scratch
    methods = {p.parts[-2] for p in (folder / "runs").rglob("*.json")}
    board = (folder / "leaderboard.csv").read_text()
    assert all(m in board for m in methods)


def test_a_study_folder_without_its_settings_names_what_is_missing(tmp_path):
    (tmp_path / "s" / "runs").mkdir(parents=True)
    out = subprocess.run([sys.executable, "-m", "specbench.cli", "figures", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "study.yaml does not exist" in out.stderr and "--study" in out.stderr


def test_studies_never_share_an_output_path():
    quick = Study.from_file(REPO / "config" / "quick.yaml", root=REPO)
    paper = Study.from_file(REPO / "config" / "paper.yaml", root=REPO)
    assert quick.paths.results == "results/quick" and paper.paths.results == "results/paper"
    q, p = set(quick.run_paths() + quick.sweep_paths()), set(paper.run_paths() + paper.sweep_paths())
    assert q and p and not q & p
    assert all(path.startswith("results/quick/") for path in q) and all(path.startswith("results/paper/") for path in p)
    assert StudyPaths.of({"study": "x"}).leaderboard == "results/x/leaderboard"


def test_the_paper_grid_plan_ignores_the_quick_studys_outputs(tmp_path):
    """With every quick-study output present, `snakemake --configfile config/paper.yaml -n` still plans
    the paper grid's report (it used to say "Nothing to be done": both wrote results/tables)."""
    for name in ("tables/main.csv", "tables/main.md", "tables/main.tex", "figures/erank.png", "leaderboard.html"):
        path = tmp_path / "results" / "quick" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("quick study output\n")
    out = subprocess.run([sys.executable, "-m", "snakemake", "report", "leaderboard", "-n", "-s", str(REPO / "Snakefile"),
                          "--configfile", str(REPO / "config" / "paper.yaml")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Nothing to be done" not in out.stdout
    assert "results/paper/tables/main.csv" in out.stdout and "results/paper/leaderboard.html" in out.stdout
    assert "results/quick/" not in out.stdout
    config = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    assert config["study"] == "paper"
