"""Tables and figures: pure functions from run JSONs to files (no training, no RecBole)."""

from __future__ import annotations

from pathlib import Path

from specbench.report.figures import erank_figure
from specbench.report.records import load_runs
from specbench.report.tables import main_table, write_table


def build_report(run_paths: list[Path], out_dir: Path) -> list[Path]:
    runs = load_runs(run_paths)
    out_dir = Path(out_dir)
    written = write_table(main_table(runs), out_dir / "tables" / "main",
                          caption="Test accuracy at the last epoch, mean ± std over seeds (full ranking).")
    written += erank_figure(runs, out_dir / "figures" / "erank")
    return written
