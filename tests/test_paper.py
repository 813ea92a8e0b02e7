"""paper/main.tex builds into a PDF from a study's generated tables, figures and text, with its
bibliography, for any results folder given on the latexmk command line."""

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LATEX = shutil.which("latexmk") and shutil.which("pdflatex") and shutil.which("bibtex")
# The command the workflow runs (rules/paper.smk), from the repository root, for results/<study>.
COMMAND = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error",
           "-output-directory={results}/.paper", "-usepretex=\\def\\results{{{results}}}", "paper/main.tex"]


def _kpse(name):
    out = subprocess.run(["kpsewhich", name], capture_output=True, text=True) if shutil.which("kpsewhich") else None
    return bool(out and out.stdout.strip())


def _checkout(tmp_path):
    # Fails (never skips) without LaTeX: `make test` and `make paper` install it (`make sysdeps`).
    assert LATEX and all(_kpse(s) for s in ("booktabs.sty", "lmodern.sty", "natbib.sty", "plainnat.bst")), \
        "LaTeX is not installed: run `make sysdeps` (texlive-latex-recommended, latexmk, lmodern)"
    (tmp_path / "paper").mkdir()
    for name in ("main.tex", "references.bib"):
        shutil.copy(ROOT / "paper" / name, tmp_path / "paper" / name)


def _latexmk(cmd, cwd, build):
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    log = build / "main.log"
    assert out.returncode == 0, log.read_text()[-3000:] if log.exists() else out.stdout[-3000:]
    assert (build / "main.pdf").read_bytes().startswith(b"%PDF")
    return log.read_text()


def _clean(text):
    assert "Undefined control sequence" not in text and "LaTeX Error" not in text
    assert not re.search(r"Citation .* undefined", text) and "There were undefined references" not in text
    assert "Package specbench Warning" not in text  # every generated file the text names was found


def test_paper_builds_for_a_study_folder_given_on_the_command_line(tmp_path):
    from specbench.report import build_report
    from tests.test_report import write_fixtures
    _checkout(tmp_path)
    results = "results/quick"
    build_report(write_fixtures(tmp_path / "fixture"), tmp_path / results, ours=["DirectSpecPlus"])
    text = _latexmk([c.format(results=results) for c in COMMAND], tmp_path, tmp_path / results / ".paper")
    pages = int(re.search(r"Output written on .*main\.pdf \((\d+) pages?", text).group(1))
    assert pages >= 3
    for generated in ("results/quick/tables/main.tex", "results/quick/tables/claims.tex", "erank.pdf",
                      "results/quick/paper/results.tex", "results/quick/paper/discussion.tex"):
        assert generated in text.replace("\n", ""), f"{generated} did not go in"  # TeX wraps log lines at 79
    assert "tables/ablation.tex" not in text  # not generated: never read, no placeholder
    _clean(text)
    bbl = (tmp_path / results / ".paper" / "main.bbl").read_text()
    assert bbl.count("\\bibitem") >= 5 and "rendle2009bpr" in bbl and "peng2024balancing" in bbl


def test_paper_builds_from_paper_folder_with_results_beside_it(tmp_path):
    """Without -usepretex, latexmk main.tex in paper/ finds ../results (the single-study layout)."""
    from specbench.report import build_report
    from tests.test_report import write_fixtures
    _checkout(tmp_path)
    build_report(write_fixtures(tmp_path / "fixture"), tmp_path / "results", ours=["DirectSpecPlus"])
    text = _latexmk(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-output-directory=../results/.paper",
                     "main.tex"], tmp_path / "paper", tmp_path / "results" / ".paper")
    assert "../results/tables/main.tex" in text.replace("\n", "")
    _clean(text)
