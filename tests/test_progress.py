"""A run shows progress from its start: a line when training starts, one per epoch with loss, seconds
and ETA, one per evaluation with metrics; heartbeats inside a long epoch; --quiet prints none."""

import io
import json
import re
import subprocess
import sys

from specbench.progress import Progress
from tests.conftest import REPO


def test_specbench_run_logs_every_epoch_and_evaluation(spec_for, tmp_path):
    spec = spec_for("BPR", epochs=3, eval_step=2)
    out = tmp_path / "runs" / "r.json"
    done = subprocess.run([sys.executable, "-m", "specbench.cli", "run", "--spec", json.dumps(spec), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("[")]
    assert re.search(r"ml100k_small/mf/BPR, seed 0: epochs 1\.\.3 of \d+ steps on cpu$", lines[0])
    epochs = [line for line in lines if re.search(r"\] epoch \d/3: loss", line)]
    assert [re.search(r"epoch (\d)/3", line).group(1) for line in epochs] == ["1", "2", "3"]
    assert all(re.search(r"loss \d+\.\d{6}, \d+\.\d\d s, ETA \d+:\d\d:\d\d$", line) for line in epochs)
    assert epochs[-1].endswith("ETA 0:00:00")
    evals = [line for line in lines if "evaluation at epoch" in line]
    assert [re.search(r"epoch (\d+):", line).group(1) for line in evals] == ["0", "2", "3"]  # start, eval_step, last
    record = json.loads(out.read_text())
    assert f"ndcg@20 {record['final']['metrics']['ndcg@20']:.4f}" in evals[-1]
    # the first line comes before any epoch ends: progress is visible within the first epoch
    assert lines.index(epochs[0]) > 0 and "evaluation at epoch 0" in lines[1]


def test_quiet_prints_no_progress(spec_for, tmp_path):
    spec = spec_for("BPR", epochs=1)
    done = subprocess.run([sys.executable, "-m", "specbench.cli", "run", "--quiet", "--spec", json.dumps(spec),
                           "--out", str(tmp_path / "runs" / "q.json")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert not [line for line in done.stderr.splitlines() if line.startswith("[")]


def test_a_long_epoch_gets_heartbeats_with_an_eta(monkeypatch):
    import specbench.progress as progress
    clock = iter(range(0, 1000, 20))  # each perf_counter call: 20 s later
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    stream = io.StringIO()
    shown = Progress("d/mf/M, seed 0", epochs=2, steps=100, stream=stream)
    on_step = shown.epoch_started(1)
    for step in range(1, 6):
        on_step(step)
    beats = [line for line in stream.getvalue().splitlines() if "step " in line]
    assert beats and re.search(r"epoch 1/2: step \d+/100 \([\d.]+ steps/s, epoch ETA \d+:\d\d:\d\d\)$", beats[0])
