"""The report is built from run JSONs alone; numbers in the tables equal hand-computed statistics."""

import json
import statistics

import pandas as pd

from specbench.report import build_report

NDCG20 = {("mf", "BPR", "BPR"): [0.30, 0.32, 0.34], ("lightgcn", "BPR", "BPR"): [0.35, 0.36, 0.37],
          ("mf", "DirectSpecPlus", "DirectSpec+"): [0.40, 0.38, 0.39]}


def fixture_record(backbone, method, label, seed, ndcg20):
    history = []
    for epoch, scale in ((10, 0.5), (20, 1.0)):
        metrics = {"recall@10": 0.1 * scale, "ndcg@10": 0.2 * scale, "recall@20": 0.15 * scale,
                   "ndcg@20": ndcg20 * scale}
        history.append({"epoch": epoch, "loss": 0.5, "metrics": metrics,
                        "spectrum": {"erank": 10.0 + epoch + seed, "singular_values": [1.0] * 64}})
    return {"schema": 1, "run": {"dataset": "ml100k", "backbone": backbone, "method": method, "label": label,
                                 "model": method, "seed": seed},
            "history": history, "final": history[-1], "timing": {"seconds_per_epoch": 0.1}}


def write_fixtures(root):
    paths = []
    for (backbone, method, label), values in NDCG20.items():
        for seed, v in enumerate(values):
            path = root / "runs" / "ml100k" / backbone / method / f"{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(fixture_record(backbone, method, label, seed, v)))
            paths.append(path)
    return paths


def test_report_from_fixture_runs(tmp_path):
    written = build_report(write_fixtures(tmp_path), tmp_path / "out")
    names = sorted(p.name for p in written)
    assert names == ["erank.pdf", "erank.png", "main.csv", "main.md", "main.tex"]
    table = pd.read_csv(tmp_path / "out" / "tables" / "main.csv")
    for (backbone, _, label), values in NDCG20.items():
        row = table[(table.backbone == {"mf": "MF", "lightgcn": "LightGCN"}[backbone]) & (table.method == label)
                    & (table.metric == "ndcg@20")].iloc[0]
        assert abs(row["mean"] - statistics.mean(values)) < 1e-12
        assert abs(row["std"] - statistics.stdev(values)) < 1e-12
        assert row["seeds"] == 3
    md = (tmp_path / "out" / "tables" / "main.md").read_text()
    assert "**0.3900 ± 0.0100**" in md  # best MF ndcg@20 in bold
    assert "0.3200 ± 0.0200" in md
    tex = (tmp_path / "out" / "tables" / "main.tex").read_text()
    assert r"\textbf{0.3900}" in tex and r"\begin{tabular}" in tex and "DirectSpec+" in tex
    png = (tmp_path / "out" / "figures" / "erank.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
