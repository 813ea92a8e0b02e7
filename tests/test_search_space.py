"""Search spaces as declared in yaml: checked, sampled inside their bounds, edges flagged."""

import json
import math
import shutil
import subprocess
import sys

import optuna
import pytest
import yaml

from specbench import search_space as spaces
from specbench.errors import SpecbenchError
from specbench.tuning_check import compare, run_check
from tests.helpers import REPO

SPACE = {"learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
         "n_layers": [2, 3],
         "num_clusters": {"low": 10, "high": 1000, "log": True, "int": True},
         "drop_ratio": {"low": 0.1, "high": 0.3, "step": 0.05},
         "kind": ["ED", "ND"]}


def test_suggested_values_stay_inside_their_ranges():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(40):
        trial = study.ask()
        v = {k: spaces.suggest(trial, k, rule) for k, rule in SPACE.items()}
        study.tell(trial, 0.0)
        assert 1e-4 <= v["learning_rate"] <= 1e-2 and v["n_layers"] in (2, 3) and v["kind"] in ("ED", "ND")
        assert isinstance(v["num_clusters"], int) and 10 <= v["num_clusters"] <= 1000
        assert any(math.isclose(v["drop_ratio"], 0.1 + 0.05 * i) for i in range(5))
        assert all(spaces.contains(SPACE[k], v[k]) for k in SPACE)


def test_edges_are_measured_on_the_log_scale_for_log_ranges():
    # 1e-4 .. 1e-2 on a log scale: 1.2e-4 is 4% of the way (an edge), 1.5e-4 is 8.8% (not one);
    # on a linear scale both would be within 1% of the low end.
    assert spaces.edges(SPACE, {"learning_rate": 1.2e-4}) == {"learning_rate": "low"}
    assert spaces.edges(SPACE, {"learning_rate": 1.5e-4}) == {}
    assert spaces.edges(SPACE, {"learning_rate": 0.0095}) == {"learning_rate": "high"}
    assert spaces.edges(SPACE, {"drop_ratio": 0.3, "n_layers": 3, "kind": "ED"}) == {"drop_ratio": "high"}
    assert spaces.edges({"k": [64, 128, 256]}, {"k": 64}) == {"k": "low"}  # a choice of three: an end
    assert spaces.position(SPACE["num_clusters"], 100) == pytest.approx(0.5)


def test_corners_are_each_end_and_each_choice():
    assert spaces.corners({"a": {"low": 1, "high": 5, "int": True}, "b": ["x", "y", "z"]}) == [
        {"a": 1}, {"a": 5}, {"b": "x"}, {"b": "y"}, {"b": "z"}]


@pytest.mark.parametrize("rule, message", [
    ([], "is an empty list"),
    ({"low": 2.0, "high": 1.0}, "low = 2.0 and high = 1.0 must be numbers with low < high"),
    ({"low": 0.0, "high": 1.0, "log": True}, "a log range needs low > 0"),
    ({"low": 1.0, "high": 2.0, "lgo": True}, "unknown keys ['lgo']"),
    ({"high": 2.0}, "expected a list of values or {low: ..., high: ..."),
    ({"low": 1e-3, "high": 1.0, "log": True, "step": 0.1}, "step and log cannot be combined"),
])
def test_a_bad_space_names_the_file_and_key(rule, message):
    with pytest.raises(SpecbenchError) as err:
        spaces.check_space({"gamma": rule}, "models/X.yaml")
    assert str(err.value).startswith("models/X.yaml: search_space.gamma") and message in str(err.value)


def test_a_bound_outside_the_settings_schema_fails_before_any_job():
    """Study.validate resolves every bound: a drop ratio of 1.5 (schema: < 1) is refused at planning."""
    from specbench.study import Study
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    catalogue = yaml.safe_load((REPO / "config" / "methods.yaml").read_text())
    catalogue["methods"]["SGL"]["search_space"] = {"drop_ratio": {"low": 0.1, "high": 1.5}}
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "methods.yaml"
        path.write_text(yaml.safe_dump(catalogue))
        study = Study({**config, "catalogue": str(path)}, root=REPO)
        with pytest.raises(SpecbenchError, match=r"drop_ratio = 1.5 is not allowed: expected number .*< 1"):
            study.validate()


def test_the_check_table_measures_the_relative_gain():
    def chosen(value, trials, epochs):
        return {"value": value, "metric": "ndcg@20", "best_epoch": 20, "params": {"lr": 0.01},
                "trials": [{}] * trials, "protocol": {"max_epochs": epochs}}
    table = compare({("d", "mf", "A"): chosen(0.20, 8, 60), ("d", "mf", "B"): chosen(0.30, 8, 60)},
                    {("d", "mf", "A"): chosen(0.205, 32, 120), ("d", "mf", "B"): chosen(0.33, 32, 120)})
    assert list(table["gain"].round(6)) == [0.025, 0.1]
    assert list(table["within"]) == [True, False]
    with pytest.raises(SpecbenchError, match="the check has no search for d/mf/C"):
        compare({("d", "mf", "C"): chosen(0.2, 8, 60)}, {})


def test_the_check_table_says_whether_a_gain_needs_more_trials_or_more_epochs(tmp_path):
    def chosen(value, epochs, curves=None):
        return {"value": value, "metric": "ndcg@20", "best_epoch": 20, "params": {"lr": 0.01}, "trials": [{}],
                "protocol": {"max_epochs": epochs}, **({"curves": curves} if curves is not None else {})}
    study = {k: chosen(0.20, 40) for k in ("A", "B", "C")}
    check = {  # curves: [epoch, valid value, erank]
        "A": chosen(0.25, 80, {0: [[20, 0.19, 1], [40, 0.201, 1], [60, 0.25, 1]], 1: [[40, 0.18, 1]]}),  # epochs
        "B": chosen(0.25, 80, {0: [[20, 0.23, 1], [60, 0.25, 1]], 1: [[40, 0.22, 1]]}),                  # trials
        "C": chosen(0.203, 80, {0: [[40, 0.203, 1]]}),                                                     # within
    }
    table = compare({("d", "mf", k): v for k, v in study.items()}, {("d", "mf", k): v for k, v in check.items()})
    assert list(table["check_value_within_study_epochs"]) == [0.201, 0.23, 0.203]
    assert list(table["gain_within_study_epochs"].round(6)) == [0.005, 0.15, 0.015]
    assert list(table["cause"]) == ["epochs", "trials", ""]
    from specbench.tuning_check import write_table
    md = write_table(table, tmp_path / "check", "cmd", unfinished=[("d", "lightgcn", "D")])[1].read_text()
    assert "**Partial: 1 searches not finished yet** (lightgcn/D)" in md and md.count("\n| mf ") == 3
    no_curves = compare({("d", "mf", "A"): chosen(0.2, 40)}, {("d", "mf", "A"): chosen(0.3, 80)})
    assert no_curves["gain_within_study_epochs"].isna().all() and list(no_curves["cause"]) == ["unknown: no trials.json"]


def test_the_search_seed_spread_is_the_mean_and_range_of_the_studys_budget(tmp_path):
    """DirectAU-like: the study's own search (0.15) against the same budget under seeds 1 and 2 (0.19, 0.20):
    mean 0.18, so a check at 0.1836 gains +22.4% over the study's draw and +2.0% over its budget's mean."""
    import pandas as pd
    from specbench.tuning_check import search_seed_spread, write_table
    table = pd.DataFrame({"dataset": ["d", "d", "d"], "backbone": ["mf"] * 3, "method": ["A", "B", "C"],
                          "metric": ["ndcg@20"] * 3, "trials": [8] * 3, "max_epochs": [40] * 3,
                          "value": [0.15, 0.20, 0.30], "epoch": [5, 20, 20], "check_trials": [32] * 3,
                          "check_max_epochs": [80] * 3, "check_value": [0.1836, 0.25, 0.301], "check_epoch": [20] * 3,
                          "gain": [0.224, 0.25, 0.0033], "gain_within_study_epochs": [0.224, 0.25, 0.0033],
                          "within": [False, False, True], "cause": ["trials", "trials", ""],
                          "chosen": ["x"] * 3, "check_chosen": ["y"] * 3})
    out = search_seed_spread(table, {("d", "mf", "A"): [0.15, 0.19, 0.20], ("d", "mf", "B"): [0.20, None, 0.21]},
                             [1, 2])
    a = out.iloc[0]
    assert a["search_seed_mean"] == pytest.approx(0.18) and (a["search_seed_min"], a["search_seed_max"]) == (0.15, 0.20)
    assert a["gain_over_search_seeds"] == pytest.approx(0.02) and a["search_seed_values"] == "0.1500 0.1900 0.2000"
    assert out.iloc[1:]["gain_over_search_seeds"].isna().all()  # B: seed 1 unfinished; C: not flagged
    md = write_table(out, tmp_path / "check", "cmd", own_seed=0)[1].read_text()
    assert "under tuning seeds 1 2" in md and "over seeds 0 1 2" in md
    assert "| 0.1500-0.2000 " in md and "| +2.0% " in md


def test_a_rerun_search_that_adds_no_trial_leaves_the_kept_search_as_it_was(tmp_path):
    """The check copies its work folder's searches back beside the table; a search Snakemake reran with
    nothing left to run (its parameters changed) only reopened its journal and rewrote its worker summary:
    the kept copy must stay byte for byte, while a search that gained a trial replaces it."""
    from specbench.tuner import open_search
    from specbench.tuning_check import keep_searches
    protocol = {"seed": 0, "startup_trials": 2, "pruner": "none", "reduction_factor": 3, "min_epochs": 1}
    here, kept = tmp_path / "work", tmp_path / "kept"
    search = here / "d" / "mf" / "A"
    search.mkdir(parents=True)
    study = open_search(search / "optuna.journal", "d/mf/A@x", protocol)
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-2, log=True), n_trials=2)
    (search / "worker-0.json").write_text(json.dumps({"trials_run": [0, 1]}))
    keep_searches(here, kept)
    copy = kept / "d" / "mf" / "A"
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    assert set(before) == {"optuna.journal", "worker-0.json"}

    open_search(search / "optuna.journal", "d/mf/A@x", protocol)  # the rerun worker: the budget is spent
    (search / "worker-0.json").write_text(json.dumps({"trials_run": []}))
    assert (search / "optuna.journal").read_bytes() != before["optuna.journal"]
    keep_searches(here, kept)
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before

    open_search(search / "optuna.journal", "d/mf/A@x", protocol).optimize(
        lambda t: t.suggest_float("lr", 1e-4, 1e-2, log=True), n_trials=1)
    (search / "worker-0.json").write_text(json.dumps({"trials_run": [2]}))
    keep_searches(here, kept)
    assert (copy / "optuna.journal").read_bytes() == (search / "optuna.journal").read_bytes()
    assert json.loads((copy / "worker-0.json").read_text()) == {"trials_run": [2]}


def test_confirmations_of_searches_no_longer_flagged_are_deleted(tmp_path):
    """LightGCN-BPR's check search gained +4.5% under one sampler and +2.9% after the sampler changed:
    the six retrainings of the old search back no number and go; a flagged search's stay."""
    import pandas as pd
    from specbench.tuning_check import drop_unflagged
    folder = tmp_path / "confirm"
    for key in ("ml100k/lightgcn/BPR", "ml100k/mf/DirectAU"):
        for name in ("study-seed1.json", "check-seed1.json"):
            (folder / key).mkdir(parents=True, exist_ok=True)
            (folder / key / name).write_text("{}")
    table = pd.DataFrame({"dataset": ["ml100k", "ml100k", "ml100k"], "backbone": ["lightgcn", "mf", "mf"],
                          "method": ["BPR", "DirectAU", "SSM"], "within": [True, False, True]})
    assert drop_unflagged(folder, table) == ["ml100k/lightgcn/BPR"]
    assert not (folder / "ml100k" / "lightgcn" / "BPR").exists()
    assert sorted(p.name for p in (folder / "ml100k" / "mf" / "DirectAU").iterdir()) == ["check-seed1.json",
                                                                                          "study-seed1.json"]
    assert drop_unflagged(tmp_path / "absent", table) == []


def test_the_tuning_check_runs_larger_searches_and_writes_the_gain_table(tmp_path, ml100k_small, monkeypatch):
    """End to end on a 150-user subsample: a one-method study's search, then the check (2x trials,
    2x epochs) under Snakemake in its own study folder, and the table beside the reference choices."""
    import pandas as pd
    data = tmp_path / "data"
    shutil.copytree(ml100k_small, data)
    study = {"study": "tiny", "datasets": ["ml100k_small"], "backbones": ["mf"], "methods": ["BPR"], "seeds": [0],
             "data_dir": str(data), "run_settings": {"epochs": 2, "eval_step": 1, "topk": [10, 20],
                                                     "train_batch_size": 512},
             "tuning": {"trials": 2, "max_epochs": 4, "eval_step": 2, "patience": 0, "pruner": "none"}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(study))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--configfile", str(path),
                           "--cores", "1", "results/tiny/tuning/ml100k_small/mf/BPR/chosen.json"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    written = run_check(path, tmp_path / "results" / "tiny", cores=1, trials_factor=2, epochs_factor=2,
                        workdir=tmp_path)
    table = (tmp_path / "results" / "tiny" / "tuning-check.csv").read_text().splitlines()
    assert [p.name for p in written] == ["tuning-check.csv", "tuning-check.md"] and len(table) == 2
    check = json.loads((tmp_path / "results" / "tiny-check" / "tuning" / "ml100k_small" / "mf" / "BPR" /
                        "chosen.json").read_text())
    assert len(check["trials"]) == 4 and check["protocol"]["max_epochs"] == 8
    assert not (tmp_path / "results" / "tiny-check" / "runs").exists()  # only the searches ran
    kept = tmp_path / "results" / "tiny" / "tuning-check" / "tuning" / "ml100k_small" / "mf" / "BPR"
    assert json.loads((kept / "chosen.json").read_text()) == check and (kept / "optuna.journal").exists()
    assert not list(kept.glob("*.setup"))

    # a later check on a fresh work folder resumes from the committed searches: no trial is added
    shutil.rmtree(tmp_path / "results" / "tiny-check")
    run_check(path, tmp_path / "results" / "tiny", cores=1, trials_factor=2, epochs_factor=2, workdir=tmp_path)
    again = json.loads((tmp_path / "results" / "tiny-check" / "tuning" / "ml100k_small" / "mf" / "BPR" /
                        "chosen.json").read_text())
    assert [t["trial"] for t in again["trials"]] == [0, 1, 2, 3] and again["params"] == check["params"]
    # --table-only: no Snakemake, the table from what is committed
    shutil.rmtree(tmp_path / "results" / "tiny-check")
    (tmp_path / "results" / "tiny" / "tuning-check.md").unlink()
    written = run_check(path, tmp_path / "results" / "tiny", cores=1, trials_factor=2, epochs_factor=2,
                        workdir=tmp_path, search=False)
    assert [p.name for p in written] == ["tuning-check.csv", "tuning-check.md"] and written[1].exists()

    # the confirmation retrains a chosen setting as its search trained it: with the search's own training
    # seed (0) it must give back the value the search recorded for that trial (CPU training is deterministic)
    from specbench.tuning_check import check_config, confirm, load_choices
    ref = load_choices(tmp_path / "results" / "tiny" / "tuning")
    big = load_choices(tmp_path / "results" / "tiny-check" / "tuning")
    flagged = compare(ref, big).assign(within=False)
    monkeypatch.chdir(tmp_path)  # the study's relative paths, as the CLI runs it
    out = confirm(flagged, study, check_config(study, 2, 2), ref, big, [0], tmp_path / "confirm-here")
    key = ("ml100k_small", "mf", "BPR")
    assert out["confirmed_value"].iloc[0] == pytest.approx(ref[key]["value"], rel=1e-9)
    assert out["confirmed_check_value"].iloc[0] == pytest.approx(big[key]["value"], rel=1e-9)
    cached = tmp_path / "confirm-here" / "confirm" / "ml100k_small" / "mf" / "BPR" / "study-seed0.json"
    assert json.loads(cached.read_text())["seed"] == 0

    # a larger budget continues the kept search: its journal is restored, not its choice
    work = tmp_path / "results" / "tiny-check"
    shutil.rmtree(work)
    run_check(path, tmp_path / "results" / "tiny", cores=1, trials_factor=3, epochs_factor=2, workdir=tmp_path)
    grown = json.loads((work / "tuning" / "ml100k_small" / "mf" / "BPR" / "chosen.json").read_text())
    assert [t["trial"] for t in grown["trials"]] == list(range(6)) and grown["study_name"] == check["study_name"]
    assert [t["params"] for t in grown["trials"][:4]] == [t["params"] for t in check["trials"]]
    # another epoch cap is another search: the kept one is stale, deleted from the kept folder and run again
    shutil.rmtree(work)
    run_check(path, tmp_path / "results" / "tiny", cores=1, trials_factor=2, epochs_factor=3, workdir=tmp_path)
    other = json.loads((kept / "chosen.json").read_text())
    assert other["protocol"]["max_epochs"] == 12 and other["study_name"] != check["study_name"]
    assert [t["trial"] for t in other["trials"]] == [0, 1, 2, 3]

    # search seeds: with every search flagged (a threshold below any gain), the study's own search runs again
    # at its budget under seed 1 (other draws, trained with another seed), kept beside the table
    from specbench import tuning_check
    ref_dir = tmp_path / "results" / "tiny"
    with pytest.raises(SpecbenchError, match="0 is the study's own tuning.seed"):
        run_check(path, ref_dir, cores=1, search_seeds=[0, 1], workdir=tmp_path)
    monkeypatch.setattr(tuning_check, "THRESHOLD", -1.0)
    run_check(path, ref_dir, cores=1, trials_factor=2, epochs_factor=3, workdir=tmp_path, search_seeds=[1])
    own = json.loads((ref_dir / "tuning" / "ml100k_small" / "mf" / "BPR" / "chosen.json").read_text())
    seeded = json.loads((tmp_path / "results" / "tiny-search-seed1" / "tuning" / "ml100k_small" / "mf" / "BPR" /
                         "chosen.json").read_text())
    assert seeded["protocol"]["seed"] == 1 and seeded["protocol"]["max_epochs"] == own["protocol"]["max_epochs"]
    assert len(seeded["trials"]) == len(own["trials"]) == 2 and seeded["study_name"] != own["study_name"]
    assert [t["params"] for t in seeded["trials"]] != [t["params"] for t in own["trials"]]
    row = pd.read_csv(ref_dir / "tuning-check.csv").iloc[0]
    mean = (own["value"] + seeded["value"]) / 2
    assert row["search_seed_mean"] == pytest.approx(mean) and row["search_seeds"] == 1
    assert row["gain_over_search_seeds"] == pytest.approx((other["value"] - mean) / mean)
    assert json.loads((ref_dir / "tuning-check" / "search-seeds" / "seed1" / "tuning" / "ml100k_small" / "mf" / "BPR" /
                       "chosen.json").read_text()) == seeded
    assert "--search-seeds 1" in (ref_dir / "tuning-check.md").read_text()
