"""Bad input, interrupted runs and concurrent jobs: clear errors, nothing lost."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from specbench.errors import SpecbenchError
from specbench.run import run, work_dir_for
from tests.conftest import REPO


@pytest.mark.parametrize("key,value,expected", [
    ("alpha", -0.5, "alpha = -0.5 is not allowed: expected number >= 0"),
    ("tau", 0, "tau = 0 is not allowed: expected number > 0"),
    ("embedding_size", 0, "embedding_size = 0 is not allowed: expected integer >= 1"),
    ("learning_rate", -0.1, "learning_rate = -0.1 is not allowed: expected number > 0"),
    ("epochs", "ten", "epochs = 'ten' is not allowed: expected integer >= 1"),
    ("learner", "adamm", "learner = 'adamm' is not allowed: expected one of 'adam'"),
    ("alpah", 0.5, "unknown setting 'alpah' (did you mean 'alpha'?)"),
])
def test_bad_settings_fail_before_training_with_one_clear_message(tmp_path, spec_for, key, value, expected):
    out = tmp_path / "results" / "runs" / "x.json"
    with pytest.raises(SpecbenchError) as err:
        run(spec_for("DirectSpecPlus", **{key: value}), out)
    assert expected in str(err.value)
    assert "DirectSpecPlus" in str(err.value)
    assert not out.exists() and not work_dir_for(out).exists()


def test_batch_larger_than_the_data_is_named(tmp_path, spec_for):
    out = tmp_path / "results" / "runs" / "x.json"
    with pytest.raises(SpecbenchError, match=r"train_batch_size = 10000000 is larger than the training data of "
                                             r"ml100k_small \(\d+ rows in .*ml100k_small\.train\.inter\)"):
        run(spec_for("BPR", train_batch_size=10_000_000), out)
    assert not [p for p in (tmp_path / "results").rglob("*") if p.is_file() or p.name == ".work"]


def test_nan_loss_stops_with_epoch_and_last_metrics(tmp_path, spec_for):
    out = tmp_path / "runs" / "x.json"
    # An absurd SGD step makes BPR's scores overflow, and its loss turns inf/nan within a few epochs.
    with pytest.raises(SpecbenchError) as err:
        run(spec_for("BPR", learner="sgd", learning_rate=1e30, epochs=5), out)
    message = str(err.value)
    assert "training diverged" in message and "at epoch" in message and "Lower learning_rate" in message
    assert "Last finite evaluation (epoch " in message and "ndcg@20=" in message
    assert not out.exists() and not work_dir_for(out).exists()


def _study_config(tmp_path, **changes):
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    config.update(changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _dry_run(tmp_path, configfile):
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"),
                           "--configfile", str(configfile), "--quiet", "rules"],
                          cwd=tmp_path, capture_output=True, text=True)


@pytest.mark.parametrize("changes,expected", [
    ({"methods": ["BPR", "DirectSpecPluss"]}, "method 'DirectSpecPluss'"),
    ({"backbones": ["mf", "ngcf"]}, "ngcf"),
    ({"sedes": [0]}, "unknown key 'sedes' (did you mean 'seeds'?)"),
    ({"run_setings": {"epochs": 3}}, "unknown key 'run_setings' (did you mean 'run_settings'?)"),
    ({"run_settings": {"epochs": 10, "device": "cpu", "eval_stpe": 5}}, "unknown setting 'eval_stpe' (did you mean 'eval_step'?)"),
    ({"run_settings": {"epochs": -3}}, "epochs = -3 is not allowed"),
])
def test_workflow_config_is_validated_before_planning(tmp_path, changes, expected):
    result = _dry_run(tmp_path, _study_config(tmp_path, **changes))
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not [p for p in (tmp_path / "results").rglob("*") if p.is_file() or p.name == ".work"]


def test_a_misspelt_catalogue_key_stops_the_workflow_before_any_job(tmp_path):
    """`fixd:` in a method entry used to be dropped silently (the ablation ran with the wrong settings)."""
    text = (REPO / "config" / "methods.yaml").read_text().replace("    fixed: {merge: early}", "    fixd: {merge: early}")
    assert "fixd:" in text
    (tmp_path / "methods.yaml").write_text(text)
    result = _dry_run(tmp_path, _study_config(tmp_path, catalogue=str(tmp_path / "methods.yaml")))
    assert result.returncode != 0
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "fixd:" in row)
    assert (f"methods.yaml, line {line}: methods.BSPM: unknown key 'fixd' (did you mean 'fixed'?)"
            in result.stdout + result.stderr)
    assert not (tmp_path / "results").exists()


def test_a_misspelt_model_yaml_key_stops_the_workflow_before_any_job(tmp_path, monkeypatch):
    """A model folder whose yaml misspells `search_space` fails at planning, naming file, line and key."""
    from tests.helpers import write_toy_plugin
    models = write_toy_plugin(tmp_path / "models", yaml_text="learning_rate: 0.5\nserach_space: {learning_rate: [0.1]}\n")
    monkeypatch.setenv("SPECBENCH_MODELS", str(models))
    result = _dry_run(tmp_path, _study_config(tmp_path, new_models=True))
    assert result.returncode != 0
    assert (f"{models}/ToyPop.yaml, line 2: top level: unknown key 'serach_space' (did you mean 'search_space'?)"
            in result.stdout + result.stderr)
    assert not (tmp_path / "results").exists()


def test_dry_run_plans_one_train_job_per_method_backbone_and_seed(tmp_path):
    from specbench.study import Study
    result = _dry_run(tmp_path, REPO / "config" / "quick.yaml")
    assert result.returncode == 0, result.stderr
    counts = dict(line.split()[:2] for line in result.stdout.splitlines() if line.split()[:1] in
                  (["train"], ["prepare"], ["fetch"], ["report"]))
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    study = Study(config, root=REPO)
    combos = {(j.method, j.backbone) for j in study.jobs()}
    assert len(combos) >= len(config["methods"])  # every listed method runs on at least one backbone
    assert int(counts["train"]) == len(combos) * len(config["seeds"])
    assert counts["fetch"] == counts["prepare"] == counts["report"] == "1"


def _cli_run(spec, out, **kw):
    return subprocess.Popen([sys.executable, "-m", "specbench.cli", "run", "--spec", json.dumps(spec), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, **kw)


def test_killed_run_resumes_from_its_checkpoint_to_identical_metrics(tmp_path, spec_for):
    spec = spec_for("DirectSpecPlus", epochs=8, eval_step=2, checkpoint_every=1)
    reference = run(spec, tmp_path / "ref" / "runs" / "a.json")

    out = tmp_path / "results" / "runs" / "a.json"
    checkpoint = work_dir_for(out) / "checkpoint.pt"
    proc = _cli_run(spec, out)
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:  # wait for the first saved epoch
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)  # what a cluster pre-emption sends
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0, "the run finished before it could be killed; make it longer"
    assert "rerun the same command to resume" in stderr
    assert not out.exists() and checkpoint.exists()
    import torch
    killed_at = torch.load(checkpoint, weights_only=False)["epoch"]
    assert 1 <= killed_at < 8

    resumed = _cli_run(spec, out)
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    record = json.loads(out.read_text())
    assert [h["metrics"] for h in record["history"]] == [h["metrics"] for h in reference["history"]]
    assert [e["loss"] for e in record["epochs"]] == [e["loss"] for e in reference["epochs"]]
    assert not checkpoint.exists()


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path, spec_for):
    out = tmp_path / "runs" / "a.json"
    spec = spec_for("BPR", epochs=2)
    work = work_dir_for(out)
    work.mkdir(parents=True)
    import torch
    torch.save({"config_hash": "something-else", "epoch": 1}, work / "checkpoint.pt")
    record = run(spec, out)
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]


def test_parallel_jobs_use_separate_scratch_paths():
    paths = [Path(f"results/quick/runs/ml100k/mf/{m}/{s}.json") for m in ("BPR", "DirectSpecPlus") for s in (0, 1)]
    work = {work_dir_for(p) for p in paths}
    assert len(work) == len(paths)
    assert all(w.parts[:3] == ("results", "quick", ".work") for w in work)


def test_run_json_is_written_atomically(tmp_path, spec_for, monkeypatch):
    """A crash while writing leaves the old file (or none), never a truncated JSON."""
    import specbench.atomic_io as aio
    out = tmp_path / "runs" / "a.json"
    out.parent.mkdir(parents=True)
    out.write_text('{"old": true}')

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(aio.os, "fsync", boom)
    with pytest.raises(OSError):
        aio.atomic_write_text(out, "x" * 1000)
    assert out.read_text() == '{"old": true}'
    assert [p.name for p in out.parent.iterdir()] == ["a.json"]


def test_concurrent_jobs_in_one_folder_do_not_collide(tmp_path, spec_for):
    """Two real jobs at once in one working folder: both finish, and nothing shared is written
    (RecBole would otherwise create ./log, ./saved, ./log_tensorboard with 1-second names)."""
    outs = [tmp_path / "results" / "runs" / f"{m}.json" for m in ("BPR", "DirectSpecPlus")]
    procs = [_cli_run(spec_for(m, epochs=3), out, cwd=tmp_path) for m, out in zip(("BPR", "DirectSpecPlus"), outs)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
    for out in outs:
        assert json.loads(out.read_text())["final"]["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["runs"]


def test_gpu_out_of_memory_names_the_setting_to_lower(tmp_path, spec_for, monkeypatch):
    """An out-of-memory error in epoch 2 (raised as CUDA raises it) names the settings to lower and
    keeps epoch 1's checkpoint for the rerun; no run JSON."""
    import torch
    from specbench import plugins
    out = tmp_path / "results" / "runs" / "x.json"
    cls = plugins.get_model("BPR").cls
    epoch = {"now": 0}
    original = cls.calculate_loss

    def calculate_loss(self, interaction):
        if epoch["now"] == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, interaction)

    monkeypatch.setattr(cls, "on_epoch_start", lambda self, e: epoch.update(now=e), raising=False)
    monkeypatch.setattr(cls, "calculate_loss", calculate_loss)
    with pytest.raises(SpecbenchError) as err:
        run(spec_for("BPR", epochs=3, checkpoint_every=1), out)
    message = str(err.value)
    assert "GPU out of memory in ml100k_small/mf/BPR seed 0" in message
    assert "lower train_batch_size (now 512)" in message and "eval_scores_per_block" in message
    assert not out.exists()
    assert torch.load(work_dir_for(out) / "checkpoint.pt", weights_only=False)["epoch"] == 1


def test_snakemake_marks_a_diverged_job_failed_and_keeps_no_json(tmp_path):
    """A run that diverges inside a real `snakemake` job: the job fails, the log says why, no JSON."""
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    del config["tuning"]
    config.update(methods=["BPR"], backbones=["mf"], seeds=[0], restrict={}, new_models=False,
                  run_settings={**config["run_settings"], "epochs": 4, "learner": "sgd", "learning_rate": 1e30})
    path = tmp_path / "diverge.yaml"
    path.write_text(yaml.safe_dump(config))
    target = "results/quick/runs/ml100k/mf/BPR/0.json"
    result = subprocess.run([sys.executable, "-m", "snakemake", target, "-c1", "-s", str(REPO / "Snakefile"),
                             "--configfile", str(path)], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert result.returncode != 0
    assert "Error in rule train" in result.stdout + result.stderr
    assert not (tmp_path / target).exists()
    log = (tmp_path / "results" / "quick" / "logs" / "ml100k" / "mf" / "BPR" / "0.log").read_text()
    assert "training diverged" in log


def test_atomic_writes_get_the_permissions_of_a_plain_write(tmp_path):
    import specbench.atomic_io as aio
    aio.atomic_write_text(tmp_path / "atomic.txt", "x")
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode
