"""paper/main.tex builds into a PDF from generated tables and figures, and skips missing ones."""

import re
import shutil
import subprocess
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
LATEX = shutil.which("latexmk") and shutil.which("pdflatex")


def _kpse(name):
    out = subprocess.run(["kpsewhich", name], capture_output=True, text=True) if shutil.which("kpsewhich") else None
    return bool(out and out.stdout.strip())


def test_paper_builds_from_generated_tables_and_figures(tmp_path):
    # Fails (never skips) without LaTeX: `make test` and `make paper` install it (`make sysdeps`).
    assert LATEX and all(_kpse(s) for s in ("booktabs.sty", "lmodern.sty")), \
        "LaTeX is not installed: run `make sysdeps` (texlive-latex-recommended, latexmk, lmodern)"
    from tests.test_report import write_fixtures
    from specbench.report import build_report
    build_report(write_fixtures(tmp_path / "fixture"), tmp_path / "results", ours=["DirectSpecPlus"])
    (tmp_path / "paper").mkdir()
    shutil.copy(ROOT / "paper" / "main.tex", tmp_path / "paper" / "main.tex")
    out = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error",
                          "-output-directory=results/.paper", "paper/main.tex"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    log = (tmp_path / "results" / ".paper" / "main.log")
    assert out.returncode == 0, log.read_text()[-3000:] if log.exists() else out.stdout[-3000:]
    assert (tmp_path / "results" / ".paper" / "main.pdf").read_bytes().startswith(b"%PDF")
    text = log.read_text()
    pages = int(re.search(r"Output written on .*main\.pdf \((\d+) pages?", text).group(1))
    assert pages >= 2
    assert "results/tables/main.tex" in text and "erank.pdf" in text  # the generated files went in
    assert "tables/ablation.tex" not in text  # not generated: skipped with a note, never read
    assert "Undefined control sequence" not in text and "LaTeX Error" not in text
