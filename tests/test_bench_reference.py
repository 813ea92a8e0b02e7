"""`make bench REFERENCE=...`: the authors' scripts timed beside ours, on a stand-in checkout.

The stand-in scripts have the reference's interface (its flags, ``./<dataset>/train.csv``, ``.cuda()`` on
every tensor, one ``backward`` per step, far more steps than a bench waits for, the GCN's
``L_3_80.npy`` from ``store_graph_adj.py``'s ``adj_store.npy``) and record what they were given, so the
test checks what the driver passes and counts, not the reference's speed.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from specbench import bench_reference as br
from specbench.errors import SpecbenchError
from tests.conftest import read_split

TRAIN = '''
import argparse, json, sys
import numpy as np, pandas as pd, torch
p = argparse.ArgumentParser()
for flag, kind in [("--dataset", str), ("--embedding_size", int), ("--lr", float), ("--reg", float),
                   ("--batch_size", int), ("--alpha", float), ("--tau", float), ("--tau_0", float),
                   ("--tau_1", float), ("--shrink_norm", float)]:
    p.add_argument(flag, type=kind)
a = p.parse_args()
train = pd.read_csv("./" + a.dataset + "/train.csv")
json.dump({"argv": sys.argv[1:], "rows": len(train)}, open("SEEN_NAME", "w"))
GRAPH
users, items = pd.factorize(train["user"])[0], pd.factorize(train["item"])[0]
e = torch.randn(users.max() + items.max() + 2, a.embedding_size).cuda().requires_grad_()
for step in range(100000):
    b = np.random.randint(0, len(train), a.batch_size)
    loss = -(e[users[b]] * e[users.max() + 1 + items[b]]).sum(1).sigmoid().log().mean()
    loss.backward()
    with torch.no_grad():
        e -= a.lr * 1e-3 * e.grad
        e.grad.zero_()
print("all steps done")
'''
STORE = '''
import argparse, numpy as np, pandas as pd
p = argparse.ArgumentParser(); p.add_argument("--dataset"); p.add_argument("--layer", type=int)
a = p.parse_args()
open("STORE_RAN", "w").write(str(a.layer))
np.save("./" + a.dataset + "/adj_store.npy", np.eye(3, dtype="float32"))
'''


@pytest.fixture
def ml100k(ml100k_small, tmp_path) -> Path:
    """The small subsample under the name ``ml100k``: the catalogue publishes DirectSpec(+) settings for it."""
    out = tmp_path / "data" / "ml100k"
    out.mkdir(parents=True)
    for split in ("train", "test"):
        (out / f"ml100k.{split}.inter").write_bytes((ml100k_small / "ml100k_small" / f"ml100k_small.{split}.inter").read_bytes())
    return out.parent


def _checkout(folder: Path) -> Path:
    folder.mkdir()
    for script in br.SCRIPTS:
        graph = 'assert np.load("./" + a.dataset + "/L_3_80.npy").shape == (3, 3)' if script.graph else ""
        (folder / script.file).write_text(TRAIN.replace("SEEN_NAME", f"seen-{script.variant}.json")
                                          .replace("GRAPH", graph))
    (folder / br.GRAPH_SCRIPT).write_text(STORE)
    return folder


def test_each_script_runs_the_steps_asked_at_our_published_settings(ml100k, tmp_path):
    from specbench.bench import variant_spec
    from specbench.settings import resolve
    ref = _checkout(tmp_path / "directspec")
    rows = br.bench_reference(ref, ["ml100k"], ml100k, "cpu", steps=5, rounds=1, work=tmp_path / "work")
    assert [r["script"] for r in rows] == [s.file for s in br.SCRIPTS]
    train_rows = len(read_split(ml100k, "ml100k", "train"))
    for row, script in zip(rows, br.SCRIPTS):
        assert row["status"] == br.TIMED, row
        seen = json.loads((tmp_path / "work" / "ml100k" / f"seen-{script.variant}.json").read_text())
        assert seen["rows"] == train_rows == row["train_rows"]
        settings = resolve(variant_spec("ml100k", script.variant, ml100k, "cpu")).settings
        flags = dict(zip(seen["argv"][::2], seen["argv"][1::2]))
        assert float(flags["--lr"]) == settings["learning_rate"] and int(flags["--batch_size"]) == settings["train_batch_size"]
        assert float(flags["--alpha"]) == settings["alpha"]
        if script.adaptive:
            assert (float(flags["--tau_0"]), float(flags["--tau_1"])) == (settings["tau0"], settings["tau1"])
        else:
            assert float(flags["--tau"]) == settings["tau"]
        sides = row["rounds"]
        assert len(sides["reference"]) == len(sides["ours"]) == 1
        assert all(t["steps"] == 5 and t["seconds_per_step"] > 0 for ts in sides.values() for t in ts)
        assert row["reference_over_ours"] == pytest.approx(row["reference_seconds_per_step"] / row["ours_seconds_per_step"])
        assert row["ours_seconds_per_epoch"] == pytest.approx(row["ours_seconds_per_step"] * (train_rows // 256), rel=1e-9)
    assert rows[2]["graph_cached"] is False and (tmp_path / "work" / "ml100k" / "STORE_RAN").read_text() == "3"


def test_rounds_alternate_which_side_goes_first(ml100k, tmp_path, monkeypatch):
    ref, order = _checkout(tmp_path / "directspec"), []

    def fake(side):
        def timing(*args):
            order.append(side)
            return {"status": br.TIMED, "steps": 5, "seconds_per_step": 2.0 if side == "reference" else 0.5,
                    "steps_per_epoch": 7}
        return timing
    monkeypatch.setattr(br, "time_reference", fake("reference"))
    monkeypatch.setattr(br, "time_ours", fake("ours"))
    monkeypatch.setattr(br, "SCRIPTS", br.SCRIPTS[:1])
    rows = br.bench_reference(ref, ["ml100k"], ml100k, "cpu", steps=5, rounds=3, work=tmp_path / "work")
    assert order == ["reference", "ours", "ours", "reference", "reference", "ours"]
    assert rows[0]["reference_over_ours"] == 4.0 and rows[0]["reference_seconds_per_epoch"] == 14.0


def test_a_dataset_without_published_settings_is_refused_before_any_timing(ml100k_small, tmp_path):
    ref = _checkout(tmp_path / "directspec")
    with pytest.raises(SpecbenchError, match=r"ml100k_small: no tau0, tau1 for DirectSpecPlusAdaptivePublished "
                                             r"\(config/methods.yaml presets\)"):
        br.bench_reference(ref, ["ml100k_small"], ml100k_small, "cpu", 5, 1, tmp_path / "work")
    assert not (tmp_path / "work").exists()


def test_the_dense_graph_is_refused_when_it_cannot_fit_before_it_is_built(ml100k, tmp_path, monkeypatch):
    ref = _checkout(tmp_path / "directspec")
    monkeypatch.setattr(br, "available_bytes", lambda device: 1000)
    monkeypatch.setattr(br, "SCRIPTS", tuple(s for s in br.SCRIPTS if s.graph))
    rows = br.bench_reference(ref, ["ml100k"], ml100k, "cpu", steps=5, rounds=1, work=tmp_path / "work")
    assert rows[0]["status"] == br.MEMORY and rows[0]["bytes_available"] == 1000
    assert rows[0]["dense_bytes_needed"] > 1000
    assert not (tmp_path / "work" / "ml100k" / "STORE_RAN").exists()


def test_a_checkout_without_the_scripts_is_refused_by_name(ml100k, tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(SpecbenchError, match=r"REFERENCE=.*other: no directspec_mf\.py, .*store_graph_adj\.py; "
                                             r"expected a checkout of github.com/tanatosuu/directspec"):
        br.bench_reference(tmp_path / "other", ["ml100k"], ml100k, "cpu", 5, 1, tmp_path / "work")


def test_a_script_that_stops_early_is_a_failed_row_not_a_timing(ml100k, tmp_path, monkeypatch):
    ref = _checkout(tmp_path / "directspec")
    short = (ref / "directspec_mf.py").read_text().replace("range(100000)", "range(3)")
    (ref / "directspec_mf.py").write_text(short)
    monkeypatch.setattr(br, "SCRIPTS", br.SCRIPTS[:1])
    rows = br.bench_reference(ref, ["ml100k"], ml100k, "cpu", steps=5, rounds=1, work=tmp_path / "work")
    assert rows[0]["status"] == br.FAILED and "ended after 3 training steps, before 15" in rows[0]["error"]


def test_reference_csv_keeps_ids_and_row_order(ml100k, tmp_path):
    counts = br.write_reference_csv(ml100k, "ml100k", tmp_path)
    for split in ("train", "test"):
        ours = read_split(ml100k, "ml100k", split)
        theirs = pd.read_csv(tmp_path / "ml100k" / f"{split}.csv")
        assert list(theirs.columns) == ["user", "item"] and counts[split] == len(ours)
        assert theirs.astype(str).values.tolist() == ours.astype(str).values.tolist()
    both = pd.concat([read_split(ml100k, "ml100k", s).astype(int) for s in ("train", "test")])
    assert (counts["users"], counts["items"]) == (both.iloc[:, 0].max() + 1, both.iloc[:, 1].max() + 1)
