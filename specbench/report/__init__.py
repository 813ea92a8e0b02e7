"""Tables, figures and the paper's generated text: pure functions from run JSONs to files (no training,
no RecBole, no torch)."""

from __future__ import annotations

from pathlib import Path

from specbench.report.claims import claims, write_claims
from specbench.report.figures import accuracy_time_figure, erank_figure, sensitivity_figure, spectrum_figure
from specbench.report.records import load_runs
from specbench.report.tables import (CI_MIN_SEEDS, PRIMARY, efficiency, seeds_phrase, significance, summary,
                                     write_comparison, write_efficiency, write_significance)
from specbench.report.style import metric_name
from specbench.report.leaderboard import load_chosen
from specbench.report.tuning import protocol_caption, tuning_table, write_tuning


def _accuracy_caption(table, what="Test accuracy") -> str:
    lo, hi = int(table["seeds"].min()), int(table["seeds"].max())
    intervals = ("; 95% t-intervals over seeds in the CSV" if lo >= CI_MIN_SEEDS else
                 f" (fewer than {CI_MIN_SEEDS} seeds: no confidence intervals)" if hi < CI_MIN_SEEDS else
                 f"; 95% t-intervals over seeds in the CSV for rows with at least {CI_MIN_SEEDS} seeds")
    return (f"{what} at the last epoch (each run trains for the epochs chosen on validation, or its method's fixed "
            f"setting), mean ± std over "
            f"{seeds_phrase(table)}{intervals}; full ranking over all items, training items masked; best per "
            "backbone in bold.")


def build_report(run_paths: list[Path], out_dir: Path, ours: list[str] = (), ablation: list[str] = (),
                 trial_paths: list[Path] = (), paper: bool = True, chosen_paths: list[Path] = ()) -> list[Path]:
    """Every table and figure of the study from its run JSONs (and sweep runs for the sensitivity
    figure, tuning choices for the tuning table), and with ``paper`` the generated text the paper
    inputs (out_dir/paper/*.tex).

    Writes, under out_dir: tables/{main,efficiency,claims}.{csv,md,tex}; tables/significance.* when
    ``ours`` has a run with a baseline on its backbone; tables/ablation.* when ``ablation`` has runs;
    tables/tuning.* with ``chosen_paths``; figures/{erank,spectrum,accuracy_time}.{png,pdf};
    figures/sensitivity.{png,pdf} with ``trial_paths`` (sweep runs);
    paper/{abstract,results,discussion,provenance}.tex with ``paper``."""
    runs = load_runs(run_paths)
    trials = load_runs(trial_paths) if trial_paths else []
    chosen = load_chosen(chosen_paths)
    tuned = protocol_caption(chosen)
    ours = list(ours)
    tables, figures = Path(out_dir) / "tables", Path(out_dir) / "figures"
    main_runs = [r for r in runs if r["run"]["method"] not in set(ablation) - set(ours)]
    table = summary(main_runs)
    sig = significance(main_runs, ours) if ours else None
    written = write_comparison(table, tables / "main", f"{_accuracy_caption(table)} {tuned}".strip(), sig, ours=ours,
                               label="tab:main")
    table_names = ["main"]
    if sig is not None and not sig.empty:
        written += write_significance(
            sig, tables / "significance",
            "Ours against the best other method of its backbone (the strongest baseline by test mean): seed means, "
            "relative difference, and p-values of paired per-user t-tests and Wilcoxon signed-rank tests, "
            "Holm-adjusted over the table.")
        table_names.append("significance")
    ablation_runs = [r for r in runs if r["run"]["method"] in set(ablation)]
    if ablation_runs:
        abl = summary(ablation_runs)
        written += write_comparison(abl, tables / "ablation", _accuracy_caption(abl, "Ablation of DirectSpec(+): test accuracy"),
                                    label="tab:ablation")
        table_names.append("ablation")
    if chosen_paths:
        written += write_tuning(tuning_table(chosen), tables / "tuning",
                                f"Model selection per (dataset, backbone, method). {tuned}")
        table_names.append("tuning")
    eff = efficiency(runs)
    written += write_efficiency(
        eff, tables / "efficiency",
        "Cost, mean over seeds: epochs trained (chosen on validation, or the method's fixed setting), seconds per "
        "epoch, training seconds for those epochs, build seconds (a training-free filter's fit), their total, and "
        "peak resident memory. n/a: not applicable to a training-free model.", ours=ours)
    table_names.append("efficiency")
    claim_table = claims(main_runs, ours, trials, sig=sig)
    written += write_claims(
        claim_table, tables / "claims",
        "The claims of the abstract of arXiv 2406.12032 checked against this study's run records: the verdict by "
        "the criterion given, and the measurement behind it (effective rank and accuracy at each run's last "
        "epoch; d is the embedding width).")
    table_names.append("claims")

    captions = {
        "erank": ("Effective rank of the user and item embeddings at every evaluation (epoch 0 is the "
                  "initialisation), mean over seeds, band $\\pm$ std. Each run trains for the epochs chosen on "
                  "validation, so a line ends at its run's last epoch. Dotted: the embedding width $d$. Ours in red."),
        "spectrum": ("Normalised singular values $\\sigma_k/\\sigma_1$ of the embeddings at the last epoch, mean over "
                     "seeds, log scale; a curve that falls below $10^{-3}$ is cut there and marked by a downward "
                     "triangle at the axis. A flatter curve is a more balanced spectrum. Ours in red."),
        "accuracy_time": (f"Test {metric_name(PRIMARY)} at the last epoch against build plus training time (log "
                          "scale), one point per method and backbone (mean over seeds, bar $\\pm$ std); filled "
                          "markers MF and the training-free filters (time = their fit), open markers LightGCN. "
                          "Ours in red."),
    }
    written += erank_figure(main_runs, figures / "erank", ours=ours)
    written += spectrum_figure(main_runs, figures / "spectrum", ours=ours)
    written += accuracy_time_figure(main_runs, figures / "accuracy_time", ours=ours)
    if trial_paths:
        written += sensitivity_figure(trials, figures / "sensitivity")
        splits = "/".join(sorted({r["run"].get("eval_split", "test") for r in trials}))
        epochs = sorted({r["final"]["epoch"] for r in trials})
        at = f"epoch {epochs[0]}, the last of every run" if len(epochs) == 1 else "the last epoch of each run"
        captions["sensitivity"] = (f"Sensitivity of DirectSpec+ to $\\alpha$ and $\\tau$: {metric_name(PRIMARY)} "
                                   f"(left) and effective rank (right) on the {splits} split at {at} (no epoch "
                                   "selection), mean over seeds and any other setting.")
    if paper:
        from specbench.report.prose import Facts, write_prose
        facts = Facts(runs, main_runs, ablation_runs, ours, table, sig, eff, claim_table, trials, run_paths)
        written += write_prose(facts, Path(out_dir), {k: v for k, v in captions.items()
                                                      if (figures / f"{k}.pdf") in written}, table_names)
    return written
