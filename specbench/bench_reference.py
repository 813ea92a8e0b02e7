"""Our training step against the authors' scripts, side by side (`make bench REFERENCE=<checkout>`).

Speed claims against the reference code (github.com/tanatosuu/directspec) are only worth something when
both run on the same machine under the same load. For each dataset and each script this module times
the authors' own file and our harness on the same row of ``specbench.bench.VARIANTS``, at the settings
our catalogue publishes for that row (so the same learning rate, batch, α, τ or τ0/τ1, shrink_norm, reg,
embedding size), for the same number of training steps, in alternating fresh processes (reference,
ours, ours, reference, ...: ``rounds`` of each), and records seconds per step, seconds per epoch
(floor(|train| / B) steps, as both count it) and the ratio reference / ours.

The authors' scripts are run unmodified from the checkout: a small driver (``--child``) executes the
file with ``runpy`` in a scratch folder holding ``<dataset>/train.csv`` and ``test.csv`` (written from
our prepared atomic files, which keep the authors' ids and row order), and

- on a CPU maps ``.cuda()`` to a no-op (the scripts call it on every tensor they make);
- counts ``Tensor.backward`` calls (one per training step in every script) and takes the clock after
  the ``warmup``-th and the ``warmup + steps``-th, synchronising a GPU first; then it prints the timing
  and ends the process, so the script's 50 to 390 epochs never run.

``directspec_gcn.py`` loads a dense propagation matrix ``<dataset>/L_3_80.npy``, which the checkout's
``store_graph_adj.py`` computes (it writes ``adj_store.npy``: I + Ã + Ã² + Ã³). The driver runs that
script once per dataset and folder (timed apart, ``graph_seconds``) and links its output under the name
the training script reads. Both need about three dense (|U| + |I|)² float32 matrices; where that exceeds
the memory available the row is recorded as ``not timed: memory`` with the numbers, before anything runs.

Output: ``results/bench/reference-<device kind>-<host>.json`` (rewritten after every row).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TIMED, FAILED, MEMORY = "timed", "failed", "not timed: memory"


@dataclass(frozen=True)
class Script:
    """One of the authors' training scripts and the bench row (``specbench.bench.VARIANTS``) it is timed against."""
    file: str
    variant: str
    adaptive: bool = False
    graph: bool = False  # needs the dense propagation matrix of store_graph_adj.py


SCRIPTS = (
    Script("directspec_mf.py", "mf"),
    Script("directspec_mf_adaptive.py", "mf-adaptive", adaptive=True),
    Script("directspec_gcn.py", "lightgcn", graph=True),
)
WARMUP_STEPS = 10  # untimed steps first, on both sides (specbench.bench's probe is the warm-up of a --steps unit)
GRAPH_SCRIPT, GRAPH_FILE, GRAPH_OUTPUT = "store_graph_adj.py", "L_3_80.npy", "adj_store.npy"
DENSE_COPIES = 3  # the graph script holds the adjacency, its power and the sum at once


def script_args(dataset: str, script: Script, settings: dict) -> list[str]:
    """The command-line flags of the authors' script for our resolved settings of its bench row."""
    args = ["--dataset", dataset, "--embedding_size", str(settings["embedding_size"]),
            "--lr", repr(float(settings["learning_rate"])), "--batch_size", str(settings["train_batch_size"]),
            "--alpha", repr(float(settings["alpha"])), "--shrink_norm", repr(float(settings["shrink_norm"] or 0.0)),
            "--reg", repr(float(settings.get("reg") or 0.0))]
    if script.adaptive:
        return args + ["--tau_0", repr(float(settings["tau0"])), "--tau_1", repr(float(settings["tau1"]))]
    return args + ["--tau", repr(float(settings["tau"]))]


def write_reference_csv(data_dir: Path, dataset: str, folder: Path) -> dict:
    """``folder/<dataset>/{train,test}.csv`` (header ``user,item``) from our atomic files; the row counts and
    the id space (largest id + 1: the scripts index dense tables by the authors' 0-based ids)."""
    from specbench.data import read_recbole_inter
    out, counts, largest = folder / dataset, {}, {"user": -1, "item": -1}
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        frame = read_recbole_inter(data_dir / dataset / f"{dataset}.{split}.inter").astype(int)
        frame.to_csv(out / f"{split}.csv", index=False)
        counts[split] = len(frame)
        largest = {k: max(largest[k], int(frame[k].max())) for k in largest}
    return {**counts, "users": largest["user"] + 1, "items": largest["item"] + 1}


def dense_bytes(n_nodes: int) -> int:
    return DENSE_COPIES * n_nodes * n_nodes * 4


def available_bytes(device: str) -> int:
    """Free memory where the dense matrices would live: the GPU's, else MemAvailable of /proc/meminfo."""
    if device.startswith("cuda"):
        import torch
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def reference_commit(reference: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(reference), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the child: one of the authors' scripts, stopped after warmup + steps training steps ----------

def run_child(script: Path, script_argv: list[str], steps: int, warmup: int, device: str) -> None:
    """Execute ``script`` here (cwd holds its data), print its timing as JSON and end the process there."""
    import runpy

    import torch
    t_start = time.perf_counter()
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(torch.device(device))
    else:
        _cuda_as_identity(torch)
    backward, calls, clock = torch.Tensor.backward, [0], {}

    def timed_backward(self, *a, **k):
        result = backward(self, *a, **k)
        calls[0] += 1
        if calls[0] in (1, warmup, warmup + steps):
            if cuda:
                torch.cuda.synchronize()
            clock[calls[0]] = time.perf_counter()
        if calls[0] == warmup + steps:
            out = {"status": TIMED, "steps": steps, "warmup_steps": warmup,
                   "seconds_per_step": (clock[warmup + steps] - clock[warmup]) / steps,
                   "setup_seconds": clock[1] - t_start, "torch_threads": torch.get_num_threads(),
                   "peak_gpu_bytes": torch.cuda.max_memory_allocated() if cuda else None,
                   "peak_rss_bytes": _peak_rss()}
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
            os._exit(0)
        return result

    torch.Tensor.backward = timed_backward
    sys.argv = [str(script), *script_argv]
    runpy.run_path(str(script), run_name="__main__")
    raise SystemExit(f"{script.name} ended after {calls[0]} training steps, before {warmup + steps}")


def _cuda_as_identity(torch) -> None:
    """The scripts put every tensor (and module) on the GPU with ``.cuda()``; on a CPU that is the identity."""
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self


def _peak_rss() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---- the parent: rows, rounds, the record ----------------------------------------------------------

def _last_json(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def time_reference(script: Path, argv: list[str], folder: Path, steps: int, device: str) -> dict:
    cmd = [sys.executable, "-m", "specbench.bench_reference", "--child", str(script), "--steps", str(steps),
           "--device", device, "--", *argv]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    got = _last_json(done.stdout) if done.returncode == 0 else None
    return got or {"status": FAILED, "returncode": done.returncode, "error": done.stderr[-3000:]}


def time_ours(dataset: str, variant: str, data_dir: Path, steps: int, device: str) -> dict:
    cmd = [sys.executable, "-m", "specbench.bench", "--one", dataset, variant, "--data-dir", str(data_dir),
           "--device", device, "--repeats", "1", "--steps", str(steps)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    got = _last_json(done.stdout) if done.returncode == 0 else None
    if not got:
        return {"status": FAILED, "returncode": done.returncode, "error": done.stderr[-3000:]}
    return {"status": TIMED, "steps": got["timed_steps"], "warmup_steps": WARMUP_STEPS,
            "seconds_per_step": got["seconds_per_step_all"][0], "steps_per_epoch": got["steps_per_epoch"],
            "setup_seconds": got["import_seconds"] + got["build_seconds"], "peak_rss_bytes": got["peak_rss_bytes"],
            "peak_gpu_bytes": got.get("peak_gpu_bytes")}


def prepare_graph(reference: Path, dataset: str, folder: Path, device: str) -> dict:
    """Run the checkout's store_graph_adj.py once in ``folder`` and link its matrix as the file the GCN reads."""
    target = folder / dataset / GRAPH_FILE
    if target.exists():
        return {"graph_seconds": None, "graph_cached": True}
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "specbench.bench_reference", "--child", str(reference / GRAPH_SCRIPT), "--steps", "0",
           "--device", device, "--", "--dataset", dataset, "--layer", "3"]
    done = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    made = folder / dataset / GRAPH_OUTPUT
    if not made.exists():
        raise RuntimeError(f"{GRAPH_SCRIPT} wrote no {made}: {done.stderr[-2000:]}")
    target.symlink_to(made.name)
    return {"graph_seconds": time.perf_counter() - t0, "graph_cached": False}


def bench_reference(reference: Path, datasets: list[str], data_dir: Path, device: str, steps: int, rounds: int,
                    work: Path, on_row=None) -> list[dict]:
    """Every (dataset, script) row: ``rounds`` alternating timings of the reference and of ours; the rows."""
    from specbench.bench import VARIANTS, check_prepared, variant_spec
    from specbench.errors import SpecbenchError
    from specbench.settings import resolve
    reference = Path(reference).resolve()
    missing = [s.file for s in SCRIPTS if not (reference / s.file).is_file()]
    if missing or not (reference / GRAPH_SCRIPT).is_file():
        raise SpecbenchError(f"REFERENCE={reference}: no {', '.join(missing + [GRAPH_SCRIPT])}; expected a checkout "
                             "of github.com/tanatosuu/directspec")
    check_prepared(datasets, data_dir)
    args = {}  # every row's flags first: a dataset without published settings stops before any timing
    for dataset, script in itertools.product(datasets, SCRIPTS):
        settings = resolve(variant_spec(dataset, script.variant, data_dir, device)).settings
        unset = [k for k in (("tau0", "tau1") if script.adaptive else ("tau",)) + ("alpha", "learning_rate")
                 if settings.get(k) is None]
        if unset:
            method = VARIANTS[script.variant][0]
            raise SpecbenchError(f"{dataset}: no {', '.join(unset)} for {method} (config/methods.yaml presets) to give "
                                 f"{script.file}; the reference is timed at published settings only")
        args[dataset, script] = script_args(dataset, script, settings)
    rows = []
    for dataset in datasets:
        folder = work / dataset
        counts = write_reference_csv(data_dir, dataset, folder)
        for script in SCRIPTS:
            row = {"dataset": dataset, "script": script.file, "variant": script.variant,
                   "script_sha256": sha256(reference / script.file), "train_rows": counts["train"],
                   "args": args[dataset, script]}
            if script.graph:
                need, have = dense_bytes(counts["users"] + counts["items"]), available_bytes(device)
                row.update(dense_bytes_needed=need, bytes_available=have)
                if need > have:
                    rows.append({**row, "status": MEMORY})
                    _report(rows[-1], on_row, rows)
                    continue
                try:
                    row.update(prepare_graph(reference, dataset, folder, device))
                except RuntimeError as exc:
                    rows.append({**row, "status": FAILED, "error": str(exc)})
                    _report(rows[-1], on_row, rows)
                    continue
            timings = {"reference": [], "ours": []}
            for r in range(rounds):
                for side in (("reference", "ours") if r % 2 == 0 else ("ours", "reference")):
                    got = (time_reference(reference / script.file, row["args"], folder, steps, device)
                           if side == "reference" else time_ours(dataset, script.variant, data_dir, steps, device))
                    timings[side].append(got)
            rows.append({**row, **summarise(timings)})
            _report(rows[-1], on_row, rows)
    return rows


def summarise(timings: dict[str, list[dict]]) -> dict:
    """Median seconds per step of each side, seconds per epoch, and reference / ours."""
    failed = [t for side in timings.values() for t in side if t.get("status") != TIMED]
    out = {"rounds": timings}
    if failed:
        return {**out, "status": FAILED, "error": failed[0].get("error")}
    per_step = {side: float(np.median([t["seconds_per_step"] for t in ts])) for side, ts in timings.items()}
    epoch_steps = timings["ours"][0]["steps_per_epoch"]
    return {**out, "status": TIMED, "steps": timings["ours"][0]["steps"], "steps_per_epoch": epoch_steps,
            "reference_seconds_per_step": per_step["reference"], "ours_seconds_per_step": per_step["ours"],
            "reference_seconds_per_epoch": per_step["reference"] * epoch_steps,
            "ours_seconds_per_epoch": per_step["ours"] * epoch_steps,
            "reference_over_ours": per_step["reference"] / per_step["ours"]}


def _report(row: dict, on_row, rows) -> None:
    head = f"{row['dataset']:10s} {row['script']:28s}"
    if row["status"] == TIMED:
        print(f"{head} reference {row['reference_seconds_per_step'] * 1e3:8.2f} ms/step, ours "
              f"{row['ours_seconds_per_step'] * 1e3:8.2f} ms/step: reference / ours = {row['reference_over_ours']:.1f}",
              flush=True)
    elif row["status"] == MEMORY:
        print(f"{head} {MEMORY}: needs {row['dense_bytes_needed'] / 2**30:.1f} GiB dense, "
              f"{row['bytes_available'] / 2**30:.1f} GiB available", flush=True)
    else:
        print(f"{head} failed: {(row.get('error') or '').strip().splitlines()[-1:]}", flush=True)
    if on_row:
        on_row(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="specbench.bench_reference", description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, help="a checkout of github.com/tanatosuu/directspec")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--datasets", nargs="+", default=["citeulike", "gowalla"])
    ap.add_argument("--steps", type=int, default=50, help="timed training steps per process")
    ap.add_argument("--rounds", type=int, default=2, help="processes per side, alternating")
    ap.add_argument("--data-dir", type=Path, default=ROOT / "data" / "atomic")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder for the reference's data (kept: the "
                                                              "dense graph is reused); default a temporary one")
    ap.add_argument("--out", type=Path, default=None, help="default: results/bench/reference-<device kind>-<host>.json")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
        if args.steps == 0:  # a preparation script (store_graph_adj.py): run it through, CPU-mapped
            return _run_plain(args.child, rest, args.device)
        run_child(args.child, rest, args.steps, WARMUP_STEPS, args.device)
    if not args.reference:
        ap.error("--reference is required")
    return _main_bench(args)


def _run_plain(script: Path, argv: list[str], device: str) -> int:
    import runpy

    import torch
    if not device.startswith("cuda"):
        _cuda_as_identity(torch)
    sys.argv = [str(script), *argv]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def _main_bench(args) -> int:
    from datetime import datetime, timezone

    from specbench.atomic_io import atomic_write_text
    from specbench.bench import device_kind, hardware
    info = hardware(args.device)
    out = args.out or ROOT / "results" / "bench" / f"reference-{device_kind(info)}-{info['host']}.json"
    started = time.time()
    record = {"schema": 1, "what": "seconds per training step of the authors' scripts (tanatosuu/directspec) and of "
                                   "ours on the same bench row, same settings and steps, alternating processes",
              "reference": {"path": str(Path(args.reference).resolve()), "commit": reference_commit(args.reference)},
              "hardware": info, "options": {"steps": args.steps, "warmup": WARMUP_STEPS, "rounds": args.rounds,
                                            "datasets": args.datasets},
              "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
              "load_average_before": os.getloadavg()}

    def write(rows) -> None:
        atomic_write_text(out, json.dumps({**record, "wall_seconds": time.time() - started,
                                           "load_average_after": os.getloadavg(), "results": rows}, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="specbench-reference-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        rows = bench_reference(args.reference, args.datasets, args.data_dir, args.device, args.steps, args.rounds,
                               work, on_row=write)
    write(rows)
    print(f"wrote {out}")
    return 1 if any(r["status"] == FAILED for r in rows) else 0


def _main() -> int:
    from specbench.errors import SpecbenchError
    try:
        return main()
    except SpecbenchError as exc:
        print(f"specbench.bench_reference: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(_main())
