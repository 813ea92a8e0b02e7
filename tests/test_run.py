import json
import math

import pytest

from specbench.errors import SpecbenchError
from specbench.record import decode_per_user
from specbench.run import run
from tests.helpers import toy_plugin

KEYS = {"schema", "run", "settings", "recbole_config", "environment", "data", "epochs", "history", "final",
        "timing", "memory"}


@pytest.mark.parametrize("model,backbone", [("BPR", "mf"), ("LightGCN", "lightgcn"), ("DirectSpecPlus", "mf")])
def test_a_run_writes_a_complete_record(tmp_path, spec_for, model, backbone):
    out = tmp_path / "results" / "runs" / "ml100k_small" / backbone / model / "0.json"
    run(spec_for(model, backbone=backbone), out)
    record = json.loads(out.read_text())
    assert KEYS <= record.keys()
    assert record["run"]["model"] == model and record["run"]["seed"] == 0
    assert [h["epoch"] for h in record["history"]] == [0, 1, 2]  # epoch 0: the initial embeddings
    metrics = record["final"]["metrics"]
    for name in ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "recall_paper@20", "ref_ndcg@10"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["ndcg@20"] > 0.0  # two epochs already beat nothing
    spectrum = record["final"]["spectrum"]
    assert len(spectrum["singular_values"]) == 64 and 1.0 <= spectrum["erank"] <= 64.0
    assert record["data"]["users"] == 150 and record["data"]["eval_users"] == 150
    assert record["timing"]["seconds_per_epoch"] > 0 and record["memory"]["peak_rss_bytes"] > 0
    assert record["environment"]["packages"]["recbole"] == "1.2.1"
    assert record["environment"]["device"] == "cpu"
    assert all(math.isfinite(e["loss"]) for e in record["epochs"])
    for key in ("erank_users", "stable_rank_items", "info_abundance_users", "uniformity_items", "alignment"):
        assert math.isfinite(spectrum[key]), key
    assert len(spectrum["singular_values_users_normalized"]) == 64
    # Per-user metrics of the last evaluation decode to arrays whose means are the reported metrics.
    per_user = decode_per_user(record)
    assert len(per_user["users"]) == 150
    for name in ("ndcg@20", "recall@10"):
        assert abs(per_user[name].mean() - metrics[name]) < 1e-5
    # No scratch left behind, nothing written outside the output and its work folder.
    assert not list((tmp_path / "results" / ".work").rglob("checkpoint.pt"))


def test_same_seed_gives_identical_metrics_on_cpu(tmp_path, spec_for):
    a = run(spec_for("DirectSpecPlus", epochs=2, eval_step=2), tmp_path / "runs" / "a.json")
    b = run(spec_for("DirectSpecPlus", epochs=2, eval_step=2), tmp_path / "runs" / "b.json")
    assert a["final"]["metrics"] == b["final"]["metrics"]
    assert [e["loss"] for e in a["epochs"]] == [e["loss"] for e in b["epochs"]]


def test_unknown_model_fails_before_any_work(tmp_path, spec_for):
    spec = spec_for("BPR")
    spec["model"] = "NoSuchModel"
    out = tmp_path / "runs" / "x.json"
    with pytest.raises(SpecbenchError, match="unknown model 'NoSuchModel'"):
        run(spec, out)
    assert not out.exists()


def test_missing_dataset_is_named(tmp_path, spec_for):
    spec = spec_for("BPR")
    spec["dataset"] = "nowhere"
    with pytest.raises(SpecbenchError, match=r"dataset 'nowhere' is not prepared: missing .*nowhere\.train\.inter"):
        run(spec, tmp_path / "runs" / "x.json")


def test_cuda_asked_for_without_a_gpu_is_an_error(tmp_path, spec_for):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SpecbenchError, match="device 'cuda' was asked for"):
        run(spec_for("BPR", device="cuda"), tmp_path / "runs" / "x.json")


# Training-free: item popularity counted in __init__, no parameters.
POPULARITY_MODEL = toy_plugin("TrainFreePop")


def test_a_training_free_model_is_evaluated_once_without_training(tmp_path, spec_for, ml100k_small, monkeypatch):
    import numpy as np
    from specbench import plugins
    from tests.conftest import REPO, read_split
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "trainfree.py").write_text(POPULARITY_MODEL)
    monkeypatch.setenv("SPECBENCH_MODELS", f"{tmp_path / 'models'}:{REPO / 'models'}")
    plugins._discover.cache_clear()
    try:
        record = run(spec_for("TrainFreePop", epochs=5), tmp_path / "runs" / "pop.json")
    finally:
        plugins._discover.cache_clear()
    assert [h["epoch"] for h in record["history"]] == [0] and record["epochs"] == []
    assert record["final"]["spectrum"] == {} and record["timing"]["setup_seconds"] > 0
    # Hand computation: rank unseen items by training count (ties: lowest RecBole id, i.e. first seen
    # token in train then test), recall@20 = hits / |test| per user, mean over users.
    train, test = (read_split(ml100k_small, "ml100k_small", s) for s in ("train", "test"))
    train.columns = test.columns = ["user", "item"]
    tokens = list(dict.fromkeys(list(train["item"]) + list(test["item"])))  # RecBole's id order
    count = train["item"].value_counts().reindex(tokens, fill_value=0)
    order = sorted(tokens, key=lambda t: (-count[t], tokens.index(t)))
    recalls = []
    for user, rows in test.groupby("user"):
        seen = set(train.loc[train["user"] == user, "item"])
        top = [t for t in order if t not in seen][:20]
        truth = set(rows["item"])
        recalls.append(len(truth & set(top)) / len(truth))
    assert abs(record["final"]["metrics"]["recall@20"] - np.mean(recalls)) < 1e-6


def test_popularity_bar_is_popularity_ranking(popularity_metrics, tmp_path, spec_for):
    # The bar baselines must beat is real popularity ranking, far above a random ranking.
    random = run(spec_for("Random", epochs=1, eval_step=1, eval_at_start=False),
                 tmp_path / "runs" / "random.json")["final"]["metrics"]
    assert popularity_metrics["ndcg@20"] > 3 * random["ndcg@20"] > 0


def test_the_record_names_the_commit_the_run_started_from(tmp_path, spec_for, monkeypatch):
    """A commit that lands while a run trains is not the code it imported: the record keeps the
    checkout's state when training began (a CiteULike run once named the commit made during it)."""
    import specbench.run as run_module
    checkout = {"commit": "a" * 40, "dirty": True}
    real_fit = run_module.fit

    def fit_while_a_commit_lands(*args, **kwargs):
        checkout.update(commit="b" * 40, dirty=False)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(run_module, "git_state", lambda: dict(checkout))
    monkeypatch.setattr(run_module, "fit", fit_while_a_commit_lands)
    record = run(spec_for("BPR", epochs=1), tmp_path / "runs" / "r.json")
    assert record["environment"]["git"] == {"commit": "a" * 40, "dirty": True}
    assert json.loads((tmp_path / "runs" / "r.json").read_text())["environment"]["git"]["commit"] == "a" * 40
