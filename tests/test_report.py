"""The report is built from run JSONs alone; its numbers equal hand-computed statistics."""

import json
import zlib
import statistics

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


def per_user_values(method, seed):
    rng = np.random.default_rng([zlib.crc32(method.encode()), seed])
    base = rng.uniform(0, 0.6, USERS)
    return base + (0.1 if method == "DirectSpecPlus" else 0.0)


def fixture_record(backbone, method, label, seed, ndcg20):
    history = []
    for epoch, scale in ((0, 0.1), (10, 0.5), (20, 1.0)):
        metrics = {"recall@10": 0.1 * scale, "ndcg@10": 0.2 * scale, "recall@20": 0.15 * scale,
                   "ndcg@20": ndcg20 * scale}
        history.append({"epoch": epoch, "loss": 0.5, "metrics": metrics,
                        "spectrum": {"erank": 10.0 + epoch + seed,
                                     "singular_values": list(np.linspace(1, 0.1 + 0.01 * epoch, 64))}})
    values = {"ndcg@20": per_user_values(method, seed), "recall@20": per_user_values(method, seed) / 2}
    per_user = encode_per_user(values, torch.arange(1, USERS + 1))
    per_user["user_tokens_sha256"] = "same-split"
    return {"schema": 1, "run": {"dataset": "ml100k", "backbone": backbone, "method": method, "label": label,
                                 "model": method, "seed": seed},
            "history": history, "final": history[-1], "per_user": per_user,
            "epochs": [{"epoch": e, "seconds": 0.1, "loss": 0.5} for e in range(1, 21)],
            "timing": {"seconds_per_epoch": 0.1, "train_seconds": 2.0}, "memory": {"peak_rss_bytes": 2**20}}


def write_fixtures(root):
    paths = []
    for (backbone, method, label), values in NDCG20.items():
        for seed, v in enumerate(values):
            path = root / "runs" / "ml100k" / backbone / method / f"{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(fixture_record(backbone, method, label, seed, v)))
            paths.append(path)
    return paths


@pytest.fixture
def report(tmp_path):
    written = build_report(write_fixtures(tmp_path), tmp_path / "out", ours=["DirectSpecPlus"])
    return tmp_path / "out", written


def test_every_table_and_figure_is_written(report):
    out, written = report
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(
        [f"tables/{t}.{e}" for t in ("main", "significance", "efficiency") for e in ("csv", "md", "tex")]
        + [f"figures/{f}.{e}" for f in ("erank", "spectrum", "accuracy_time") for e in ("png", "pdf")])
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
    assert "0.3200 ± 0.0200" in md
    assert md.index("| MF ") < md.index("| LightGCN ")  # backbones in a fixed order
    tex = (out / "tables" / "main.tex").read_text()
    assert r"\textbf{0.3900}$^\dagger$" in tex and r"\begin{tabular}" in tex


def test_significance_equals_direct_scipy(report):
    out, _ = report
    sig = pd.read_csv(out / "tables" / "significance.csv")
    row = sig[(sig.backbone == "mf") & (sig.metric == "ndcg@20")].iloc[0]
    assert row["best_baseline"] == "BPR"
    assert abs(row["improvement"] - (0.39 - 0.32) / 0.32) < 1e-12
    ours = np.mean([per_user_values("DirectSpecPlus", s).astype(np.float32) for s in range(3)], axis=0)
    theirs = np.mean([per_user_values("BPR", s).astype(np.float32) for s in range(3)], axis=0)
    assert abs(row["t_p"] - stats.ttest_rel(ours, theirs).pvalue) < 1e-12
    assert abs(row["wilcoxon_p"] - stats.wilcoxon(ours, theirs).pvalue) < 1e-12
    assert row["wilcoxon_p_holm"] >= row["wilcoxon_p"]


def test_holm_and_ci_by_hand():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])
    low, high = seed_ci([1.0, 3.0])
    half = stats.t.ppf(0.975, 1) * np.std([1.0, 3.0], ddof=1) / np.sqrt(2)
    assert abs(low - (2 - half)) < 1e-12 and abs(high - (2 + half)) < 1e-12


def test_efficiency_table(report):
    out, _ = report
    eff = pd.read_csv(out / "tables" / "efficiency.csv")
    assert set(eff["best_epoch"]) == {20} and set(eff["train_seconds_to_best"].round(9)) == {2.0}
    assert set(eff["peak_memory_mb"]) == {1.0}


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


def test_training_free_runs_are_reported_without_a_spectrum(tmp_path):
    """A graph filter (one evaluation at epoch 0, no spectrum) sits in the tables and the cost table,
    and the spectrum figures simply leave it out."""
    paths = write_fixtures(tmp_path)
    for seed in range(2):
        metrics = {"recall@10": 0.05, "ndcg@10": 0.1, "recall@20": 0.08, "ndcg@20": 0.41 + 0.01 * seed}
        history = [{"epoch": 0, "loss": None, "metrics": metrics, "spectrum": {}}]
        record = {"schema": 1, "run": {"dataset": "ml100k", "backbone": "filter", "method": "GFCF", "label": "GF-CF",
                                       "model": "GFCF", "seed": seed},
                  "history": history, "final": history[0], "per_user": {}, "epochs": [],
                  "timing": {"seconds_per_epoch": 0.0, "train_seconds": 0.0, "setup_seconds": 1.5},
                  "memory": {"peak_rss_bytes": 2**20}}
        path = tmp_path / "runs" / "ml100k" / "filter" / "GFCF" / f"{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        paths.append(path)
    out = tmp_path / "out"
    build_report(paths, out, ours=["DirectSpecPlus"])
    main = pd.read_csv(out / "tables" / "main.csv")
    row = main[(main["method"] == "GFCF") & (main["metric"] == "ndcg@20")].iloc[0]
    assert row["backbone"] == "filter" and row["mean"] == pytest.approx(0.415) and row["seeds"] == 2
    assert "Graph filter (training-free)" in (out / "tables" / "main.md").read_text()
    cost = pd.read_csv(out / "tables" / "efficiency.csv")
    gf = cost[cost["method"] == "GFCF"].iloc[0]
    assert gf["setup_seconds"] == 1.5 and gf["epochs"] == 0 and gf["best_epoch"] == 0



def test_ablation_variants_get_their_own_table_and_stay_out_of_the_main_one(tmp_path):
    paths = write_fixtures(tmp_path)
    for seed, v in enumerate([0.36, 0.37]):
        path = tmp_path / "runs" / "ml100k" / "mf" / "DirectSpecPlusNoShrink" / f"{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fixture_record("mf", "DirectSpecPlusNoShrink", "DirectSpec+ (no shrink_norm)", seed, v)))
        paths.append(path)
    out = tmp_path / "out"
    build_report(paths, out, ours=["DirectSpecPlus"], ablation=["DirectSpecPlusNoShrink"])
    ablation = pd.read_csv(out / "tables" / "ablation.csv")
    assert set(ablation["method"]) == {"DirectSpecPlusNoShrink"}
    row = ablation[ablation["metric"] == "ndcg@20"].iloc[0]
    assert row["mean"] == pytest.approx(0.365) and row["std"] == pytest.approx(statistics.stdev([0.36, 0.37]))
    assert "DirectSpecPlusNoShrink" not in set(pd.read_csv(out / "tables" / "main.csv")["method"])
    assert "DirectSpec+ (no shrink\\_norm)" in (out / "tables" / "ablation.tex").read_text()
