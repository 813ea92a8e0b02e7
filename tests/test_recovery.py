"""A run never loses finished work and never needs a hand to recover (README, "Reliability").

One test (or a few) per case of the issue "A run never loses finished work and never needs a
hand to recover": a corrupt checkpoint, an unwritable output, typos in config files, values that
pass the schemas but cannot work, litter left by killed writers, two copies of one job, and the
small messages. Real processes are killed where the case is about a killed process; each test
checks the message, that nothing finished is lost (metrics identical to an uninterrupted run) and
that nothing is left behind (no scratch folder, no temp file).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from specbench.errors import SpecbenchError
from specbench.run import run, work_dir_for
from tests.helpers import REPO, make_spec

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
EPOCHS = 6


def _spec(data_dir: Path) -> dict:
    """The run every test here interrupts: a checkpoint after every epoch, an evaluation every other."""
    return make_spec(data_dir, "DirectSpecPlus", epochs=EPOCHS, eval_step=2, checkpoint_every=1)


@pytest.fixture(scope="module")
def reference(ml100k_small, tmp_path_factory) -> dict:
    """The record of the run, uninterrupted."""
    return run(_spec(ml100k_small), tmp_path_factory.mktemp("reference") / "runs" / "a.json")


def _same_results(record: dict, reference: dict) -> None:
    assert [h["metrics"] for h in record["history"]] == [h["metrics"] for h in reference["history"]]
    assert [e["loss"] for e in record["epochs"]] == [e["loss"] for e in reference["epochs"]]
    assert record["per_user"] == reference["per_user"]


def _left_behind(root: Path) -> list[str]:
    """Scratch folders and temp files under ``root``: what a finished job must not leave."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name == ".work" or p.name.endswith(".tmp"))


# ---- real processes ----------------------------------------------------------------------------

# `specbench run` that stops for good in the middle of its Nth atomic write of a file named NAME
# (after the temp file is written, before the rename), having touched MARKER: the test SIGKILLs it.
KILL_IN_WRITE = r"""
import os, sys, time
name, nth, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
real_fsync, seen = os.fsync, [0]
def fsync(fd):
    try:
        base = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        base = ""
    if base.startswith(f".{name}.") and base.endswith(".tmp"):
        seen[0] += 1
        if seen[0] == nth:
            open(marker, "w").close()
            time.sleep(3600)
    return real_fsync(fd)
os.fsync = fsync
from specbench.cli import main
sys.exit(main(sys.argv[4:]))
"""

# `specbench run` that, once training has finished, touches MARKER and waits for the file GO before
# it writes the run JSON: the test changes the output folder in between.
PAUSE_AFTER_TRAINING = r"""
import os, sys, time
marker, go = sys.argv[1], sys.argv[2]
import specbench.run as r
real_fit = r.fit
def fit(*a, **k):
    result = real_fit(*a, **k)
    open(marker, "w").close()
    while not os.path.exists(go):
        time.sleep(0.05)
    return result
r.fit = fit
from specbench.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _run_args(spec: dict, out: Path) -> list[str]:
    return ["run", "--spec", json.dumps(spec), "--out", str(out)]


def _start(args: list[str], script: str | None = None, script_args=(), prefix=(), **kw) -> subprocess.Popen:
    command = [sys.executable, "-c", script, *map(str, script_args)] if script else \
        [sys.executable, "-m", "specbench.cli"]
    return subprocess.Popen([*prefix, *command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, **kw)


def _wait_for(ready, proc: subprocess.Popen | None = None, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not ready():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended (rc {proc.returncode}) before the test could act:\n{err[-3000:]}")
        if time.time() > deadline:
            pytest.fail("timed out waiting for the process")
        time.sleep(0.05)


def _kill(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.communicate(timeout=60)


def _killed_in_write(spec: dict, out: Path, name: str, nth: int, tmp: Path) -> None:
    """Run ``spec`` to ``out`` and SIGKILL it in the middle of its ``nth`` write of ``name``."""
    marker = tmp / f"in-write-{name}-{nth}"
    proc = _start(_run_args(spec, out), KILL_IN_WRITE, (name, nth, marker))
    _wait_for(marker.exists, proc)
    _kill(proc)


# ---- making a folder unwritable (we run as root, which ignores permission bits) -------------------

class Unwritable:
    """Makes folders unwritable to the runs a test starts: ``chattr +i`` where the filesystem has
    the immutable flag (root ignores mode bits, not that), else (or with $SPECBENCH_TEST_NO_CHATTR
    set) mode 0555 with the runs started as the user nobody (``prefix``). Every folder is made
    writable again at the end of the test."""

    NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

    def __init__(self, root: Path, data_dir: Path):
        self.locked: list[Path] = []
        probe = root / ".chattr-probe"
        probe.mkdir()
        self.chattr = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True)
        if os.environ.get("SPECBENCH_TEST_NO_CHATTR"):  # to try the fallback where chattr works
            self.chattr = False
        probe.rmdir()
        self.prefix: list[str] = []
        if self.chattr or os.geteuid() != 0:
            return
        self.prefix = self.NOBODY
        for folder in (root, data_dir):  # the run as nobody reads the data and writes under root
            for path in [folder, *folder.rglob("*")]:
                path.chmod(0o777 if path.is_dir() else 0o666)
            for parent in folder.parents:
                parent.chmod(parent.stat().st_mode | 0o111)
        if subprocess.run([*self.prefix, sys.executable, "-c", "import specbench"], capture_output=True).returncode:
            pytest.skip("no immutable flag on this filesystem and python cannot run as the user nobody")

    def lock(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self.chattr:
            subprocess.run(["chattr", "+i", str(folder)], check=True)
        else:
            folder.chmod(0o555)
        self.locked.append(folder)

    def unlock(self, folder: Path) -> None:
        if self.chattr:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o777)
        self.locked.remove(folder)

    def release_all(self) -> None:
        for folder in list(self.locked):
            self.unlock(folder)


@pytest.fixture
def unwritable(tmp_path, ml100k_small):
    u = Unwritable(tmp_path, ml100k_small)
    try:
        yield u
    finally:
        u.release_all()


# ---- 1. a corrupt checkpoint ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def killed_at_third_checkpoint(ml100k_small, tmp_path_factory) -> Path:
    """A results folder whose run was SIGKILLed while writing its third checkpoint: checkpoint.pt
    (epoch 2), checkpoint.previous.pt (epoch 1) and the temp file of the third."""
    root = tmp_path_factory.mktemp("killed")
    out = root / "results" / "runs" / "a.json"
    _killed_in_write(_spec(ml100k_small), out, "checkpoint.pt", 3, root)
    work = work_dir_for(out)
    assert sorted(p.name for p in work.iterdir() if not p.name.endswith(".tmp")) == \
        ["checkpoint.previous.pt", "checkpoint.pt", "lock"]
    assert len(list(work.glob(".checkpoint.pt.*.tmp"))) == 1
    return root


def _copy(killed: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the killed run's results folder: (its run JSON path, its scratch folder)."""
    shutil.copytree(killed / "results", tmp_path / "results")
    out = tmp_path / "results" / "runs" / "a.json"
    return out, work_dir_for(out)


CORRUPTIONS = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "garbage": lambda data: os.urandom(4096),
    "one byte changed": lambda data: data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:],
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_corrupt_checkpoint_is_moved_aside_and_the_run_resumes_from_the_previous_one(
        killed_at_third_checkpoint, ml100k_small, reference, tmp_path, caplog, corruption):
    out, work = _copy(killed_at_third_checkpoint, tmp_path)
    checkpoint = work / "checkpoint.pt"
    checkpoint.write_bytes(CORRUPTIONS[corruption](checkpoint.read_bytes()))
    record = run(_spec(ml100k_small), out)
    warning = next(r.getMessage() for r in caplog.records if "is unreadable" in r.getMessage())
    assert warning.startswith(f"checkpoint {checkpoint} is unreadable (")
    assert f"moved it to {checkpoint}.unreadable; resuming from the previous one, {work / 'checkpoint.previous.pt'}" \
        in warning
    _same_results(record, reference)
    assert json.loads(out.read_text())["history"] == record["history"]
    assert _left_behind(tmp_path) == []


def test_a_corrupt_checkpoint_is_named_on_stderr_and_the_rerun_succeeds(killed_at_third_checkpoint, ml100k_small,
                                                                        reference, tmp_path):
    """What a Snakemake retry sees: a warning naming the file, then a finished job (it used to fail
    forever with a raw torch traceback)."""
    out, work = _copy(killed_at_third_checkpoint, tmp_path)
    (work / "checkpoint.pt").write_bytes((work / "checkpoint.pt").read_bytes()[:5000])
    proc = _start(_run_args(_spec(ml100k_small), out))
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert f"specbench: warning: checkpoint {work / 'checkpoint.pt'} is unreadable" in stderr
    assert "Traceback" not in stderr
    _same_results(json.loads(out.read_text()), reference)
    assert _left_behind(tmp_path) == []


def test_when_every_checkpoint_is_unreadable_the_run_starts_from_scratch(killed_at_third_checkpoint, ml100k_small,
                                                                        reference, tmp_path, caplog):
    out, work = _copy(killed_at_third_checkpoint, tmp_path)
    (work / "checkpoint.pt").write_bytes(b"")
    (work / "checkpoint.previous.pt").write_bytes(b"not a checkpoint")
    record = run(_spec(ml100k_small), out)
    warnings = [r.getMessage() for r in caplog.records if "is unreadable" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].startswith(f"checkpoint {work / 'checkpoint.pt'} is unreadable (the file is empty)")
    assert warnings[1].endswith("; starting from scratch")
    _same_results(record, reference)
    assert _left_behind(tmp_path) == []


# ---- 2. an unwritable output ---------------------------------------------------------------------

def test_out_naming_an_existing_folder_fails_before_training(ml100k_small, tmp_path, monkeypatch):
    import specbench.run as run_module
    monkeypatch.setattr(run_module, "train_and_evaluate", lambda *a: pytest.fail("trained"))
    out = tmp_path / "results" / "runs" / "a.json"
    out.mkdir(parents=True)
    with pytest.raises(SpecbenchError, match=rf"the run JSON {out} is an existing folder: --out names the file "
                                             r"to write .*; nothing was trained"):
        run(_spec(ml100k_small), out)
    assert _left_behind(tmp_path) == []


def test_an_unwritable_run_folder_fails_before_training(ml100k_small, tmp_path, unwritable):
    out = tmp_path / "results" / "runs" / "a.json"
    unwritable.lock(out.parent)
    t0 = time.time()
    proc = _start(_run_args(_spec(ml100k_small), out), prefix=unwritable.prefix)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr
    assert f"specbench: error: cannot write the run JSON {out}: {out.parent} is not writable (PermissionError: " \
        in stderr
    assert "nothing was trained" in stderr and "Traceback" not in stderr
    assert time.time() - t0 < 120
    assert _left_behind(tmp_path) == [] and not out.exists()


@pytest.mark.parametrize("how", ["folder made unwritable", "--out made a folder"])
def test_a_finished_record_that_cannot_be_written_is_kept_and_the_rerun_writes_it(
        ml100k_small, reference, tmp_path, unwritable, monkeypatch, how):
    out = tmp_path / "results" / "runs" / "a.json"
    marker, go = tmp_path / "trained", tmp_path / "go"
    proc = _start(_run_args(_spec(ml100k_small), out), PAUSE_AFTER_TRAINING, (marker, go), prefix=unwritable.prefix)
    _wait_for(marker.exists, proc)
    if how == "folder made unwritable":
        unwritable.lock(out.parent)
    else:
        out.mkdir()
    go.touch()
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stderr
    error = "PermissionError" if how == "folder made unwritable" else "IsADirectoryError"
    kept = work_dir_for(out) / "record.json"
    assert f"specbench: error: training finished, but the run JSON {out} could not be written ({error}: " in stderr
    assert f"The finished record is kept in {kept}: rerun the same command" in stderr
    assert "Traceback" not in stderr
    _same_results(json.loads(kept.read_text()), reference)   # nothing finished is lost
    assert sorted(p.name for p in kept.parent.iterdir()) == ["record.json"]  # its checkpoints are superseded

    if how == "folder made unwritable":
        unwritable.unlock(out.parent)
    else:
        out.rmdir()
    import specbench.run as run_module
    monkeypatch.setattr(run_module, "train_and_evaluate", lambda *a: pytest.fail("trained again"))
    _same_results(run(_spec(ml100k_small), out), reference)
    _same_results(json.loads(out.read_text()), reference)
    assert _left_behind(tmp_path) == []


# ---- 3. typos in config files: `specbench run --study` (Snakemake's check: tests/test_reliability.py) --

def _study(tmp_path: Path, **changes) -> Path:
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    config.update(catalogue=str(REPO / "config" / "methods.yaml"), **changes)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _cli(capsys, *args) -> tuple[int, str]:
    from specbench.cli import main
    rc = main(list(map(str, args)))
    return rc, capsys.readouterr().err


def test_run_study_with_a_misspelt_study_key_fails_before_training(tmp_path, capsys):
    study = _study(tmp_path, run_setings={"epochs": 3})
    out = tmp_path / "results" / "runs" / "a.json"
    rc, err = _cli(capsys, "run", "--study", study, "--dataset", "ml100k", "--backbone", "mf", "--method", "BPR",
                   "--out", out)
    assert rc == 2
    assert "unknown key 'run_setings' (did you mean 'run_settings'?)" in err
    assert not (tmp_path / "results").exists()


def test_run_study_with_a_misspelt_catalogue_key_fails_before_training(tmp_path, capsys):
    text = (REPO / "config" / "methods.yaml").read_text()
    text = text.replace("    fixed: {merge: early}", "    fixd: {merge: early}")
    (tmp_path / "methods.yaml").write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "fixd:" in row)
    study = _study(tmp_path)
    config = yaml.safe_load(study.read_text())
    study.write_text(yaml.safe_dump({**config, "catalogue": str(tmp_path / "methods.yaml")}))
    rc, err = _cli(capsys, "run", "--study", study, "--dataset", "ml100k", "--backbone", "mf", "--method", "BPR",
                   "--out", tmp_path / "results" / "runs" / "a.json")
    assert rc == 2
    assert f"methods.yaml, line {line}: methods.BSPM: unknown key 'fixd' (did you mean 'fixed'?)" in err
    assert not (tmp_path / "results").exists()


# ---- 4. values that pass the schemas but cannot work ----------------------------------------------

@pytest.mark.parametrize("text,expected", [
    (".nan", "alpha = nan is not allowed: expected a finite number"),
    (".inf", "alpha = inf is not allowed: expected a finite number"),
    ("nan", "alpha = nan is not allowed: expected a finite number"),
    ("-.inf", "alpha = -inf is not allowed: expected number >= 0"),  # the schema's own check
])
def test_a_number_that_is_not_finite_is_refused_before_training(ml100k_small, tmp_path, capsys, text, expected):
    out = tmp_path / "results" / "runs" / "a.json"
    rc, err = _cli(capsys, *_run_args(_spec(ml100k_small), out), "--set", f"alpha={text}")
    assert rc == 2
    assert expected in err
    assert "diverged" not in err and not (tmp_path / "results").exists()


def test_an_infinite_number_in_a_spec_is_refused(ml100k_small, tmp_path):
    with pytest.raises(SpecbenchError, match=r"tau = inf is not allowed: expected a finite number"):
        run(make_spec(ml100k_small, "DirectSpecPlus", tau=float("inf")), tmp_path / "runs" / "a.json")


def test_an_embedding_table_too_big_for_memory_is_refused_before_it_is_built(ml100k_small, tmp_path):
    out = tmp_path / "results" / "runs" / "a.json"
    with pytest.raises(SpecbenchError) as err:
        run(make_spec(ml100k_small, "BPR", embedding_size=100_000_000), out)
    message = str(err.value)
    assert message.startswith("ml100k_small/mf/BPR seed 0 cannot fit in memory on cpu: it needs at least ")
    assert "embedding tables of " in message and " x embedding_size 100000000 in float32" in message
    assert re.search(r"but [\d,]+ bytes \([\d,.]+ GiB\) are available \(", message)
    assert message.endswith("Lower embedding_size (now 100000000).")
    assert len(message.splitlines()) == 1
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("changes,named", [
    ({"eval_scores_per_block": 10**12}, "eval_scores_per_block (now 1000000000000)"),
    ({"train_batch_size": 810128}, "train_batch_size (now 810128)"),
    ({"embedding_size": 10**6}, "embedding_size (now 1000000)"),
])
def test_the_memory_estimate_names_the_setting_to_lower(changes, named):
    import torch
    from specbench.harness import check_memory, memory_estimate
    settings = {"embedding_size": 64, "train_batch_size": 2048, "eval_scores_per_block": 2**24, "learner": "adam",
                **changes}
    counts = (29859, 40982, 29858, 810128)  # Gowalla as RecBole counts it (padding user and item)
    total = sum(b for _, b, _ in memory_estimate(settings, *counts))
    with pytest.raises(SpecbenchError, match=rf"needs at least {total:,} bytes .*Lower {re.escape(named)}\.$"):
        check_memory("gowalla/mf/X seed 0", torch.device("cuda"), settings, counts, available=(total - 1, "test"))
    check_memory("gowalla/mf/X seed 0", torch.device("cuda"), settings, counts, available=(total, "test"))


def test_available_memory_on_cuda_counts_what_torch_holds_unused(monkeypatch):
    import torch
    from specbench.harness import available_memory
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * 2**30, 80 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2**30)
    assert available_memory(torch.device("cuda:0")) == (12 * 2**30, "free on cuda:0 (torch.cuda.mem_get_info)")
    free, source = available_memory(torch.device("cpu"))
    assert free > 0 and ("MemAvailable" in source or "cgroup" in source or "ulimit" in source)


@pytest.mark.parametrize("study_file,limit", [("quick.yaml", 2 * 2**30), ("paper.yaml", 80 * 10**9)])
def test_the_memory_estimate_accepts_every_run_of_the_real_studies(study_file, limit):
    """Every test run and tuning trial of the quick study fits in 2 GiB (CPU) and of the paper grid
    in an 80-GB GPU, at the datasets' real sizes (config/datasets.yaml)."""
    from specbench.harness import memory_estimate
    from specbench.study import Study
    study = Study(yaml.safe_load((REPO / "config" / study_file).read_text()), root=REPO)
    catalogue = yaml.safe_load((REPO / "config" / "datasets.yaml").read_text())["datasets"]
    checked = 0
    for key in sorted({(j.dataset, j.backbone, j.method) for j in study.jobs()}):
        space = catalogue[key[0]].get("id_space") or catalogue[key[0]]["expect"]
        rows = sum(f["rows"] or 10**6 for f in catalogue[key[0]]["files"].values())
        trials = [study.settings(*key, trial=True)] if study.is_tuned(key[2]) else []
        for settings in [study.settings(*key)] + trials:
            parts = memory_estimate(settings, space["users"] + 1, space["items"] + 1, space["users"], rows)
            assert sum(b for _, b, _ in parts) < limit, (key, parts)
            checked += 1
    assert checked >= len(study.methods)


# ---- 5. litter -----------------------------------------------------------------------------------

def test_a_json_write_killed_midway_leaves_nothing_after_the_rerun(ml100k_small, reference, tmp_path, caplog):
    out = tmp_path / "results" / "runs" / "a.json"
    _killed_in_write(_spec(ml100k_small), out, out.name, 1, tmp_path)
    [stale] = out.parent.glob(".a.json.*.tmp")  # what SIGKILL leaves, as any atomic writer would
    assert stale.stat().st_mode & 0o777 == 0o600 and not out.exists()
    record = run(_spec(ml100k_small), out)  # the retry
    assert f"removed {stale}, left by a run that was killed while writing it" in caplog.text
    _same_results(record, reference)
    assert sorted(p.name for p in out.parent.iterdir()) == ["a.json"]
    assert _left_behind(tmp_path) == []


def test_a_checkpoint_write_killed_midway_keeps_the_one_before(killed_at_third_checkpoint, ml100k_small, reference,
                                                               tmp_path, caplog):
    out, work = _copy(killed_at_third_checkpoint, tmp_path)
    [stale] = work.glob(".checkpoint.pt.*.tmp")
    from specbench.checkpoint import read_state
    assert read_state(work / "checkpoint.pt")["epoch"] == 2
    assert read_state(work / "checkpoint.previous.pt")["epoch"] == 1
    record = run(_spec(ml100k_small), out)
    assert f"removed {stale}" in caplog.text and "unreadable" not in caplog.text
    _same_results(record, reference)
    assert _left_behind(tmp_path) == []


@pytest.mark.parametrize("fail_at_epoch,kept", [(1, False), (2, True)])
def test_an_unexpected_error_leaves_no_empty_scratch_folder(ml100k_small, tmp_path, monkeypatch, fail_at_epoch, kept):
    """A plugin's own error (not a SpecbenchError) propagates as it is; the scratch folder is kept
    only if it holds a checkpoint to resume from, and the folders the run made are removed."""
    from specbench import plugins
    cls = plugins.get_model("BPR").cls
    epoch = {"now": 0}
    original = cls.calculate_loss

    def calculate_loss(self, interaction):
        if epoch["now"] == fail_at_epoch:
            raise RuntimeError("a bug in the plugin")
        return original(self, interaction)

    monkeypatch.setattr(cls, "on_epoch_start", lambda self, e: epoch.update(now=e), raising=False)
    monkeypatch.setattr(cls, "calculate_loss", calculate_loss)
    out = tmp_path / "results" / "runs" / "a.json"
    with pytest.raises(RuntimeError, match="a bug in the plugin"):
        run(make_spec(ml100k_small, "BPR", epochs=3, checkpoint_every=1), out)
    if kept:
        assert sorted(p.name for p in work_dir_for(out).iterdir()) == ["checkpoint.pt"]
    else:
        assert not (tmp_path / "results").exists()


# ---- 6. two copies of one job --------------------------------------------------------------------

def _holder(lock: Path) -> int | None:
    try:
        text = lock.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def test_a_second_copy_of_a_running_job_refuses_and_a_rerun_after_its_death_resumes(ml100k_small, reference,
                                                                                     tmp_path):
    out = tmp_path / "results" / "runs" / "a.json"
    lock = work_dir_for(out) / "lock"
    first = _start(_run_args(_spec(ml100k_small), out))
    _wait_for(lambda: (work_dir_for(out) / "checkpoint.pt").exists(), first)
    first.send_signal(signal.SIGSTOP)  # holds its lock, does nothing: the second copy meets it for sure
    try:
        assert _holder(lock) == first.pid
        second = _start(_run_args(_spec(ml100k_small), out))
        _, stderr = second.communicate(timeout=300)
        assert second.returncode == 2, stderr
        assert f"specbench: error: another specbench run (PID {first.pid}) holds {lock}: it is running this job " \
            f"({out}) now" in stderr
        assert (work_dir_for(out) / "checkpoint.pt").exists() and not out.exists()  # the second touched nothing
    finally:
        _kill(first)  # SIGKILL: the kernel releases its lock
    assert lock.exists()
    _same_results(run(_spec(ml100k_small), out), reference)  # the retry resumes: nothing stands in its way
    assert _left_behind(tmp_path) == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_killing_snakemake_leaves_its_job_running_and_a_second_snakemake_does_not_start_a_copy(tmp_path):
    config = yaml.safe_load((REPO / "config" / "quick.yaml").read_text())
    del config["tuning"]
    config.update(methods=["BPR"], backbones=["mf"], seeds=[0], restrict={}, new_models=False,
                  run_settings={**config["run_settings"], "epochs": 4, "eval_step": 2})
    configfile = tmp_path / "one.yaml"
    configfile.write_text(yaml.safe_dump(config))
    target = f"results/{config['study']}/runs/ml100k/mf/BPR/0.json"
    snakemake = [sys.executable, "-m", "snakemake", "-c1", "-s", str(REPO / "Snakefile"),
                 "--configfile", str(configfile)]
    lock = tmp_path / work_dir_for(Path(target)) / "lock"
    log = tmp_path / f"results/{config['study']}/logs/ml100k/mf/BPR/0.log"

    first = subprocess.Popen([*snakemake, "--", target], cwd=tmp_path, env=ENV, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: _holder(lock) is not None, first, timeout=600)  # data fetched and prepared, job running
    job = _holder(lock)
    os.kill(job, signal.SIGSTOP)  # the job must outlive what follows, however slow this machine is
    try:
        first.kill()  # SIGKILL snakemake itself: its job goes on
        first.wait(timeout=60)
        assert _alive(job)
        unlock = subprocess.run([*snakemake, "--unlock", "--", target], cwd=tmp_path, env=ENV, capture_output=True,
                                text=True)
        assert unlock.returncode == 0, unlock.stderr
        second = subprocess.run([*snakemake, "--", target], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                                timeout=600)
        assert second.returncode != 0
        assert "Error in rule train" in second.stdout + second.stderr
        assert f"another specbench run (PID {job}) holds {work_dir_for(Path(target)) / 'lock'}" in log.read_text()
    finally:
        os.kill(job, signal.SIGCONT)
    deadline = time.time() + 600
    while _alive(job) and time.time() < deadline:  # the first copy finishes its job
        time.sleep(0.2)
    record = json.loads((tmp_path / target).read_text())
    assert record["final"]["epoch"] == 4 and [e["epoch"] for e in record["epochs"]] == [1, 2, 3, 4]
    assert _left_behind(tmp_path / "results") == []


# ---- 7. the small messages -----------------------------------------------------------------------

def _with_a_tab(tmp_path: Path) -> tuple[Path, int]:
    lines = (REPO / "config" / "quick.yaml").read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if line.startswith("  embedding_size"))
    lines[n] = "\t" + lines[n].lstrip()
    path = tmp_path / "tab.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, n + 1


def test_a_tab_in_a_study_file_is_named_with_file_and_line(tmp_path, capsys):
    path, line = _with_a_tab(tmp_path)
    for command in ("run", "explain"):
        extra = ["--out", tmp_path / "results" / "runs" / "a.json"] if command == "run" else []
        rc, err = _cli(capsys, command, "--study", path, "--dataset", "ml100k", "--backbone", "mf", "--method",
                       "BPR", *extra)
        assert rc == 2
        assert f"{path}, line {line}, column 1: found character '\\t' that cannot start any token " \
               "(a TAB: YAML indents with spaces only)" in err
    assert not (tmp_path / "results").exists()


def test_snakemake_reads_its_configfile_itself_and_names_neither_file_nor_line_for_a_tab(tmp_path):
    """What the README says a user sees: Snakemake parses --configfile before the Snakefile runs, so
    its own message stands (the Snakefile cannot check the file first)."""
    path, _ = _with_a_tab(tmp_path)
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"),
                             "--configfile", str(path)], cwd=tmp_path, capture_output=True, text=True, env=ENV)
    assert result.returncode != 0
    assert "Config file is not valid JSON or YAML" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_a_target_after_configfile_is_read_as_a_config_file(tmp_path):
    """The README's advice: targets before --configfile, or after `--`."""
    target = "results/quick/runs/ml100k/mf/BPR/0.json"
    base = [sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile")]
    after = subprocess.run([*base, "--configfile", str(REPO / "config" / "quick.yaml"), target], cwd=tmp_path,
                           capture_output=True, text=True, env=ENV)
    assert after.returncode != 0 and f"No such file or directory: '{target}'" in after.stdout + after.stderr
    for args in ([target, "--configfile", str(REPO / "config" / "quick.yaml")],
                 ["--configfile", str(REPO / "config" / "quick.yaml"), "--", target]):
        result = subprocess.run([*base, *args], cwd=tmp_path, capture_output=True, text=True, env=ENV)
        assert result.returncode == 0, result.stdout + result.stderr


def test_a_misspelt_dataset_gets_a_suggestion_not_a_target_that_fails(ml100k_small, tmp_path):
    spec = {**make_spec(ml100k_small, "BPR"), "dataset": "ml100"}
    with pytest.raises(SpecbenchError) as err:
        run(spec, tmp_path / "results" / "runs" / "a.json")
    message = str(err.value)
    assert f"dataset 'ml100' is not prepared: missing {ml100k_small}/ml100/ml100.train.inter" in message
    assert "'ml100' is not in config/datasets.yaml and not prepared in" in message
    assert "(did you mean 'ml100k'?)" in message and "snakemake" not in message
    assert not (tmp_path / "results").exists()
    spec = {**make_spec(ml100k_small, "BPR"), "dataset": "citeulike"}  # catalogued, not prepared here
    with pytest.raises(SpecbenchError, match=rf"Run `snakemake {ml100k_small}/citeulike/stats.json` first"):
        run(spec, tmp_path / "results" / "runs" / "a.json")


def test_a_bad_item_of_a_list_setting_is_described_by_its_own_rule(ml100k_small, tmp_path):
    with pytest.raises(SpecbenchError, match=r"topk\[0\] = 0 is not allowed: expected integer >= 1"):
        run(make_spec(ml100k_small, "BPR", topk=[0]), tmp_path / "runs" / "a.json")


def test_ctrl_c_says_what_is_kept_not_an_empty_pair_of_brackets(ml100k_small, tmp_path, capsys, monkeypatch):
    import specbench.run as run_module

    def interrupted(*a, **k):
        raise KeyboardInterrupt  # what Python raises on Ctrl-C: no message

    monkeypatch.setattr(run_module, "fit", interrupted)
    out = tmp_path / "results" / "runs" / "a.json"
    rc, err = _cli(capsys, *_run_args(_spec(ml100k_small), out))
    assert rc == 130
    assert err.strip() == ("specbench: interrupted (Ctrl-C (SIGINT); no checkpoint was saved yet, so a rerun starts "
                           "from the beginning); rerun the same command to resume")
    assert not (tmp_path / "results").exists()
