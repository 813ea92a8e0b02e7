"""The leaderboard is built from run records alone; its numbers equal hand-computed statistics, and
its HTML page works in a real browser driven by a program (Selenium + Debian's chromium-driver):
the pivot lists every method and marks ours, the dropdown filters show only the chosen rows, a
header click sorts, details expand, and the page fits 1,400 px."""

import json
import os
import re
import shutil
import statistics
from pathlib import Path

import pandas as pd
import pytest
import yaml

from specbench.report.leaderboard import metric_order, reproduced, tuning_summary, write_leaderboard

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
                                  "space": {"learning_rate": {"low": 0.0005, "high": 0.005, "log": True}},
                                  "edges": {"learning_rate": "high"},
                                  "protocol": {"trials": 3, "seed": 0, "pruner": "successive_halving",
                                               "max_epochs": 60, "eval_step": 5, "patience": 3,
                                               "valid_fraction": 0.1, "metric": "ndcg@20", "select_epochs": True},
                                  "trials": [{"trial": 0, "state": "complete", "params": {"learning_rate": 0.001}},
                                             {"trial": 1, "state": "complete", "params": {"learning_rate": 0.005}},
                                             {"trial": 2, "state": "pruned", "params": {"learning_rate": 0.0005}},
                                             {"trial": 3, "state": "fail", "params": {"learning_rate": 0.002}}]}))
    published = root / "published.yaml"
    published.write_text(yaml.safe_dump(PUBLISHED))
    figures = root / "figures"
    figures.mkdir()
    shutil.copy(_png_fixture(root), figures / "erank.png")
    written = write_leaderboard(paths + [trial], root / "out" / "leaderboard", [chosen], published, figures,
                                ours=["MyMethod"])
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
    assert bpr["tuning"] == ("learning_rate ∈ [0.0005, 0.005] (log) — 3 trials of Optuna TPE (seed 0, successive "
                             "halving pruning), at most 60 epochs, best ndcg@20 on valid, epochs = best evaluation; "
                             "at the edge of its range: learning_rate (high)")  # the failed trial is not counted
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
    assert "| top-20 full ranking | gowalla   | mf         | MyMethod! | MyMethod " in md and "0.2100 ± 0.0141" in md


def test_published_yaml_is_well_formed():
    """Every published entry names its source, split and metric definition (config/published.yaml)."""
    data = yaml.safe_load((ROOT / "config" / "published.yaml").read_text())
    assert 0 < data["tolerance"] < 0.5
    for e in data["entries"]:
        assert {"dataset", "metric", "value", "source", "split", "metric_definition"} <= set(e), e
        assert "2406.12032" not in e["source"]  # no DirectSpec numbers: its tables were not available


# ---------- the HTML in a real browser ----------

def test_metric_columns_are_ordered_by_cutoff_then_family():
    assert metric_order(["ndcg@20", "hit@10", "recall@20", "zeta@10", "recall@10", "ndcg@10"]) == \
        ["recall@10", "ndcg@10", "hit@10", "zeta@10", "recall@20", "ndcg@20"]


def test_html_is_self_contained(board):
    _, written = board
    page = written[2].read_text()
    assert "<script>" in page and "<style>" in page and "data:image/png;base64," in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    assert "<link" not in page and "@import" not in page and "<script src" not in page


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome-headless-shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = _chromium()
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
WIDTH, HEIGHT = 1400, 900


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium driven by Selenium through Debian's chromedriver, a 1400x900 viewport.

    Fails (never skips) without them: `make sysdeps` installs chromium and chromium-driver, `make
    venv` the pinned selenium. Selenium Manager is never asked for a driver (no download)."""
    assert CHROMIUM, "chromium is not installed: run `make sysdeps` (Debian's chromium) to test the leaderboard page"
    assert CHROMEDRIVER, ("chromedriver is not installed: run `make sysdeps` (Debian's chromium-driver) to test the "
                          "leaderboard page")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.selenium_manager import SeleniumManager
    except ImportError as exc:  # pinned in envs/requirements.txt
        pytest.fail(f"selenium is not installed ({exc}): run `make venv`")
    profile = tmp_path_factory.mktemp("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile / 'profile'}", f"--window-size={WIDTH},{HEIGHT}"]:
        options.add_argument(flag)

    def no_manager(*args, **kwargs):
        raise AssertionError("Selenium Manager was asked for a driver: the test must use /usr/bin/chromedriver")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SeleniumManager, "binary_paths", no_manager)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER, env={**os.environ, "HOME": str(profile)}),
                                  options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        driver.quit()


def _open(driver, path, view="pivot"):
    driver.get(Path(path).as_uri())
    if view == "long":
        _click(driver, "#tab-long")
    assert driver.execute_script("return document.body.getAttribute('data-view')") == view
    return driver


def _click(driver, css, within=None):
    from selenium.webdriver.common.by import By
    (within or driver).find_element(By.CSS_SELECTOR, css).click()


def _choose(driver, attr, value):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    Select(driver.find_element(By.ID, f"f-{attr}")).select_by_value(value)


# The rows (and cells) a reader sees, in the order shown.
_VISIBLE = """
const shown = e => e.getClientRects().length > 0;
return Array.from(document.querySelectorAll(arguments[0])).filter(shown).map(r => {
  const sec = r.closest('section.group');
  return {method: r.dataset.method, metric: r.dataset.metric,
          dataset: r.dataset.dataset || (sec && sec.dataset.dataset),
          backbone: r.dataset.backbone || (sec && sec.dataset.backbone), cls: r.className, text: r.innerText,
          html: r.innerHTML, height: r.getBoundingClientRect().height, detail: r.dataset.detail,
          label: r.querySelector('.lab') && r.querySelector('.lab').textContent,
          key: r.querySelector('.key') && r.querySelector('.key').textContent,
          next: r.nextElementSibling ? r.nextElementSibling.id : null,
          cells: Array.from(r.children).filter(shown).map(c => ({text: c.innerText, metric: c.dataset.metric || null,
                                                                  html: c.innerHTML, sort: c.dataset.sort}))};
});"""


def _visible(driver, css):
    return driver.execute_script(_VISIBLE, css)


def _long_column(driver, key):
    heads = driver.execute_script("return Array.from(document.querySelectorAll('#board thead th'))"
                                  ".map(th => th.dataset.key)")
    return [r["cells"][heads.index(key)] for r in _visible(driver, "#board tbody tr.row")]


def _sections(driver):
    return [(s["dataset"], s["backbone"]) for s in _visible(driver, "#view-pivot section.group")]


def test_pivot_lists_every_method_and_marks_ours(board, browser):
    _, written = board
    d = _open(browser, written[2])
    assert not _visible(d, "#board tbody tr.row")  # the long view is one click away, not shown
    assert _sections(d) == [("gowalla", "mf"), ("gowalla", "lightgcn")]  # by dataset, the tables with ours first
    rows = _visible(d, "#view-pivot tr.row")
    for ds, bb in _sections(d):
        assert {r["method"] for r in rows if (r["dataset"], r["backbone"]) == (ds, bb)} == \
            {m for (d_, b_, m, _) in RUNS if (d_, b_) == (ds, bb)}
    heads = d.execute_script("return Array.from(document.querySelectorAll('#view-pivot section.group')[0]"
                             ".querySelectorAll('th[data-metric]')).map(th => th.dataset.metric)")
    assert heads == ["recall@20", "ndcg@20"]  # by cutoff, recall first
    mf = [r for r in rows if r["backbone"] == "mf"]
    assert [r["method"] for r in mf] == ["MyMethod", "BPR"]  # ranked by the tuning metric (ndcg@20), best first
    ours = [r for r in rows if "ours" in r["cls"].split()]
    assert [(r["backbone"], r["method"]) for r in ours] == [("mf", "MyMethod")]
    assert 'class="badge"' in ours[0]["html"] and "OURS" in ours[0]["text"]
    assert all('class="badge"' not in r["html"] for r in rows if r not in ours)
    assert ours[0]["label"] == "MyMethod!" and ours[0]["key"] == "MyMethod · 2 seeds"  # label, key under it
    assert all(r["key"].startswith(r["method"] + " · ") for r in rows)
    cell = {(r["method"], c["metric"]): c for r in mf for c in r["cells"] if c["metric"]}
    assert "<b>0.2100</b>" in cell[("MyMethod", "recall@20")]["html"]  # best in bold
    assert "<u>0.1100</u>" in cell[("BPR", "recall@20")]["html"]  # second underlined
    assert "±0.0141" in cell[("MyMethod", "recall@20")]["text"]  # mean ± std
    lgcn = {c["metric"]: c["html"] for r in rows if r["backbone"] == "lightgcn" for c in r["cells"] if c["metric"]}
    assert 'class="ref yes"' in lgcn["recall@20"] and "LightGCN T3" in lgcn["recall@20"]  # published, reproduced
    assert 'class="ref no"' in lgcn["ndcg@20"]


def test_dropdown_filters_show_only_the_chosen_rows(board, browser):
    _, written = board
    d = _open(browser, written[2], "long")
    assert len(_visible(d, "#board tbody tr.row")) == 6
    _choose(d, "metric", "ndcg@20")  # matched every row before (each row's tuning text named it)
    shown = _visible(d, "#board tbody tr.row")
    assert len(shown) == 3 and {r["metric"] for r in shown} == {"ndcg@20"}
    assert {c["text"] for c in _long_column(d, "metric")} == {"ndcg@20"}
    assert d.execute_script("return document.getElementById('count').textContent") == "3 of 6 rows"
    _click(d, "#tab-pivot")  # the filters hold across views: the pivot shows only that metric's column
    assert {c["metric"] for r in _visible(d, "#view-pivot tr.row") for c in r["cells"]} == {None, "ndcg@20"}
    assert {th["metric"] for th in _visible(d, "#view-pivot th")} == {None, "ndcg@20"}
    _choose(d, "backbone", "mf")
    assert _sections(d) == [("gowalla", "mf")]
    _click(d, "#tab-long")
    assert {(r["backbone"], r["metric"]) for r in _visible(d, "#board tbody tr.row")} == {("mf", "ndcg@20")}
    _choose(d, "method", "BPR")
    assert [(r["backbone"], r["method"], r["metric"]) for r in _visible(d, "#board tbody tr.row")] == \
        [("mf", "BPR", "ndcg@20")]
    _choose(d, "dataset", "gowalla")
    assert len(_visible(d, "#board tbody tr.row")) == 1
    _choose(d, "backbone", "lightgcn")
    _choose(d, "method", "MyMethod")  # no such row: the page says so
    assert not _visible(d, "#board tbody tr.row") and _visible(d, "#empty-long")
    _click(d, "#f-reset")
    assert len(_visible(d, "#board tbody tr.row")) == 6 and not _visible(d, "#empty-long")
    _click(d, "#tab-pivot")
    assert len(_sections(d)) == 2 and len(_visible(d, "#view-pivot th[data-metric]")) == 4


def test_clicking_a_header_sorts_the_rows(board, browser):
    _, written = board
    d = _open(browser, written[2], "long")
    _click(d, '#board th[data-key="mean"]')  # numbers: best first
    means = [float(c["text"]) for c in _long_column(d, "mean")]
    assert means == sorted(means, reverse=True) and len(means) == 6
    assert d.execute_script("return document.querySelector('#board th[data-key=mean]').getAttribute('aria-sort')") \
        == "descending"
    _click(d, '#board th[data-key="mean"]')  # again: reversed
    assert [float(c["text"]) for c in _long_column(d, "mean")] == sorted(means)
    _click(d, '#board th[data-key="label"]')
    labels = [c["sort"] for c in _long_column(d, "label")]
    assert labels == sorted(labels) and labels[0] == "bpr!"
    rows = _visible(d, "#board tbody tr.row")
    assert all(r["next"] == r["detail"] for r in rows)  # each details row travels with its row
    _choose(d, "metric", "recall@20")  # sorting and filtering together
    _click(d, '#board th[data-key="std"]')
    stds = [float(c["text"]) for c in _long_column(d, "std")]
    assert stds == sorted(stds, reverse=True) and len(stds) == 3
    d = _open(browser, written[2])  # the pivot: a metric's header orders the methods of that table
    mf = '#view-pivot section.group[data-backbone="mf"]'
    _click(d, f'{mf} th[data-metric="ndcg@20"]')  # already best-first: a click reverses
    assert [r["method"] for r in _visible(d, f"{mf} tr.row")] == ["BPR", "MyMethod"]
    _click(d, f'{mf} th[data-metric="recall@20"]')
    assert [r["method"] for r in _visible(d, f"{mf} tr.row")] == ["MyMethod", "BPR"]


def test_details_expand_with_hyperparameters_and_tuning_range(board, browser):
    _, written = board
    for view, css in (("pivot", '#view-pivot section.group[data-backbone="mf"] tr.row[data-method="BPR"]'),
                      ("long", '#board tr.row[data-backbone="mf"][data-method="BPR"][data-metric="ndcg@20"]')):
        d = _open(browser, written[2], view)
        row, = _visible(d, css)
        assert "learning_rate" not in row["text"] and row["height"] < 50  # collapsed: a short row
        assert not _visible(d, f'#{row["detail"]}')
        _click(d, f"{css} button.more")
        detail, = _visible(d, f'#{row["detail"]}')
        assert "Tuning range\nlearning_rate ∈ [0.0005, 0.005] (log)\n3 trials of Optuna TPE" in detail["text"]
        assert "at most 60 epochs, best ndcg@20 on valid" in detail["text"] and "epochs=40" in detail["text"]
        assert "config h-BPR" in detail["text"] and "commit a1b2c3d" in detail["text"]
        _click(d, f"{css} button.more")
        assert not _visible(d, f'#{row["detail"]}')


def _screenshot(driver, path):
    from PIL import Image, ImageStat
    driver.save_screenshot(str(path))
    image = Image.open(path)
    assert image.format == "PNG" and image.size == (WIDTH, HEIGHT)
    grey = image.convert("L")
    assert ImageStat.Stat(grey).stddev[0] > 10  # not a blank page
    assert len(grey.getcolors(maxcolors=1 << 16) or []) > 20  # text and lines, not one flat fill
    keep = os.environ.get("LEADERBOARD_SCREENSHOTS")  # a folder to keep them in, to look at
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def _fits(driver):
    """The page, and every visible table box, needs no horizontal scrolling at 1,400 px."""
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= WIDTH, width
    boxes = driver.execute_script("return Array.from(document.querySelectorAll('.wrap'))"
                                  ".filter(w => w.getClientRects().length).map(w => [w.scrollWidth, w.clientWidth])")
    assert boxes and all(scroll <= client for scroll, client in boxes), boxes


def test_html_screenshot_is_a_rendered_page(board, browser, tmp_path):
    _, written = board
    d = _open(browser, written[2])
    _fits(d)
    _screenshot(d, tmp_path / "fixture-pivot.png")


STUDY = ROOT / "results" / "reference" / "quick-cpu"


def test_reference_study_board_in_the_browser(browser, tmp_path):
    """The committed quick study (every method of config/quick.yaml): the pivot shows each one, ours
    marked; 1,400 px wide pages with short rows in both views; a metric filter keeps its rows only."""
    runs = sorted(STUDY.glob("runs/*/*/*/*.json"))
    assert runs, f"no committed runs under {STUDY}"
    expected = {tuple(p.parts[-4:-1]) for p in runs}
    _, _, html_path = write_leaderboard(runs, tmp_path / "leaderboard", sorted(STUDY.glob("tuning/*/*/*/chosen.json")),
                                        ROOT / "config" / "published.yaml", None, ours=["DirectSpecPlus"])
    d = _open(browser, html_path)
    rows = _visible(d, "#view-pivot tr.row")
    assert {(r["dataset"], r["backbone"], r["method"]) for r in rows} == expected
    assert len(rows) == len(expected)  # one row per method and table
    assert {(r["dataset"], r["backbone"], r["method"]) for r in rows if "ours" in r["cls"].split()} == \
        {k for k in expected if k[2] == "DirectSpecPlus"}
    assert all(r["key"].startswith(r["method"] + " · ") for r in rows)  # the key under every label
    keys = {r["label"]: r["key"].split(" · ")[0] for r in rows}
    if {"NCL", "nCL"} <= set(keys):  # look alike, told apart by their keys
        assert keys["NCL"] != keys["nCL"]
    assert max(r["height"] for r in rows) < 56, max(r["height"] for r in rows)
    _fits(d)
    _screenshot(d, tmp_path / "pivot.png")
    _click(d, "#tab-long")
    long_rows = _visible(d, "#board tbody tr.row")
    assert len(long_rows) > 100 and max(r["height"] for r in long_rows) < 40
    _fits(d)
    _screenshot(d, tmp_path / "long.png")
    _choose(d, "metric", "ndcg@20")
    assert {r["metric"] for r in _visible(d, "#board tbody tr.row")} == {"ndcg@20"}
    assert len(_visible(d, "#board tbody tr.row")) == len(expected)
