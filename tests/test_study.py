"""Study planning: which runs exist and the exact settings each one gets."""

from pathlib import Path

import pytest
import yaml

from specbench.errors import SpecbenchError
from specbench.study import Study
from tests.conftest import REPO
from tests.helpers import toy_plugin

# The settings published with the reference code (tanatosuu/directspec README; see
# ../shared/reference/directspec.md): lr, alpha, tau, shrink_norm, tau0, tau1.
PUBLISHED = {"yelp": (10, 0.8, 3.0, 0.0, 2.5, 3.0), "citeulike": (180, 1.0, 3.0, 0.03, 2.5, 3.0),
             "gowalla": (200, 0.7, 4.0, 0.02, 3.5, 4.0)}


def paper():
    return Study(yaml.safe_load((REPO / "config" / "paper.yaml").read_text()), root=REPO)


def test_paper_grid_is_complete():
    study = paper()
    jobs = study.jobs()
    methods = study.config["methods"]
    # every method on each of the study's backbones it defines, on 3 datasets, with 5 seeds
    per_dataset_seed = sum(len(study.backbones_of(study.methods[m])) for m in methods)
    assert len(jobs) == 3 * per_dataset_seed * 5
    assert per_dataset_seed >= 2 * len(methods) - sum(1 for m in methods if len(study.methods[m].models) < 2)
    assert {j.dataset for j in jobs} == {"citeulike", "gowalla", "yelp"} and {j.seed for j in jobs} == set(range(5))
    assert all(study.settings(j.dataset, j.backbone, j.method)["device"] == "cuda" for j in jobs[:20])
    assert all(study.resources(j.dataset, j.backbone, j.method)["gpu"] == 1 for j in jobs)
    study.validate()  # every job's and every trial's settings pass the schemas


@pytest.mark.parametrize("dataset", sorted(PUBLISHED))
def test_published_directspec_settings(dataset):
    lr, alpha, tau, shrink, tau0, tau1 = PUBLISHED[dataset]
    study = paper()
    for backbone, decay, epochs in (("mf", 0.9995, 300), ("lightgcn", 0.9999, 200)):
        p = study.settings(dataset, backbone, "DirectSpecPlusPublished")
        assert (p["learning_rate"], p["alpha"], p["tau"], p["shrink_norm"]) == (lr, alpha, tau, shrink)
        assert (p["lr_decay"], p["epochs"], p["backbone"]) == (decay, epochs, backbone)
        assert p.get("reg", 0.0) == (0.01 if backbone == "lightgcn" else 0.0)  # only directspec_gcn.py reads --reg
        q = study.settings(dataset, backbone, "DirectSpecPlusAdaptivePublished")
        assert (q["tau0"], q["tau1"], q["alpha"], q["lr_decay"]) == (tau0, tau1, alpha, 0.9999)
        assert q["epochs"] == (50 if backbone == "mf" else 390) and q.get("reg", 0.0) == 0.0
        assert not study.is_tuned("DirectSpecPlusPublished")
    a = study.settings(dataset, "mf", "DirectSpecPlusAdaptive")
    assert (a["tau0"], a["tau1"], a["alpha"]) == (tau0, tau1, alpha)


def test_variants_keep_what_defines_them():
    study = paper()
    assert study.settings("citeulike", "mf", "DirectSpecPlusNoShrink")["shrink_norm"] == 0.0
    assert study.settings("gowalla", "lightgcn", "DirectSpecPlusPairs")["train_sampler"] == "pairs"
    assert study.spec("yelp", "mf", "DirectSpecLinear", 0)["model"] == "DirectSpec"


def test_trials_share_one_budget_and_never_touch_test():
    study = paper()
    budget = study.tuning["trials"]
    assert budget == study.config["tuning"]["trials"] and study.tuning["max_epochs"] == 300
    for key in study.tuned_keys():
        settings = study.settings(*key, trial=True)
        assert settings["validation"] is True and study.trial_spec(*key)["seed"] == 0
        assert settings["epochs"] == 300 and settings["early_stop_patience"] == study.tuning["patience"]
        assert study.search_args(*key).count("--protocol") == 1 and f'"trials": {budget}' in study.search_args(*key)


def test_quick_study_restricts_directspec_and_the_mf_methods_to_mf():
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    study = Study(config, root=REPO)
    combos = {(j.backbone, j.method) for j in study.jobs()}
    assert ("mf", "DirectSpecPlus") in combos and ("lightgcn", "DirectSpecPlus") not in combos
    assert ("mf", "DirectAU") in combos and ("lightgcn", "DirectAU") not in combos
    assert ("lightgcn", "BPR") in combos and ("lightgcn", "SGL") in combos
    # every method runs on every backbone it defines (MF, LightGCN; filters in their own group) that
    # the study's `restrict` leaves it
    for name, method in study.methods.items():
        allowed = set(config["restrict"].get(name, study.backbones))
        assert {b for b, m in combos if m == name} == set(method.models) & set(study.backbones) & allowed, name
    with pytest.raises(SpecbenchError, match="has no 'ngcf' backbone"):
        study.spec("ml100k", "ngcf", "BPR", 0)


NEW_MODEL = toy_plugin("MyBPR")  # a user's method, dropped into a models folder


def test_a_model_dropped_into_models_joins_a_study_with_new_models(tmp_path, monkeypatch):
    import subprocess
    import sys
    from specbench import plugins
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mybpr.py").write_text(NEW_MODEL)
    (tmp_path / "models" / "MyBPR.yaml").write_text("embedding_size: 64\nsearch_space: {learning_rate: [0.001, 0.01]}\n")
    monkeypatch.setenv("SPECBENCH_MODELS", f"{tmp_path / 'models'}:{REPO / 'models'}")
    plugins._discover.cache_clear()
    try:
        config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
        assert "MyBPR" not in Study({**config, "new_models": False}, root=REPO).methods  # off unless the study asks
        assert "MyBPR" in Study(config, root=REPO).methods  # the quick study asks
        study = Study({**config, "new_models": True}, root=REPO)
        assert [(j.backbone, j.seed) for j in study.jobs() if j.method == "MyBPR"] == [("mf", s) for s in config["seeds"]]
        assert study.search_space("MyBPR", "mf") == {"learning_rate": [0.001, 0.01]}
        # Models the catalogue already names (DirectSpec, DirectSpecPlus, ...) are not added twice.
        assert not {"DirectSpec", "DirectSpecPlus"} & (set(study.methods) - set(config["methods"]))
        study.validate()
    finally:
        plugins._discover.cache_clear()
    # One `snakemake` plans its training, tuning and leaderboard rows.
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**config, "new_models": True}))
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"), "--configfile",
                          str(path)], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "results/quick/runs/ml100k/mf/MyBPR/0.json" in out.stdout
    assert "results/quick/tuning/ml100k/mf/MyBPR/chosen.json" in out.stdout


def test_a_changed_model_file_reruns_that_models_jobs_and_no_other(tmp_path):
    """The training rules carry the model's code fingerprint as a param: after a model's yaml (or class
    file) changes, Snakemake plans its run again; a built-in model's runs stay done."""
    import os
    import subprocess
    import sys
    from tests.helpers import write_toy_plugin
    models = write_toy_plugin(tmp_path / "models", "ToyPop", "embedding_size: 64\n")
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    for key in ("tuning", "sweeps"):
        del config[key]
    config.update(methods=["BPR"], backbones=["mf"], seeds=[0], restrict={}, new_models=True,
                  run_settings={**config["run_settings"], "epochs": 2, "eval_step": 1})
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SPECBENCH_MODELS": f"{models}:{REPO / 'models'}",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    runs = {m: f"results/{config['study']}/runs/ml100k/mf/{m}/0.json" for m in ("ToyPop", "BPR")}

    def snakemake(*args):
        out = subprocess.run([sys.executable, "-m", "snakemake", "-c1", "-s", str(REPO / "Snakefile"), "--configfile",
                              "one.yaml", *args, "--", *runs.values()], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        return out.stdout + out.stderr

    snakemake()
    assert all((tmp_path / path).is_file() for path in runs.values())
    assert "Nothing to be done" in snakemake("-n")
    (models / "ToyPop.yaml").write_text("embedding_size: 64\n# the same settings, a changed file\n")
    planned = snakemake("-n")
    assert f"output: {runs['ToyPop']}" in planned and f"output: {runs['BPR']}" not in planned
    assert "reason: Params have changed since last execution" in planned
