"""The report is built from run JSONs alone; its numbers equal hand-computed statistics, nothing is
selected on test, and the claims, prose and figures follow the records."""

import json
import re
import statistics
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from specbench.record import encode_per_user
from specbench.report import build_report
from specbench.report.stats import holm, seed_ci

NDCG20 = {("mf", "BPR", "BPR"): [0.30, 0.32, 0.34], ("lightgcn", "BPR", "BPR"): [0.35, 0.36, 0.37],
          ("mf", "DirectSpecPlus", "DirectSpec+"): [0.40, 0.38, 0.39]}
USERS = 200
SHEETS = ("main", "significance", "efficiency", "claims")
FIGURES = ("erank", "spectrum", "accuracy_time")
PROSE = ("abstract", "results", "discussion", "provenance")


def per_user_values(method, seed):
    rng = np.random.default_rng([zlib.crc32(method.encode()), seed])
    base = rng.uniform(0, 0.6, USERS)
    return base + (0.1 if method == "DirectSpecPlus" else 0.0)


def fixture_record(backbone, method, label, seed, ndcg20, erank=None, peak=None, settings=None):
    """Three evaluations (epochs 0, 10, 20); the last is the final one. ``peak`` makes epoch 10 the
    best on test (a run must still be reported at its last epoch)."""
    history = []
    for epoch, scale in ((0, 0.1), (10, 0.5 if peak is None else 1.0 + peak), (20, 1.0)):
        metrics = {"recall@10": 0.1 * scale, "ndcg@10": 0.2 * scale, "recall@20": 0.15 * scale,
                   "ndcg@20": ndcg20 * scale}
        e = (10.0 + epoch + seed) if erank is None else (64.0 if epoch == 0 else erank)
        history.append({"epoch": epoch, "loss": 0.5, "metrics": metrics,
                        "spectrum": {"erank": e, "singular_values": list(np.linspace(1, 0.1 + 0.01 * epoch, 64))}})
    values = {"ndcg@20": per_user_values(method, seed), "recall@20": per_user_values(method, seed) / 2}
    per_user = encode_per_user(values, torch.arange(1, USERS + 1))
    per_user["user_tokens_sha256"] = "same-split"
    return {"schema": 1, "run": {"dataset": "ml100k", "backbone": backbone, "method": method, "label": label,
                                 "model": method, "seed": seed, "eval_split": "test"},
            "settings": {"epochs": 20, "embedding_size": 64, **(settings or {})},
            "history": history, "final": history[-1], "per_user": per_user,
            "epochs": [{"epoch": e, "seconds": 0.1, "loss": 0.5} for e in range(1, 21)],
            "timing": {"seconds_per_epoch": 0.1, "train_seconds": 2.0}, "memory": {"peak_rss_bytes": 2**20},
            "environment": {"git": {"commit": "0123456789abcdef"}, "cpu": "Test CPU", "threads": 1,
                            "finished": "2026-01-02T00:00:00+00:00", "packages": {"torch": "2.13.0"}}}


def _write(root, record):
    r = record["run"]
    path = root / "runs" / r["dataset"] / r["backbone"] / r["method"] / f"{r['seed']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def write_fixtures(root):
    return [_write(root, fixture_record(backbone, method, label, seed, v))
            for (backbone, method, label), values in NDCG20.items() for seed, v in enumerate(values)]


@pytest.fixture
def report(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no matplotlib, seaborn or pandas warning in any figure or table
        written = build_report(write_fixtures(tmp_path), tmp_path / "out", ours=["DirectSpecPlus"])
    return tmp_path / "out", written


def test_every_table_figure_and_text_is_written(report):
    out, written = report
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(
        [f"tables/{t}.{e}" for t in SHEETS for e in ("csv", "md", "tex")]
        + [f"figures/{f}.{e}" for f in FIGURES for e in ("png", "pdf")] + [f"paper/{p}.tex" for p in PROSE])
    for p in written:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_main_table_equals_hand_statistics(report):
    out, _ = report
    table = pd.read_csv(out / "tables" / "main.csv")
    for (backbone, method, label), values in NDCG20.items():
        row = table[(table.backbone == backbone) & (table.method == method) & (table.metric == "ndcg@20")].iloc[0]
        assert abs(row["mean"] - statistics.mean(values)) < 1e-12
        assert abs(row["std"] - statistics.stdev(values)) < 1e-12
        half = stats.t.ppf(0.975, 2) * statistics.stdev(values) / 3 ** 0.5
        assert abs(row["ci_low"] - (statistics.mean(values) - half)) < 1e-12 and row["seeds"] == 3
    md = (out / "tables" / "main.md").read_text()
    assert "**0.3900**† ± 0.0100" in md  # best MF nDCG@20, significant against BPR
    assert "0.3200 ± 0.0200" in md and "DirectSpec+ (ours)" in md and "nDCG@20" in md
    assert md.index("| MF ") < md.index("| LightGCN ")  # backbones in a fixed order
    tex = (out / "tables" / "main.tex").read_text()
    assert r"\textbf{0.3900}$^\dagger$" in tex and r"\begin{tabular}" in tex and r"\label{tab:main}" in tex


def test_no_interval_from_two_seeds(tmp_path):
    """A t-interval from 2 seeds (t = 12.7) is not reported: std only, and the caption says so."""
    paths = [p for p in write_fixtures(tmp_path) if not p.name.startswith("2")]
    build_report(paths, tmp_path / "out", ours=["DirectSpecPlus"])
    table = pd.read_csv(tmp_path / "out" / "tables" / "main.csv")
    assert set(table["seeds"]) == {2} and table["ci_low"].isna().all() and table["ci_high"].isna().all()
    assert "fewer than 3 seeds: no confidence intervals" in (tmp_path / "out" / "tables" / "main.md").read_text()


def test_significance_equals_direct_scipy(report):
    out, _ = report
    sig = pd.read_csv(out / "tables" / "significance.csv")
    row = sig[(sig.backbone == "mf") & (sig.metric == "ndcg@20")].iloc[0]
    assert row["best_baseline"] == "BPR" and row["baseline_method"] == "BPR" and row["method"] == "DirectSpecPlus"
    assert abs(row["improvement"] - (0.39 - 0.32) / 0.32) < 1e-12
    ours = np.mean([per_user_values("DirectSpecPlus", s).astype(np.float32) for s in range(3)], axis=0)
    theirs = np.mean([per_user_values("BPR", s).astype(np.float32) for s in range(3)], axis=0)
    assert abs(row["t_p"] - stats.ttest_rel(ours, theirs).pvalue) < 1e-12
    assert abs(row["wilcoxon_p"] - stats.wilcoxon(ours, theirs).pvalue) < 1e-12
    assert row["wilcoxon_p_holm"] >= row["wilcoxon_p"]
    md = (out / "tables" / "significance.md").read_text()
    assert "+21.9%" in md and "p (Wilcoxon)" in md and "<0.001" in md  # percent, human headings
    assert "t_p_holm" not in md and "improvement" not in md and "t\\_p" not in (out / "tables" / "significance.tex").read_text()


def test_holm_and_ci_by_hand():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    low, high = seed_ci([1.0, 3.0])
    half = stats.t.ppf(0.975, 1) * np.std([1.0, 3.0], ddof=1) / np.sqrt(2)
    assert abs(low - (2 - half)) < 1e-12 and abs(high - (2 + half)) < 1e-12


def test_efficiency_reports_trained_epochs_not_the_best_test_epoch(tmp_path):
    """Epoch 10 is the best on test here: the cost table still reports the 20 trained epochs and the
    time for them, and has no best-epoch column; the main table reports epoch 20's accuracy."""
    paths = [_write(tmp_path, fixture_record("mf", m, m, s, 0.3, peak=0.5)) for m in ("BPR", "SSM") for s in range(2)]
    build_report(paths, tmp_path / "out")
    eff = pd.read_csv(tmp_path / "out" / "tables" / "efficiency.csv")
    assert set(eff["epochs"]) == {20} and set(eff["train_seconds"].round(9)) == {2.0}
    assert set(eff["peak_memory_mb"]) == {1.0} and not [c for c in eff.columns if "best" in c]
    md = (tmp_path / "out" / "tables" / "efficiency.md").read_text()
    assert "Epochs" in md and "s / epoch" in md and "Peak memory (MB)" in md and "best" not in md.lower()
    main = pd.read_csv(tmp_path / "out" / "tables" / "main.csv")
    assert main[(main.metric == "ndcg@20")]["mean"].round(12).tolist() == [0.3, 0.3]  # epoch 20, not 10 (0.45)


def test_readme_results_section_is_generated_from_reference_runs(tmp_path):
    from specbench.report.readme import END, START, update_readme
    ref = tmp_path / "reference" / "quick-cpu"
    write_fixtures(ref)
    (ref / "NOTE.md").write_text("Made by `make reproduce`.")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Results\n{START}\nstale\n{END}\n\n## After\n")
    assert update_readme(readme, tmp_path / "reference")
    text = readme.read_text()
    assert "stale" not in text and "### quick-cpu" in text and "Made by `make reproduce`." in text
    assert "**0.3900** ± 0.0100" in text and text.endswith("## After\n")
    assert not update_readme(readme, tmp_path / "reference")  # idempotent


def _filter_record(seed):
    metrics = {"recall@10": 0.05, "ndcg@10": 0.1, "recall@20": 0.08, "ndcg@20": 0.41 + 0.01 * seed}
    history = [{"epoch": 0, "loss": None, "metrics": metrics, "spectrum": {}}]
    return {"schema": 1, "run": {"dataset": "ml100k", "backbone": "filter", "method": "GFCF", "label": "GF-CF",
                                 "model": "GFCF", "seed": seed},
            "history": history, "final": history[0], "per_user": {}, "epochs": [],
            "timing": {"seconds_per_epoch": 0.0, "train_seconds": 0.0, "setup_seconds": 1.5},
            "memory": {"peak_rss_bytes": 2**20}}


def test_training_free_runs_are_reported_without_a_spectrum(tmp_path):
    """A graph filter (one evaluation at epoch 0, no spectrum) sits in the tables and the cost table
    (n/a where a per-epoch number does not apply), and the spectrum figures simply leave it out."""
    paths = write_fixtures(tmp_path) + [_write(tmp_path, _filter_record(s)) for s in range(2)]
    out = tmp_path / "out"
    build_report(paths, out, ours=["DirectSpecPlus"])
    main = pd.read_csv(out / "tables" / "main.csv")
    row = main[(main["method"] == "GFCF") & (main["metric"] == "ndcg@20")].iloc[0]
    assert row["backbone"] == "filter" and row["mean"] == pytest.approx(0.415) and row["seeds"] == 2
    assert "Graph filter (training-free)" in (out / "tables" / "main.md").read_text()
    cost = pd.read_csv(out / "tables" / "efficiency.csv")
    gf = cost[cost["method"] == "GFCF"].iloc[0]
    assert gf["setup_seconds"] == 1.5 and gf["epochs"] == 0 and np.isnan(gf["seconds_per_epoch"])
    line = next(x for x in (out / "tables" / "efficiency.md").read_text().splitlines() if "GF-CF" in x)
    assert line.count("n/a") == 3 and "0/0/0" not in line and "| 0 " not in line


def test_ablation_variants_get_their_own_table_and_stay_out_of_the_main_one(tmp_path):
    paths = write_fixtures(tmp_path)
    for seed, v in enumerate([0.36, 0.37]):
        paths.append(_write(tmp_path, fixture_record("mf", "DirectSpecPlusNoShrink", "DirectSpec+ (no shrink_norm)", seed, v)))
    out = tmp_path / "out"
    written = build_report(paths, out, ours=["DirectSpecPlus"], ablation=["DirectSpecPlusNoShrink"])
    ablation = pd.read_csv(out / "tables" / "ablation.csv")
    assert set(ablation["method"]) == {"DirectSpecPlusNoShrink"}
    row = ablation[ablation["metric"] == "ndcg@20"].iloc[0]
    assert row["mean"] == pytest.approx(0.365) and row["std"] == pytest.approx(statistics.stdev([0.36, 0.37]))
    assert "DirectSpecPlusNoShrink" not in set(pd.read_csv(out / "tables" / "main.csv")["method"])
    assert "DirectSpec+ (no shrink\\_norm)" in (out / "tables" / "ablation.tex").read_text()
    assert out / "tables" / "ablation.tex" in written
    results = (out / "paper" / "results.tex").read_text()
    assert "\\generatedtable{ablation}" in results and "$-$6.4\\% against DirectSpec+" in results


def test_labels_that_differ_only_in_case_show_their_method_key(tmp_path):
    paths = write_fixtures(tmp_path)
    for method, label in (("NCL", "NCL"), ("NonContrastiveCL", "nCL")):
        paths += [_write(tmp_path, fixture_record("lightgcn", method, label, s, 0.2)) for s in range(2)]
    build_report(paths, tmp_path / "out")
    md = (tmp_path / "out" / "tables" / "main.md").read_text()
    assert re.search(r"\| NCL +\|", md) and "| nCL (NonContrastiveCL) |" in md and not re.search(r"\| nCL +\|", md)


def test_one_colour_per_method_in_every_figure_and_ours_stands_out():
    from specbench.report.style import OURS_COLOUR, Styles
    a = Styles(["BPR", "SSM", "DirectSpecPlus", "Mystery"], ours=["DirectSpecPlus"])
    b = Styles(["BPR", "Mystery"], ours=["DirectSpecPlus"])
    assert a.colour["BPR"] == b.colour["BPR"] and a.colour["Mystery"] == b.colour["Mystery"]
    assert a.colour["DirectSpecPlus"] == OURS_COLOUR and OURS_COLOUR not in {a.colour[m] for m in ("BPR", "SSM", "Mystery")}
    assert a.line("DirectSpecPlus")["lw"] > a.line("BPR")["lw"] and a.line("DirectSpecPlus")["zorder"] > a.line("BPR")["zorder"]
    from specbench.report.style import KNOWN
    colours = [c for c, _ in KNOWN.values()]
    assert len(set(colours)) == len(colours)  # no two catalogue methods share a colour


def test_erank_axis_shows_integer_epochs_and_the_legend_sits_outside(tmp_path, monkeypatch):
    from specbench.report import figures
    captured = {}
    monkeypatch.setattr(figures, "save", lambda fig, stem: captured.setdefault(stem.name, fig) and [])
    runs = [json.loads(p.read_text()) for p in write_fixtures(tmp_path)]
    figures.erank_figure(runs, tmp_path / "erank", ours=["DirectSpecPlus"])
    fig = captured["erank"]
    for ax in fig.axes:
        ticks = ax.get_xticks()
        assert np.all(ticks == np.round(ticks)) and set(ticks) == {0, 10, 20}
    legend = fig.legends[0]
    fig.canvas.draw()
    right_edge = max(ax.get_position().x1 for ax in fig.axes)
    assert legend.get_window_extent().x0 >= right_edge * fig.bbox.width - 1  # right of every panel
    assert "DirectSpec+ (ours)" in [t.get_text() for t in legend.get_texts()]


def claim_runs(tmp_path, positives=1.02, bpr=9.0, ours=28.0, others=(("DirectAU", 20.0, 0.2), ("SSM", 60.0, 0.42)),
               ours_ndcg=0.40):
    recs = [fixture_record("mf", "PositivesOnly", "Positives only", s, 0.18, erank=positives) for s in range(2)]
    recs += [fixture_record("mf", "BPR", "BPR", s, 0.32, erank=bpr) for s in range(2)]
    recs += [fixture_record("mf", "DirectSpecPlus", "DirectSpec+", s, ours_ndcg, erank=ours) for s in range(2)]
    recs += [fixture_record("mf", m, m, s, v, erank=e) for m, e, v in others for s in range(2)]
    return [_write(tmp_path, r) for r in recs]


def sweep(tmp_path, grid):
    """Sweep runs of DirectSpec+: (alpha, tau) -> (ndcg@20 at the last epoch, erank)."""
    paths = []
    for i, ((alpha, tau), (v, e)) in enumerate(grid.items()):
        r = fixture_record("mf", "DirectSpecPlus", "DirectSpec+", 0, v, erank=e, settings={"alpha": alpha, "tau": tau})
        path = tmp_path / "sweeps" / f"{i}-0.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(r))
        paths.append(path)
    return paths


def test_claims_are_computed_from_the_records_with_their_measurement(tmp_path):
    grid = {(0.5, 1.0): (0.40, 20.0), (0.5, 3.0): (0.42, 22.0), (2.0, 1.0): (0.10, 50.0), (2.0, 3.0): (0.12, 55.0)}
    build_report(claim_runs(tmp_path), tmp_path / "out", ours=["DirectSpecPlus"], trial_paths=sweep(tmp_path, grid))
    c = pd.read_csv(tmp_path / "out" / "tables" / "claims.csv").set_index("claim")
    assert list(c.index) == ["T1", "T2", "T3", "T4", "T5", "T6"]
    assert c.loc["T1", "verdict"] == "supported"
    assert c.loc["T1", "measurement"] == "Positives only, d = 64: 1.02 (2%) on MovieLens-100k/MF at epoch 20"
    assert c.loc["T2", "verdict"] == "supported" and "BPR, d = 64: 9.00 (14%)" in c.loc["T2", "measurement"]
    assert c.loc["T3", "verdict"] == "partly supported"
    assert c.loc["T3", "measurement"] == "DirectSpec+, d = 64: 28.00 (44%) on MovieLens-100k/MF at epoch 20 (BPR 9.00)"
    assert c.loc["T4", "verdict"] == "partly supported" and "1 of 2 between BPR 9.0 and DirectSpec+ 28.0" \
        in c.loc["T4", "measurement"] and "SSM 60.0" in c.loc["T4", "measurement"]
    assert c.loc["T5", "verdict"] == "not supported" and "vs best baseline SSM 0.4200" in c.loc["T5", "measurement"]
    assert c.loc["T6", "verdict"] == "supported" and "most accurate α = 0.5: nDCG@20 0.410, erank 21.0" \
        in c.loc["T6", "measurement"] and "largest α = 2: 0.110, erank 52.5" in c.loc["T6", "measurement"]
    tex = (tmp_path / "out" / "tables" / "claims.tex").read_text()
    assert r"\label{tab:claims}" in tex and "not measured" not in tex


def test_claim_verdicts_follow_the_numbers_and_say_not_measured(tmp_path):
    """Other records, other verdicts: nothing is hard-coded."""
    build_report(claim_runs(tmp_path, positives=7.0, bpr=40.0, ours=60.0, others=(("DirectAU", 50.0, 0.2),),
                            ours_ndcg=0.45), tmp_path / "out", ours=["DirectSpecPlus"])
    c = pd.read_csv(tmp_path / "out" / "tables" / "claims.csv").set_index("claim")
    assert c.loc["T1", "verdict"] == "not supported" and "7.00" in c.loc["T1", "measurement"]
    assert c.loc["T2", "verdict"] == "not supported"          # 40 of 64 is not partial collapse
    assert c.loc["T3", "verdict"] == "supported"              # 60 >= 0.75 * 64
    assert c.loc["T4", "verdict"] == "supported"
    assert c.loc["T5", "verdict"] == "supported" and "+40.6%" in c.loc["T5", "measurement"]
    assert c.loc["T6", "verdict"] == "not measured" and c.loc["T6", "measurement"].startswith("not measured")


def test_sensitivity_reads_the_last_epoch(tmp_path):
    """Epoch 10 is the best on test in every sweep run; the figure and T6 use epoch 20."""
    from specbench.report.figures import sensitivity_points
    from specbench.report.records import load_runs
    paths = []
    for i, alpha in enumerate((0.5, 2.0)):
        r = fixture_record("mf", "DirectSpecPlus", "DirectSpec+", 0, 0.3 + 0.1 * i, peak=1.0,
                           settings={"alpha": alpha, "tau": 3.0})
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(r))
    points = sensitivity_points(load_runs(paths))
    assert points["epoch"].tolist() == [20, 20] and points["ndcg@20"].round(12).tolist() == [0.3, 0.4]


def test_prose_states_who_wins_by_how_much_with_significance(report):
    out, _ = report
    results = (out / "paper" / "results.tex").read_text()
    # MF: DirectSpec+ 0.39 leads BPR 0.32; LightGCN: BPR alone with its 0.36.
    assert "On MF, DirectSpec+ leads (0.3900~$\\pm$~0.0100) of 2 methods, ahead of BPR (0.3200, $-$17.9\\%)" in results
    assert "+21.9\\% against the best baseline, BPR (Holm-adjusted paired Wilcoxon $p < 0.001$, significant)" in results
    assert "(No DirectSpec+ run on LightGCN in this study.)" in results
    for name in ("main", "significance", "efficiency", "claims"):
        assert f"\\generatedtable{{{name}}}" in results
    for name in FIGURES:
        assert f"\\generatedfigure{{{name}}}" in results
    assert "missing" not in results and "not generated" not in results
    discussion = (out / "paper" / "discussion.tex").read_text()
    assert "T6 (not measured)" in discussion and "Caveats" in discussion
    abstract = (out / "paper" / "abstract.tex").read_text()
    assert "T1 not measured" in abstract and "+21.9\\% in nDCG@20" in abstract
    assert "2026-01-02" in (out / "paper" / "provenance.tex").read_text()


def test_every_citation_of_the_generated_text_is_in_the_bibliography(report):
    from specbench.report import bib
    from tests.conftest import REPO
    entries = set(re.findall(r"@\w+\{([^,]+),", (REPO / "paper" / "references.bib").read_text()))
    assert bib.all_keys() <= entries
    out, _ = report
    cited = set()
    for path in list((out / "paper").glob("*.tex")) + [REPO / "paper" / "main.tex"]:
        for group in re.findall(r"\\cite[tp]?\{([^}]*)\}", path.read_text()):
            cited.update(k.strip() for k in group.split(","))
    assert cited and cited <= entries
    import yaml
    catalogue = yaml.safe_load((REPO / "config" / "methods.yaml").read_text())["methods"]
    for method, entry in catalogue.items():
        model = entry["model"] if isinstance(entry["model"], str) else next(iter(entry["model"].values()))
        assert bib.method_keys(method, model), f"{method}: no citation in specbench/report/bib.py"


def test_several_datasets_keep_each_column_under_its_own_heading(tmp_path):
    """Columns grouped by dataset (in record order), metrics in a fixed order within each."""
    paths = []
    for ds, scale in (("ml100k", 1.0), ("gowalla", 0.5)):
        for (backbone, method, label), values in NDCG20.items():
            for seed, v in enumerate(values):
                r = fixture_record(backbone, method, label, seed, v * scale)
                r["run"]["dataset"] = ds
                paths.append(_write(tmp_path, r))
    build_report(paths, tmp_path / "out", ours=["DirectSpecPlus"])
    md = (tmp_path / "out" / "tables" / "main.md").read_text().splitlines()
    header = next(x for x in md if x.startswith("| Backbone"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols[2:] == [f"{d} {m}" for d in ("MovieLens-100k", "Gowalla") for m in ("Recall@10", "nDCG@10", "Recall@20", "nDCG@20")]
    bpr = next(x for x in md if x.startswith("| MF") and "| BPR" in x)
    cells = [c.strip() for c in bpr.strip("|").split("|")]
    assert cells[cols.index("MovieLens-100k nDCG@20")].startswith("0.3200") and cells[cols.index("Gowalla nDCG@20")].startswith("0.1600")
    tex = (tmp_path / "out" / "tables" / "main.tex").read_text()
    assert tex.index("{MovieLens-100k}") < tex.index("{Gowalla}")
    sig = pd.read_csv(tmp_path / "out" / "tables" / "significance.csv")
    assert sig["dataset"].tolist() == ["ml100k"] * 4 + ["gowalla"] * 4
