"""Study planning: which runs exist and the exact settings each one gets."""

import pytest
import yaml

from specbench.errors import SpecbenchError
from specbench.study import Study
from tests.conftest import REPO

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
    assert len(jobs) == 3 * 2 * len(methods) * 5
    assert {j.dataset for j in jobs} == {"citeulike", "gowalla", "yelp"} and {j.seed for j in jobs} == set(range(5))
    assert all(study.spec(j.dataset, j.backbone, j.method, j.seed)["params"]["device"] == "cuda" for j in jobs[:20])
    assert all(study.resources(j.dataset, j.backbone, j.method)["gpu"] == 1 for j in jobs)
    study.validate()  # every job's and every trial's settings pass the schemas


@pytest.mark.parametrize("dataset", sorted(PUBLISHED))
def test_published_directspec_settings(dataset):
    lr, alpha, tau, shrink, tau0, tau1 = PUBLISHED[dataset]
    study = paper()
    for backbone, decay, epochs in (("mf", 0.9995, 300), ("lightgcn", 0.9999, 200)):
        p = study.spec(dataset, backbone, "DirectSpecPlusPublished", 0)["params"]
        assert (p["learning_rate"], p["alpha"], p["tau"], p["shrink_norm"]) == (lr, alpha, tau, shrink)
        assert (p["lr_decay"], p["epochs"], p["backbone"]) == (decay, epochs, backbone)
        assert not study.is_tuned("DirectSpecPlusPublished")
    a = study.spec(dataset, "mf", "DirectSpecPlusAdaptive", 0)["params"]
    assert (a["tau0"], a["tau1"], a["alpha"]) == (tau0, tau1, alpha)


def test_variants_keep_what_defines_them():
    study = paper()
    assert study.spec("citeulike", "mf", "DirectSpecPlusNoShrink", 0)["params"]["shrink_norm"] == 0.0
    assert study.spec("gowalla", "lightgcn", "DirectSpecPlusPairs", 0)["params"]["train_sampler"] == "pairs"
    assert study.spec("yelp", "mf", "DirectSpecLinear", 0)["model"] == "DirectSpec"


def test_trials_share_one_budget_and_never_touch_test():
    study = paper()
    budget = study.config["tuning"]["budget"]
    for key in study.tuned_keys():
        trials = study.trials(*key)
        assert 1 <= len(trials) <= budget
        assert len({tuple(sorted(t.items())) for t in trials}) == len(trials)
        spec = study.trial_spec(*key, 0)
        assert spec["params"]["validation"] is True and spec["seed"] == 0
    assert study.trials("citeulike", "mf", "DirectSpecPlus") == study.trials("citeulike", "mf", "DirectSpecPlus")


def test_quick_study_restricts_directspec_to_mf():
    study = Study(yaml.safe_load((REPO / "config" / "quick.yaml").read_text()), root=REPO)
    assert {(j.backbone, j.method) for j in study.jobs()} == {("mf", "BPR"), ("lightgcn", "BPR"), ("mf", "DirectSpecPlus")}
    with pytest.raises(SpecbenchError, match="has no 'ngcf' backbone"):
        study.spec("ml100k", "ngcf", "BPR", 0)
