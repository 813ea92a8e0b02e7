"""Model selection from validation trials: the best trial and its best epoch, never the test split."""

import json

import pytest

from specbench.errors import SpecbenchError
from specbench.tuning import select


def trial(tmp_path, name, curve, split="valid", trained=True):
    """A trial record whose ndcg@20 at epochs 0, 10, 20, ... is ``curve`` (one point: training-free)."""
    history = [{"epoch": 10 * i, "metrics": {"ndcg@20": v}, "spectrum": {"erank": 5.0 + i}} for i, v in enumerate(curve)]
    record = {"schema": 1, "run": {"dataset": "d", "backbone": "mf", "method": "M", "seed": 0, "eval_split": split},
              "settings": {}, "history": history, "final": history[-1],
              "epochs": [{"epoch": e, "seconds": 0.1} for e in range(1, 10 * (len(curve) - 1) + 1)] if trained else [],
              "timing": {"seconds_per_epoch": 0.1 if trained else 0.0, "train_seconds": 0.0}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(record))
    return path


def test_best_trial_and_its_best_epoch_are_chosen(tmp_path):
    paths = [trial(tmp_path, "a", [0.0, 0.20, 0.25, 0.24]), trial(tmp_path, "b", [0.0, 0.30, 0.28, 0.27])]
    result = select(paths, [{"lr": 1}, {"lr": 2}], "ndcg@20", True, tmp_path / "chosen.json")
    assert result["chosen_trial"] == 1 and result["params"] == {"lr": 2, "epochs": 10}
    assert result["value"] == 0.30 and [t["best_epoch"] for t in result["trials"]] == [20, 10]
    assert json.loads((tmp_path / "chosen.json").read_text()) == result


def test_ties_go_to_the_first_trial_and_epochs_stay_when_not_selected(tmp_path):
    paths = [trial(tmp_path, "a", [0.0, 0.3]), trial(tmp_path, "b", [0.0, 0.3])]
    result = select(paths, [{"x": 1}, {"x": 2}], "ndcg@20", False, tmp_path / "chosen.json")
    assert result["chosen_trial"] == 0 and result["params"] == {"x": 1}


def test_a_training_free_trial_is_judged_on_its_one_evaluation(tmp_path):
    paths = [trial(tmp_path, "a", [0.21], trained=False), trial(tmp_path, "b", [0.26], trained=False)]
    result = select(paths, [{"k": 64}, {"k": 128}], "ndcg@20", True, tmp_path / "chosen.json")
    assert result["params"] == {"k": 128}  # no epochs to choose: the settings schema needs epochs >= 1


def test_a_trial_scored_on_test_is_refused(tmp_path):
    with pytest.raises(SpecbenchError, match="must be evaluated on the validation split, not 'test'"):
        select([trial(tmp_path, "a", [0.0, 0.3], split="test")], [{}], "ndcg@20", True, tmp_path / "chosen.json")
    assert not (tmp_path / "chosen.json").exists()
