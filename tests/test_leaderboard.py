"""The leaderboard is built from run records alone; its numbers equal hand-computed statistics, and
its HTML renders and sorts in a real (headless) browser."""

import json
import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from specbench.report.leaderboard import reproduced, tuning_summary, write_leaderboard

ROOT = Path(__file__).resolve().parents[1]
# (dataset, backbone, method, model): final metrics per seed. "MyMethod" stands for a user's own
# model dropped into models/: no code names it, yet it must get rows.
RUNS = {
    ("gowalla", "lightgcn", "BPR", "LightGCN"): {"recall@20": [0.180, 0.182, 0.184], "ndcg@20": [0.14, 0.13, 0.12]},
    ("gowalla", "mf", "BPR", "BPR"): {"recall@20": [0.10, 0.11, 0.12], "ndcg@20": [0.09, 0.10, 0.11]},
    ("gowalla", "mf", "MyMethod", "MyMethod"): {"recall@20": [0.20, 0.22], "ndcg@20": [0.17, 0.19]},
}
PUBLISHED = {"tolerance": 0.05, "entries": [
    {"dataset": "gowalla", "model": "LightGCN", "metric": "recall@20", "value": 0.1830, "source": "LightGCN T3"},
    {"dataset": "gowalla", "model": "LightGCN", "metric": "ndcg@20", "value": 0.1554, "source": "LightGCN T3"},
    {"dataset": "gowalla", "model": "BPR", "backbone": "mf", "metric": "recall@20", "value": 0.1291, "source": "NGCF"},
    {"dataset": "gowalla", "model": "BPR", "backbone": "mf", "metric": "ndcg@20", "value": 0.1109, "source": "NGCF",
     "comparable": False}]}


def record(dataset, backbone, method, model, seed, metrics, split="test", gpu=None):
    final = {"epoch": 20, "metrics": metrics, "spectrum": {"erank": 12.0}}
    env = {"git": {"commit": "a1b2c3d4e5f60789", "dirty": False}, "device": "cuda" if gpu else "cpu",
           "cpu": "x86_64", "threads": 2, "finished": f"2025-01-0{seed + 1}T10:00:00+00:00"}
    if gpu:
        env["gpu"] = gpu
    return {"schema": 1, "run": {"dataset": dataset, "backbone": backbone, "method": method, "label": method + "!",
                                 "model": model, "seed": seed, "config_hash": f"h-{method}", "eval_split": split},
            "settings": {}, "environment": env, "history": [final], "final": final,
            "timing": {"seconds_per_epoch": 0.1, "train_seconds": 2.0}, "memory": {}}


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    paths = []
    for (ds, bb, method, model), metrics in RUNS.items():
        n = len(next(iter(metrics.values())))
        for seed in range(n):
            p = root / "runs" / ds / bb / method / f"{seed}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            vals = {m: v[seed] for m, v in metrics.items()} | {"ref_ndcg@10": 0.5}
            p.write_text(json.dumps(record(ds, bb, method, model, seed, vals, gpu="NVIDIA H100" if bb == "lightgcn"
                                           else None)))
            paths.append(p)
    trial = root / "tuning" / "gowalla" / "mf" / "BPR" / "trial-0.json"  # validation: never a leaderboard row
    trial.parent.mkdir(parents=True)
    trial.write_text(json.dumps(record("gowalla", "mf", "BPR", "BPR", 0, {"recall@20": 0.9, "ndcg@20": 0.9},
                                       split="valid")))
    chosen = trial.parent / "chosen.json"
    chosen.write_text(json.dumps({"metric": "ndcg@20", "split": "valid", "select_epochs": True, "chosen_trial": 1,
                                  "params": {"learning_rate": 0.005, "epochs": 40}, "value": 0.1,
                                  "trials": [{"trial": 0, "params": {"learning_rate": 0.001}},
                                             {"trial": 1, "params": {"learning_rate": 0.005}},
                                             {"trial": 2, "params": {"learning_rate": 0.0005}}]}))
    published = root / "published.yaml"
    published.write_text(yaml.safe_dump(PUBLISHED))
    figures = root / "figures"
    figures.mkdir()
    shutil.copy(_png_fixture(root), figures / "erank.png")
    written = write_leaderboard(paths + [trial], root / "out" / "leaderboard", [chosen], published, figures)
    return root, written


def _png_fixture(root):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.plot([0, 10, 20], [10, 14, 12], marker="o")
    ax.set_title("fixture figure")
    path = root / "fixture.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def test_rows_equal_hand_statistics(board):
    root, written = board
    assert [p.name for p in written] == ["leaderboard.csv", "leaderboard.md", "leaderboard.html"]
    df = pd.read_csv(written[0])
    assert len(df) == sum(len(m) for m in RUNS.values())  # one row per (method, metric); ref_* left out
    assert set(df["task"]) == {"top-20 full ranking"}
    for (ds, bb, method, model), metrics in RUNS.items():
        for metric, values in metrics.items():
            row = df[(df.backbone == bb) & (df.method == method) & (df.metric == metric)]
            assert len(row) == 1, (bb, method, metric)
            row = row.iloc[0]
            assert abs(row["mean"] - statistics.mean(values)) < 1e-12
            assert abs(row["std"] - statistics.stdev(values)) < 1e-12
            assert row["seeds"] == len(values) and row["label"] == method + "!" and row["model"] == model
            assert row["config_hash"] == f"h-{method}" and row["commit"] == "a1b2c3d4e5f60789"[:7]
            assert row["date"] == f"2025-01-0{len(values)}"  # the latest run of the group
            assert row["hardware"] == ("GPU: NVIDIA H100" if bb == "lightgcn" else "CPU: x86_64 (2 threads)")
    bpr = df[(df.backbone == "mf") & (df.method == "BPR")].iloc[0]
    assert bpr["tuning"].startswith("learning_rate ∈ {0.0005, 0.001, 0.005} (3 trials, best ndcg@20 on valid")
    assert bpr["chosen"] == "epochs=40, learning_rate=0.005"
    assert set(df[df.method != "BPR"]["tuning"]) | set(df[df.backbone == "lightgcn"]["tuning"]) == {"not tuned"}


def test_reproduced_status(board):
    _, written = board
    df = pd.read_csv(written[0]).set_index(["backbone", "method", "metric"]).sort_index()
    # 0.182 vs 0.1830: -0.55% -> yes; 0.13 vs 0.1554: -16.3%; 0.11 vs 0.1291: -14.8%
    assert df.loc[("lightgcn", "BPR", "recall@20"), "reproduced"] == "yes"
    assert df.loc[("lightgcn", "BPR", "ndcg@20"), "reproduced"] == "no (−16.3%)"
    assert df.loc[("mf", "BPR", "recall@20"), "reproduced"] == "no (−14.8%)"
    assert df.loc[("mf", "BPR", "ndcg@20"), "reproduced"] == "n/c"  # defined differently: shown, not judged
    assert df.loc[("mf", "BPR", "ndcg@20"), "reference"] == 0.1109
    assert set(df.loc[("mf", "MyMethod"), "reproduced"]) == {"—"}
    # the rule at its edges
    assert reproduced(1.05, 1.0) == "yes" and reproduced(0.95, 1.0) == "yes"
    assert reproduced(1.0501, 1.0) == "no (+5.0%)" and reproduced(0.9, 1.0) == "no (−10.0%)"
    assert reproduced(0.5, None) == "—" and reproduced(0.5, 0.6, comparable=False) == "n/c"
    assert tuning_summary(None) == ("not tuned", "")
    md = written[1].read_text()
    assert "| top-20 full ranking | gowalla   | mf         | MyMethod!" in md and "0.2100 ± 0.0141" in md


def test_published_yaml_is_well_formed():
    """Every published entry names its source, split and metric definition (config/published.yaml)."""
    data = yaml.safe_load((ROOT / "config" / "published.yaml").read_text())
    assert 0 < data["tolerance"] < 0.5
    for e in data["entries"]:
        assert {"dataset", "metric", "value", "source", "split", "metric_definition"} <= set(e), e
        assert "2406.12032" not in e["source"]  # no DirectSpec numbers: its tables were not available


# ---------- the HTML in a real browser ----------

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome-headless-shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = _chromium()


def needs_chromium(test):
    """The browser tests fail (never skip) without Chromium: `make test` installs it (`make sysdeps`)."""
    def wrapped(*args, **kwargs):
        assert CHROMIUM, "chromium is not installed: run `make sysdeps` (Debian's chromium) to test the leaderboard page"
        return test(*args, **kwargs)
    import functools
    return functools.wraps(test)(wrapped)


def _browser(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_html_is_self_contained(board):
    _, written = board
    page = written[2].read_text()
    assert "<script>" in page and "<style>" in page and "data:image/png;base64," in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere


@needs_chromium
def test_html_screenshot_is_a_rendered_page(board, tmp_path):
    from PIL import Image, ImageStat
    _, written = board
    shot = tmp_path / "leaderboard.png"
    _browser(tmp_path, "--hide-scrollbars", "--window-size=1280,900", f"--screenshot={shot}", written[2].as_uri())
    image = Image.open(shot)
    assert image.format == "PNG" and image.size == (1280, 900)
    grey = image.convert("L")
    assert ImageStat.Stat(grey).stddev[0] > 10  # not a blank page
    assert len(grey.getcolors(maxcolors=1 << 16) or []) > 20  # text and lines, not one flat fill
    if os.environ.get("LEADERBOARD_SCREENSHOT"):  # keep it to look at
        shutil.copy(shot, os.environ["LEADERBOARD_SCREENSHOT"])


def _column(dom, key):
    """The cell texts of one column, in the order the browser shows the rows."""
    heads = re.findall(r'<th data-key="([^"]+)"', dom)
    body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)[heads.index(key)] for r in rows]


@needs_chromium
def test_clicking_a_header_sorts_the_table(board, tmp_path):
    _, written = board
    url = written[2].as_uri()
    ascending = _browser(tmp_path, "--dump-dom", url + "#click=mean")
    assert 'data-sorted="mean"' in ascending  # the page's script ran and clicked the header
    means = [float(v) for v in _column(ascending, "mean")]
    assert means == sorted(means) and len(means) == 6
    assert 'data-key="mean" data-type="num" scope="col" aria-sort="ascending"' in ascending
    descending = _browser(tmp_path, "--dump-dom", url + "#click=mean,mean")  # a second click reverses
    assert [float(v) for v in _column(descending, "mean")] == sorted(means, reverse=True)
    by_method = _column(_browser(tmp_path, "--dump-dom", url + "#click=label"), "label")
    assert by_method == sorted(by_method, key=str.lower)
