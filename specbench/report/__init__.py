"""Tables and figures: pure functions from run JSONs to files (no training, no RecBole)."""

from __future__ import annotations

from pathlib import Path

from specbench.report.figures import accuracy_time_figure, erank_figure, sensitivity_figure, spectrum_figure
from specbench.report.records import load_runs
from specbench.report.tables import efficiency, significance, summary, write_comparison, write_frame

MAIN_CAPTION = ("Test accuracy at the last epoch, mean ± std over seeds (full ranking, training items masked); "
                "best per backbone in bold.")


def build_report(run_paths: list[Path], out_dir: Path, ours: list[str] = (), ablation: list[str] = (),
                 trial_paths: list[Path] = ()) -> list[Path]:
    """Every table and figure of the study from its run JSONs (and tuning trials for sensitivity)."""
    runs = load_runs(run_paths)
    tables, figures = Path(out_dir) / "tables", Path(out_dir) / "figures"
    main_runs = [r for r in runs if r["run"]["method"] not in set(ablation) - set(ours)]
    sig = significance(main_runs, list(ours)) if ours else None
    written = write_comparison(summary(main_runs), tables / "main", MAIN_CAPTION, sig)
    if sig is not None and not sig.empty:
        written += write_frame(sig, tables / "significance",
                               "Ours against the best baseline per backbone: relative improvement of seed means, "
                               "paired per-user t-test and Wilcoxon p-values, Holm-adjusted over the table.")
    ablation_runs = [r for r in runs if r["run"]["method"] in set(ablation)]
    if ablation_runs:
        written += write_comparison(summary(ablation_runs), tables / "ablation",
                                    "Ablation of DirectSpec(+): test accuracy, mean ± std over seeds.")
    written += write_frame(efficiency(runs), tables / "efficiency",
                           "Cost: seconds per epoch, epochs and training seconds to the best test nDCG@20 "
                           "evaluation, total training seconds, model build seconds (a training-free filter's fit), "
                           "peak memory (mean over seeds).")
    written += erank_figure(main_runs, figures / "erank")
    written += spectrum_figure(main_runs, figures / "spectrum")
    written += accuracy_time_figure(main_runs, figures / "accuracy_time")
    if trial_paths:
        written += sensitivity_figure(load_runs(trial_paths), figures / "sensitivity")
    return written
