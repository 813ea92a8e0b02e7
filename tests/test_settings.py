"""The order of a run's settings layers (specbench/settings.py), layer by layer and as a whole.

Each test gives one setting a different value in two adjacent layers and checks which wins and
what the resolver says it came from; the tower test sets one key in every layer and peels them off
from the top, so any two layers in the wrong order fail it.
"""

import json
import subprocess
import sys

import pytest
import yaml

from specbench import plugins
from specbench.errors import SpecbenchError
from specbench.settings import LAYERS, explain, harness_defaults, layer, resolve
from specbench.study import Study
from tests.conftest import REPO
from tests.helpers import make_spec, write_toy_plugin


def spec(model="DirectSpecPlus", layers=(), backbone="mf"):
    return {"dataset": "ml100k", "backbone": backbone, "method": model, "model": model, "seed": 0,
            "data_dir": "data/atomic", "layers": [dict(x) for x in layers]}


def quick(**changes) -> dict:
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    config.update(changes)
    return config


# ---- one test per layer: each wins over the one below it ----

def test_harness_defaults_fill_what_nobody_sets():
    r = resolve(spec())
    assert r.settings["eval_scores_per_block"] == 2**24 == harness_defaults()["eval_scores_per_block"]
    assert r.origin["eval_scores_per_block"] == {"layer": "harness", "source": "config/schema/settings.schema.yaml"}


def test_study_run_defaults_rank_below_the_model_yaml():
    """The issue's example: run_defaults {1024, adam} must not beat DirectSpec+'s yaml (256, sgd)."""
    study = Study(quick(run_defaults={"train_batch_size": 1024, "learner": "adam", "eval_step": 7}), root=REPO)
    r = study.resolved("ml100k", "mf", "DirectSpecPlus")
    assert (r.settings["train_batch_size"], r.settings["learner"]) == (256, "sgd")
    assert r.origin["learner"] == {"layer": "model", "source": "models/DirectSpecPlus.yaml"}
    # ... but beat the harness defaults where the model sets nothing (quick.yaml's protocol sets eval_step: drop it)
    study = Study(quick(run_defaults={"eval_scores_per_block": 1000}), root=REPO)
    r = study.resolved("ml100k", "mf", "DirectSpecPlus")
    assert r.settings["eval_scores_per_block"] == 1000 and r.origin["eval_scores_per_block"]["layer"] == "study"


def test_presets_beat_the_model_yaml_most_specific_last(tmp_path):
    paper = Study.from_file(REPO / "config" / "paper.yaml", root=REPO)
    r = paper.resolved("gowalla", "mf", "DirectSpecPlusPublished")
    assert r.settings["learning_rate"] == 200.0  # the yaml says 180
    assert r.origin["learning_rate"] == {"layer": "preset", "source":
                                         "config/methods.yaml: methods.DirectSpecPlusPublished.presets.gowalla"}
    assert r.settings["epochs"] == 300 and r.origin["epochs"]["source"].endswith("presets.*/mf")
    catalogue = {"methods": {"DirectSpecPlus": {"model": "DirectSpecPlus", "presets": {
        "*/mf": {"alpha": 0.1, "tau": 1.5, "reg": 0.2}, "ml100k": {"alpha": 0.2, "tau": 2.5},
        "ml100k/mf": {"alpha": 0.3}}}}}
    (tmp_path / "methods.yaml").write_text(yaml.safe_dump(catalogue))
    study = Study(quick(catalogue=str(tmp_path / "methods.yaml"), methods=["DirectSpecPlus"], new_models=False),
                  root=REPO)
    s = study.settings("ml100k", "mf", "DirectSpecPlus")
    assert (s["alpha"], s["tau"], s["reg"]) == (0.3, 2.5, 0.2)


def test_fixed_beats_presets():
    paper = Study.from_file(REPO / "config" / "paper.yaml", root=REPO)
    r = paper.resolved("citeulike", "mf", "DirectSpecPlusNoShrink")
    assert r.settings["shrink_norm"] == 0.0  # the citeulike preset says 0.03
    assert r.origin["shrink_norm"]["layer"] == "fixed"


def test_protocol_beats_fixed_and_presets():
    paper = Study.from_file(REPO / "config" / "paper.yaml", root=REPO)
    r = paper.resolved("citeulike", "mf", "DirectSpecPlusPublished")
    assert r.settings["device"] == "cuda" and r.origin["device"] == {"layer": "protocol",
                                                                     "source": "config/paper.yaml: run_settings"}
    study = Study(quick(run_settings={"epochs": 20, "shrink_norm": 0.5}), root=REPO)
    assert study.settings("ml100k", "mf", "DirectSpecPlus")["shrink_norm"] == 0.5  # preset ml100k says 0.0


def test_the_jobs_backbone_beats_the_protocol():
    study = Study(quick(run_settings={"epochs": 20, "backbone": "lightgcn"}), root=REPO)
    r = study.resolved("ml100k", "mf", "DirectSpecPlus")
    assert r.settings["backbone"] == "mf" and r.origin["backbone"]["layer"] == "job"


def test_a_trial_beats_the_protocol_and_trains_on_the_valid_carve():
    study = Study.from_file(REPO / "config" / "quick.yaml", root=REPO)
    r = study.resolved("ml100k", "mf", "DirectSpecPlus", trial=True)
    assert r.settings["validation"] is True and r.settings["epochs"] == study.tuning["max_epochs"]
    assert r.settings["early_stop_patience"] == study.tuning["patience"]
    assert r.origin["epochs"] == {"layer": "trial", "source": "config/quick.yaml: tuning"}
    # A sampled point (what the tuner adds) beats the protocol and every lower layer.
    point = layer("trial", "DirectSpecPlus search space (Optuna trial 3)", {"alpha": 0.61, "tau": 2.2})
    p = resolve(study.trial_spec("ml100k", "mf", "DirectSpecPlus"), [point])
    assert (p.settings["alpha"], p.settings["tau"]) == (0.61, 2.2)
    assert p.origin["alpha"] == {"layer": "trial", "source": "DirectSpecPlus search space (Optuna trial 3)"}


def test_a_sweep_point_beats_the_protocol():
    study = Study.from_file(REPO / "config" / "quick.yaml", root=REPO)
    point = study.sweep_points("sensitivity")[5]
    r = resolve(study.sweep_spec("sensitivity", "ml100k", "mf", 5, 0))
    assert (r.settings["alpha"], r.settings["tau"]) == (point["alpha"], point["tau"])
    assert r.origin["alpha"]["layer"] == "sweep"


def test_tuned_beats_the_study_and_set_beats_tuned():
    study = Study.from_file(REPO / "config" / "quick.yaml", root=REPO)
    base = study.spec("ml100k", "mf", "DirectSpecPlus", 0)
    tuned = layer("tuned", "results/tuning/ml100k/mf/DirectSpecPlus/chosen.json", {"alpha": 0.7, "epochs": 15})
    r = resolve(base, [tuned])
    assert (r.settings["alpha"], r.settings["epochs"]) == (0.7, 15) and r.origin["epochs"]["layer"] == "tuned"
    r = resolve(base, [layer("set", "--set", {"epochs": 3}), tuned])  # given out of order: still sorted
    assert r.settings["epochs"] == 3 and r.settings["alpha"] == 0.7 and r.origin["epochs"]["layer"] == "set"


def test_a_hand_written_specs_params_are_the_spec_layer():
    s = spec()
    s["params"] = {"epochs": 4}
    r = resolve(s, [layer("tuned", "chosen.json", {"epochs": 9})])
    assert r.settings["epochs"] == 9  # tuned > spec
    assert resolve(s).origin["epochs"]["layer"] == "spec"


# ---- the whole order ----

def test_every_layer_in_order(tmp_path, monkeypatch):
    """eval_step set to a different value in every layer: peel layers off the top, the next one wins."""
    models = write_toy_plugin(tmp_path / "models", yaml_text="eval_step: 3\n")
    monkeypatch.setenv("SPECBENCH_MODELS", str(models))
    plugins._discover.cache_clear()
    try:
        tower = [layer("study", "s", {"eval_step": 2}),
                 layer("preset", "p*/mf", {"eval_step": 4}), layer("preset", "p-ds", {"eval_step": 5}),
                 layer("preset", "p-ds/mf", {"eval_step": 6}), layer("fixed", "f", {"eval_step": 7}),
                 layer("protocol", "r", {"eval_step": 8}), layer("job", "j", {"eval_step": 9}),
                 layer("trial", "t", {"eval_step": 10}), layer("sweep", "w", {"eval_step": 11}),
                 layer("spec", "sp", {"eval_step": 12}), layer("tuned", "c", {"eval_step": 13}),
                 layer("set", "x", {"eval_step": 14})]
        shuffled = tower[::-1]  # the resolver orders layers by LAYERS, not by how they were given
        assert resolve(spec("ToyPop", shuffled)).settings["eval_step"] == 14
        for top in range(len(tower), 1, -1):
            r = resolve(spec("ToyPop", tower[:top]))
            assert r.settings["eval_step"] == top + 2 and r.origin["eval_step"]["source"] == tower[top - 1]["source"]
        for given in ([tower[0]], []):  # the study's run_defaults rank below the model's yaml (3)
            r = resolve(spec("ToyPop", given))
            assert r.settings["eval_step"] == 3 and r.origin["eval_step"]["layer"] == "model"
        r = resolve(spec("ToyPop", [layer("study", "s", {"eval_scores_per_block": 5})]))  # ... and above the harness
        assert r.settings["eval_scores_per_block"] == 5 and resolve(spec("ToyPop")).origin["eval_scores_per_block"][
            "layer"] == "harness"
        assert [x["layer"] for x in tower] == [n for n in LAYERS if n not in ("harness", "model")
                                               for _ in range(3 if n == "preset" else 1)]
    finally:
        plugins._discover.cache_clear()


def test_unknown_layers_and_file_layers_in_a_spec_are_refused():
    with pytest.raises(SpecbenchError, match="unknown settings layer 'presets'"):
        resolve(spec(layers=[{"layer": "presets", "source": "x", "values": {}}]))
    with pytest.raises(SpecbenchError, match="'model' layer is read from its file"):
        resolve(spec(layers=[{"layer": "model", "source": "x", "values": {"alpha": 2.0}}]))


def test_the_resolved_settings_are_validated():
    with pytest.raises(SpecbenchError, match=r"unknown setting 'alpah' \(did you mean 'alpha'\?\)"):
        resolve(spec(), [layer("set", "--set", {"alpah": 0.5})])


# ---- what users see ----

def test_explain_shows_the_published_learning_rate_and_its_origin():
    out = subprocess.run([sys.executable, "-m", "specbench.cli", "explain", "--study", "config/paper.yaml",
                          "--dataset", "citeulike", "--backbone", "mf", "--method", "DirectSpecPlusPublished"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("learning_rate "))
    assert row.split()[:3] == ["learning_rate", "180.0", "preset"]
    assert row.endswith("config/methods.yaml: methods.DirectSpecPlusPublished.presets.citeulike")
    assert any(line.split()[:3] == ["epochs", "300", "preset"] for line in out.stdout.splitlines())


def test_explain_all_lists_what_was_overridden():
    paper = Study.from_file(REPO / "config" / "paper.yaml", root=REPO)
    text = explain(paper.resolved("citeulike", "mf", "DirectSpecPlusNoShrink"), show_all=True)
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("shrink_norm "))
    assert lines[i].split()[1:3] == ["0.0", "fixed"]
    assert lines[i + 1].split()[:3] == ["(was)", "0.03", "preset"]  # the value it overrode, most recent first
    assert lines[i + 2].split()[:3] == ["(was)", "0.03", "model"]


def test_the_run_record_says_where_every_setting_came_from(spec_for, tmp_path):
    from specbench.run import run
    s = spec_for("DirectSpecPlus", epochs=1)
    record = run(s, tmp_path / "runs" / "r.json", extra_layers=[layer("set", "--set on the command line",
                                                                        {"alpha": 0.5})])
    origin = record["settings_origin"]
    assert set(origin) == set(record["settings"])
    assert origin["alpha"] == {"layer": "set", "source": "--set on the command line"}
    assert origin["epochs"]["layer"] == "spec" and origin["learner"]["layer"] == "model"
    assert json.loads((tmp_path / "runs" / "r.json").read_text())["settings_origin"] == origin


def test_planning_resolves_each_run_once_and_resources_reuse_it(monkeypatch):
    """Study.validate resolves each (dataset, backbone, method), trial bound and sweep point once; the three
    resources of every job read that result instead of resolving again."""
    import specbench.settings as settings_module
    calls = []
    real = settings_module.resolve
    monkeypatch.setattr(settings_module, "resolve", lambda spec, extra=(): calls.append(spec["method"]) or real(spec, extra))
    study = Study.from_file(REPO / "config" / "quick.yaml", root=REPO)
    study.validate()
    groups = {(j.dataset, j.backbone, j.method) for j in study.jobs()}
    from specbench.search_space import corners
    # per tuned group: the trial protocol, and each bound of its search space
    trials = sum(1 + len(corners(study.search_space(key[2], key[1]))) for key in groups if study.is_tuned(key[2]))
    points = sum(len(study.sweep_points(n)) * len(s["datasets"]) * len(s["backbones"]) for n, s in study.sweeps().items())
    assert len(calls) == len(groups) + trials + points
    for job in study.jobs():
        study.resources(job.dataset, job.backbone, job.method)
    assert len(calls) == len(groups) + trials + points


def test_early_stopping_is_refused_on_the_test_split(tmp_path):
    """Patience on test would pick the epoch on test: refused before anything is built, naming the key."""
    spec = make_spec(tmp_path, "BPR", early_stop_patience=2)
    with pytest.raises(SpecbenchError, match="early_stop_patience = 2 needs validation: true"):
        resolve(spec)
    with pytest.raises(SpecbenchError, match=r"early_stop_metric = 'ndcg@50' is not evaluated: its cut-off 50 is not in topk"):
        resolve(make_spec(tmp_path, "BPR", early_stop_patience=2, validation=True, early_stop_metric="ndcg@50"))
    assert resolve(make_spec(tmp_path, "BPR", early_stop_patience=2, validation=True)).settings["early_stop_patience"] == 2
