"""The Optuna tuner (specbench/tuner.py) on a real subsample: seeded, pruned, resumable, shared, test-blind."""

import builtins
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from specbench import search_space as spaces
from specbench.data import carve_validation
from specbench.errors import SpecbenchError
from specbench.settings import layer
from specbench.study import tuning_protocol
from specbench.tuner import export, open_search, run_worker, study_name, trial_rows
from tests.helpers import REPO, make_spec

SPACE = {"learning_rate": {"low": 1.0e-4, "high": 5.0e-2, "log": True},
         "weight_decay": {"low": 1.0e-8, "high": 1.0e-2, "log": True}}
PROTOCOL = {"trials": 6, "max_epochs": 10, "eval_step": 2, "patience": 2, "pruner": "successive_halving",
            "min_epochs": 4, "seed": 0}


@pytest.fixture(scope="module")
def carved(ml100k_small, tmp_path_factory):
    """A data folder with only the fit and valid carves of ml100k_small: no test file at all."""
    carve_validation(ml100k_small, "ml100k_small", 0.1, 2024)
    out = tmp_path_factory.mktemp("carved")
    (out / "ml100k_small").mkdir()
    for split in ("fit", "valid"):
        name = f"ml100k_small.{split}.inter"
        shutil.copy(ml100k_small / "ml100k_small" / name, out / "ml100k_small" / name)
    return out


def trial_spec(data_dir, protocol=None, model="BPR"):
    """What Study.trial_spec gives: the run's layers, then the tuning protocol (validation on)."""
    p = tuning_protocol({**PROTOCOL, **(protocol or {})})
    spec = make_spec(data_dir, model, train_batch_size=256)
    spec["layers"] = [layer("study", "the test", spec.pop("params")),
                      layer("trial", "the test's tuning", {"epochs": p["max_epochs"], "eval_step": p["eval_step"],
                                                            "early_stop_patience": p["patience"],
                                                            "early_stop_metric": p["metric"], "validation": True})]
    return spec, p


def tune(tmp_path, carved, name="search", **protocol):
    spec, p = trial_spec(carved, protocol)
    journal = tmp_path / name / "optuna.journal"
    return spec, p, journal, run_worker(spec, SPACE, p, journal)


def params_of(journal, spec, p):
    return [r["params"] for r in trial_rows(open_search(journal, study_name(spec, SPACE, p), p))]


@pytest.fixture(scope="module")
def searched(tmp_path_factory, carved):
    """One search of PROTOCOL: (spec, protocol, journal, the worker's summary)."""
    return tune(tmp_path_factory.mktemp("searched"), carved)


def test_seeded_tpe_gives_the_same_trials_twice(tmp_path, carved, searched):
    spec, p, first, _ = searched
    _, _, second, _ = tune(tmp_path, carved, "b", trials=4)
    assert params_of(second, spec, tuning_protocol({**PROTOCOL, "trials": 4})) == params_of(first, spec, p)[:4]
    _, _, third, _ = tune(tmp_path, carved, "c", trials=4, seed=1)
    other = params_of(third, spec, tuning_protocol({**PROTOCOL, "trials": 4, "seed": 1}))
    assert other[0]["learning_rate"] == params_of(first, spec, p)[0]["learning_rate"] == 0.001  # the default rate
    assert other[1:] != params_of(first, spec, p)[1:4]


def test_trial_zero_is_the_defaults_and_pruned_trials_stop_before_the_maximum(searched):
    spec, p, journal, summary = searched
    rows = trial_rows(open_search(journal, study_name(spec, SPACE, p), p))
    assert summary["finished"] == 6 and summary["trials_run"] == list(range(6))
    assert rows[0]["defaults"] and rows[0]["params"]["learning_rate"] == 0.001  # BPR's default rate
    pruned = [r for r in rows if r["state"] == "pruned"]
    assert pruned, "successive halving pruned nothing in 6 trials"
    for r in pruned:
        assert r["epochs_trained"] < p["max_epochs"] and r["curve"][-1][0] == r["epochs_trained"]
    for r in rows:  # every curve is the validation metric at every evaluation, epoch 0 excluded
        assert [c[0] for c in r["curve"]] == list(range(2, r["epochs_trained"] + 1, 2))


def test_export_chooses_the_best_complete_trial_and_its_best_epoch(tmp_path, searched):
    spec, p, journal, _ = searched
    out = tmp_path / "chosen.json"
    result = export(journal, study_name(spec, SPACE, p), SPACE, p, out)
    rows = json.loads((out.parent / "trials.json").read_text())
    complete = [r for r in rows if r["state"] == "complete"]
    best = max(complete, key=lambda r: max(c[1] for c in r["curve"]))
    assert result["chosen_trial"] == best["trial"]
    assert result["params"] == {**best["params"], "epochs": max(best["curve"], key=lambda c: c[1])[0]}
    assert result["value"] == max(c[1] for c in best["curve"])
    csv_lines = (out.parent / "trials.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(rows) and csv_lines[0].startswith("trial,state,best_value,best_epoch")
    assert json.loads(out.read_text()) == result


def test_an_unfinished_search_is_not_exported(tmp_path, carved):
    spec, p, journal, _ = tune(tmp_path, carved, trials=2)
    bigger = tuning_protocol({**PROTOCOL, "trials": 2})
    bigger["trials"] = 5  # as if the budget were 5, with the same study name
    with pytest.raises(SpecbenchError, match="2 of 5 trials .* have finished; rerun the tuning job"):
        export(journal, study_name(spec, SPACE, p), SPACE, bigger, tmp_path / "chosen.json")
    assert not (tmp_path / "chosen.json").exists()


def test_early_stopping_ends_a_trial_after_patience_evaluations_without_a_gain(tmp_path, carved):
    # A rate that overfits within a few epochs on 150 users: the curve peaks early and stops.
    spec, p = trial_spec(carved, {"trials": 1, "max_epochs": 40, "pruner": "none", "patience": 2})
    fixed = {"learning_rate": [0.05], "weight_decay": [0.0]}
    journal = tmp_path / "es" / "optuna.journal"
    run_worker(spec, fixed, p, journal)
    (row,) = trial_rows(open_search(journal, study_name(spec, fixed, p), p))
    values = [c[1] for c in row["curve"]]
    assert row["stopped_early"] == row["epochs_trained"] < 40
    assert max(values[-2:]) <= max(values[:-2])  # the last two evaluations fell short of the best before


def test_the_tuner_never_opens_the_test_split(tmp_path, carved, monkeypatch):
    """The carved folder has no test file; and no path ending in .test.inter is ever opened."""
    opened = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    spec, p, journal, summary = tune(tmp_path, carved, trials=2)
    assert summary["finished"] == 2
    assert not list(carved.rglob("*.test.inter"))
    assert any(name.endswith(".fit.inter") for name in opened)
    assert not [name for name in opened if name.endswith(".test.inter")]


def _tune_cli(tmp_path, carved, journal, out, **protocol):
    spec, p = trial_spec(carved, protocol)
    cmd = [sys.executable, "-m", "specbench.cli", "tune", "--journal", str(journal), "--spec", json.dumps(spec),
           "--space", json.dumps(SPACE), "--protocol", json.dumps(p), "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finished(journal, spec, p):
    if not journal.exists():
        return []
    return [r for r in trial_rows(open_search(journal, study_name(spec, SPACE, p), p))
            if r["state"] in ("complete", "pruned")]


def test_a_killed_tuning_job_resumes_the_same_search(tmp_path, carved):
    protocol = {"trials": 6, "pruner": "none", "patience": 0, "max_epochs": 8}
    spec, p = trial_spec(carved, protocol)
    journal = tmp_path / "killed" / "optuna.journal"
    proc = _tune_cli(tmp_path, carved, journal, tmp_path / "w0.json", **protocol)
    deadline = time.time() + 240
    while len(_finished(journal, spec, p)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {r["trial"]: r for r in _finished(journal, spec, p)}
    assert 2 <= len(before) < 6, "the job was not killed mid-search"
    rerun = _tune_cli(tmp_path, carved, journal, tmp_path / "w0.json", **protocol)
    output, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, output
    rows = trial_rows(open_search(journal, study_name(spec, SPACE, p), p))
    after = {r["trial"]: r for r in rows if r["state"] in ("complete", "pruned")}
    assert len(after) == 6
    for number, row in before.items():  # nothing finished before the kill is lost or redone
        assert after[number]["params"] == row["params"] and after[number]["curve"] == row["curve"]
    failed = [r for r in rows if r["state"] == "fail"]  # the trial the kill interrupted, tried again
    for r in failed:  # the kill may land before the trial drew all its settings: those it drew are kept
        assert any(r["params"].items() <= a["params"].items() for a in after.values())
    assert "marked failed" in output or not failed


def test_a_trial_killed_while_drawing_its_settings_is_retried_with_those_it_drew(tmp_path, carved):
    """The race CI once met: a worker killed between two suggestions leaves a running trial with part of
    its point; the next worker marks it failed and retries that part, drawing the rest afresh."""
    protocol = {"trials": 2, "pruner": "none", "patience": 0, "max_epochs": 4}
    spec, p = trial_spec(carved, protocol)
    journal = tmp_path / "partial" / "optuna.journal"
    journal.parent.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id on this host that no longer runs
    study = open_search(journal, study_name(spec, SPACE, p), p)
    study.enqueue_trial({"learning_rate": 0.0123})
    trial = study.ask()
    trial.set_user_attr("worker", f"{socket.gethostname()}:{gone.pid}")
    assert spaces.suggest(trial, "learning_rate", SPACE["learning_rate"]) == 0.0123  # weight_decay not drawn
    run_worker(spec, SPACE, p, journal)
    rows = trial_rows(open_search(journal, study_name(spec, SPACE, p), p))
    assert [r["state"] for r in rows][0] == "fail" and rows[0]["params"] == {"learning_rate": 0.0123}
    done = [r for r in rows if r["state"] == "complete"]
    assert len(done) == 2
    assert [r["params"]["learning_rate"] for r in done].count(0.0123) == 1
    assert all(set(r["params"]) == set(SPACE) for r in done)


def test_two_workers_on_one_journal_lose_no_trials(tmp_path, carved):
    protocol = {"trials": 8, "pruner": "none", "patience": 0, "max_epochs": 8}
    spec, p = trial_spec(carved, protocol)
    journal = tmp_path / "shared" / "optuna.journal"
    procs = [_tune_cli(tmp_path, carved, journal, tmp_path / f"w{i}.json", **protocol) for i in range(2)]
    for proc in procs:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output
    runs = [json.loads((tmp_path / f"w{i}.json").read_text())["trials_run"] for i in range(2)]
    rows = trial_rows(open_search(journal, study_name(spec, SPACE, p), p))
    assert all(runs), f"one worker ran no trial: {runs}"
    assert not set(runs[0]) & set(runs[1])
    assert sorted(runs[0] + runs[1]) == [r["trial"] for r in rows]
    assert all(r["state"] == "complete" for r in rows) and len(rows) >= 8


def test_a_larger_budget_continues_the_search_and_export_keeps_to_the_budget(tmp_path, carved, searched):
    spec, p6, _, _ = searched
    spec, p4, journal, _ = tune(tmp_path, carved, "grow", trials=4)
    four = params_of(journal, spec, p4)
    assert study_name(spec, SPACE, p4) == study_name(spec, SPACE, p6)  # the budget is not the search's identity
    export(journal, study_name(spec, SPACE, p4), SPACE, p4, tmp_path / "four" / "chosen.json")
    _, _, _, summary = tune(tmp_path, carved, "grow", trials=6)
    assert summary["trials_run"] == [4, 5] and params_of(journal, spec, p6)[:4] == four  # continued, none redone
    # chosen among the first 4 trials only, as the 4-trial search chose
    again = export(journal, study_name(spec, SPACE, p4), SPACE, p4, tmp_path / "again" / "chosen.json")
    assert again == json.loads((tmp_path / "four" / "chosen.json").read_text())
    assert len(again["trials"]) == 4
    assert export(journal, study_name(spec, SPACE, p6), SPACE, p6, tmp_path / "six" / "chosen.json")["trials"][-1][
        "trial"] == 5
    # a changed sampler start is another search
    assert study_name(spec, SPACE, {**p6, "startup_trials": 3}) != study_name(spec, SPACE, p6)


def test_the_search_name_follows_values_not_the_files_that_set_them(carved):
    spec, p = trial_spec(carved)
    moved = json.loads(json.dumps(spec))
    for item in moved["layers"]:
        item["source"] = "/another/checkout/" + item["source"]
    assert study_name(moved, SPACE, p) == study_name(spec, SPACE, p)
    moved["layers"][0]["values"]["train_batch_size"] = 512
    assert study_name(moved, SPACE, p) != study_name(spec, SPACE, p)
