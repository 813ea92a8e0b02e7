"""How long will a study take? (`specbench estimate --configfile <study>`)

From bench records (``make bench``: seconds per epoch, per evaluation, process start and setup of every
method x backbone on one device, results/bench/*.json) and a study's budgets (trials, maximum epochs,
seeds, sweeps), the wall time of the study's training jobs on ``cores`` parallel slots, as Snakemake
would run them: one job per tuning worker of each search (its trials one after another in one process,
the dataset built once), one per test run (a tuned one after its search), one per sweep point and seed.

Two figures per device:

- **upper bound**: every trial runs to ``max_epochs`` and every tuned test run to ``max_epochs``;
- **expected**: trials train the fraction of ``max_epochs`` that the trials of a committed search of the
  same (method, backbone) trained (early stopping and pruning, ``trials.csv`` of a calibration folder,
  by default the committed reference of a study of the same name), and tuned test runs the epochs those
  searches chose (``chosen.json``); a (method, backbone) with no such record falls back to the upper bound.

The schedule is a list schedule: whenever a slot is free it takes the longest ready job (a tuned run is
ready when its search is done). Training-free filters cost their fit and one evaluation. A dataset the
bench did not time is scaled from the nearest timed one by training rows (epochs) and users x items
(evaluations): those rows say ``extrapolated_from``. Cores: each job is one single-threaded process;
contention between them (memory bandwidth) is not modelled. A GPU record schedules on ``gpus`` slots.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from specbench.errors import SpecbenchError

TIMED = "timed"


def n_evaluations(settings: dict, epochs: int) -> int:
    """Evaluations of a run of ``epochs``: every ``eval_step`` epochs, the last one, and one before training."""
    step = max(1, int(settings.get("eval_step") or 1))
    return epochs // step + (1 if epochs % step else 0) + (1 if settings.get("eval_at_start", True) or not epochs else 0)


@dataclass(frozen=True)
class Cost:
    """What one process of a (dataset, method, backbone) costs on the bench's device, in seconds."""
    setup: float            # interpreter start, imports, building the dataset and the model
    epoch: float            # one training epoch (with the model's per-epoch hook)
    evaluation: float       # one full-ranking evaluation with the spectrum (0 where the bench did not time it)
    training_free: bool
    extrapolated_from: str | None = None

    def run(self, settings: dict, epochs: int, setup: bool = True) -> float:
        if self.training_free:
            return self.setup + self.evaluation
        return (self.setup if setup else 0.0) + epochs * self.epoch + n_evaluations(settings, epochs) * self.evaluation


class CostModel:
    """Costs from one bench record, extrapolated by dataset size where the bench did not time a dataset."""

    def __init__(self, record: dict, catalog: dict):
        self.timed = {(r["dataset"], r["method"], r["backbone"]): r for r in record.get("results", [])
                      if r.get("status", TIMED) == TIMED}
        self.catalog = catalog
        self.measured = {r["dataset"]: (int(r["train_rows"]), int(r["users"]) * int(r["items"]))
                         for r in self.timed.values()}

    def size(self, dataset: str) -> tuple[int, int]:
        """(training rows, users x items): as the bench measured them, else from config/datasets.yaml."""
        if dataset in self.measured:
            return self.measured[dataset]
        d = self.catalog.get(dataset)
        if d is None:
            return 0, 0
        rows = d.files["train"].rows if "train" in d.files and d.files["train"].rows else 0
        n = {k: (d.id_space or {}).get(k) or (d.expect or {}).get(k) or 0 for k in ("users", "items")}
        return rows, int(n["users"]) * int(n["items"])

    def cost(self, dataset: str, method: str, backbone: str) -> Cost | None:
        row, near = self.timed.get((dataset, method, backbone)), None
        train_scale = eval_scale = 1.0
        if row is None:
            have = sorted({d for d, m, b in self.timed if (m, b) == (method, backbone)})
            if not have:
                return None
            rows, cells = self.size(dataset)
            near = min(have, key=lambda d: abs(np.log(max(self.size(d)[0], 1)) - np.log(max(rows, 1))))
            row = self.timed[(near, method, backbone)]
            r0, c0 = self.size(near)
            train_scale, eval_scale = rows / max(r0, 1), cells / max(c0, 1)
        if row.get("training_free"):
            # a filter is fitted while it is built (build_seconds includes fit_seconds); it scales with the matrix
            return Cost(setup=(row.get("import_seconds") or 0.0) + (row.get("build_seconds") or 0.0) * eval_scale,
                        epoch=0.0, evaluation=(row.get("eval_seconds") or 0.0) * eval_scale, training_free=True,
                        extrapolated_from=near)
        return Cost(setup=(row.get("import_seconds") or 0.0) + (row.get("build_seconds") or 0.0) * train_scale,
                    epoch=((row.get("seconds_per_epoch") or 0.0) + (row.get("epoch_hook_seconds") or 0.0)) * train_scale,
                    evaluation=(row.get("eval_seconds") or 0.0) * eval_scale, training_free=False,
                    extrapolated_from=near)


@dataclass
class Job:
    name: str
    kind: str               # search, run, sweep
    seconds: float
    after: str | None = None       # the search (a ``group``) this job waits for
    upper_seconds: float = 0.0
    group: str | None = None       # a search's name, shared by its workers


@dataclass
class Calibration:
    """Per (method, backbone): the mean fraction of max_epochs a committed search's trials trained, and the
    epoch it chose; where they came from."""
    fraction: dict = field(default_factory=dict)
    chosen_epoch: dict = field(default_factory=dict)
    source: str | None = None


def load_calibration(folder: Path | None) -> Calibration:
    if folder is None or not Path(folder).is_dir():
        return Calibration()
    import json
    out = Calibration(source=str(folder))
    for trials in sorted(Path(folder).glob("tuning/*/*/*/trials.csv")):
        backbone, method = trials.parent.parent.name, trials.parent.name
        chosen = json.loads((trials.parent / "chosen.json").read_text()) if (trials.parent / "chosen.json").exists() else {}
        max_epochs = (chosen.get("protocol") or {}).get("max_epochs")
        frame = pd.read_csv(trials)
        if not max_epochs or frame.empty or "epochs_trained" not in frame:
            continue
        out.fraction[(method, backbone)] = float(frame["epochs_trained"].mean()) / float(max_epochs)
        if chosen.get("best_epoch"):
            out.chosen_epoch[(method, backbone)] = (int(chosen["best_epoch"]), int(max_epochs))
    return out


def default_calibration(study_name: str, root: Path) -> Path | None:
    """The committed reference folder of a study of the same name (results/reference/*/study.yaml), if one."""
    import yaml
    for path in sorted((root / "results" / "reference").glob("*/study.yaml")):
        if (yaml.safe_load(path.read_text()) or {}).get("study") == study_name and (path.parent / "tuning").is_dir():
            return path.parent
    return None


def study_jobs(study, model: CostModel, calibration: Calibration) -> tuple[list[Job], list[str]]:
    """The study's training jobs with their expected and upper-bound seconds; (method/backbone) not benched."""
    jobs, missing = [], set()
    t = study.tuning or {}
    for ds, bb, method in study.tuned_keys():
        cost = model.cost(ds, method, bb)
        if cost is None:
            missing.add(f"{method}/{bb}")
            continue
        settings = study.settings(ds, bb, method, trial=True)
        max_epochs, workers, trials = int(t["max_epochs"]), int(t["workers"]), int(t["trials"])
        epochs = int(round(max_epochs * min(1.0, calibration.fraction.get((method, bb), 1.0))))
        for w in range(workers):
            mine = len(range(w, trials, workers))
            expected = cost.setup + mine * cost.run(settings, epochs, setup=False)
            upper = cost.setup + mine * cost.run(settings, max_epochs, setup=False)
            jobs.append(Job(f"search {ds}/{bb}/{method} worker {w}", "search", expected, upper_seconds=upper,
                            group=f"search {ds}/{bb}/{method}"))
    for job in study.jobs():
        ds, bb, method = job.dataset, job.backbone, job.method
        cost = model.cost(ds, method, bb)
        if cost is None:
            missing.add(f"{method}/{bb}")
            continue
        settings = study.settings(ds, bb, method)
        after, epochs = None, int(settings.get("epochs") or 0)
        upper_epochs = epochs
        if study.is_tuned(method):
            after, upper_epochs = f"search {ds}/{bb}/{method}", int(t["max_epochs"])
            chosen, cal_max = calibration.chosen_epoch.get((method, bb), (None, None))
            epochs = int(round(upper_epochs * chosen / cal_max)) if chosen else upper_epochs
        jobs.append(Job(f"run {ds}/{bb}/{method} seed {job.seed}", "run", cost.run(settings, epochs), after,
                        cost.run(settings, upper_epochs)))
    for name, sweep in study.sweeps().items():
        for ds, bb in itertools.product(sweep["datasets"], sweep["backbones"]):
            cost = model.cost(ds, sweep["method"], bb)
            if cost is None:
                missing.add(f"{sweep['method']}/{bb}")
                continue
            for point, seed in itertools.product(range(len(study.sweep_points(name))), sweep.get("seeds", [0])):
                settings = study._resolved(name, ds, bb, sweep["method"], point).settings
                seconds = cost.run(settings, int(settings.get("epochs") or 0))
                jobs.append(Job(f"sweep {name} {ds}/{bb} point {point} seed {seed}", "sweep", seconds,
                                upper_seconds=seconds))
    return jobs, sorted(missing)


def makespan(jobs: list[Job], slots: int, upper: bool = False) -> float:
    """Wall seconds of a list schedule on ``slots``: a free slot takes the longest ready job."""
    slots = max(1, int(slots))
    cost = {j.name: (j.upper_seconds if upper else j.seconds) for j in jobs}
    waiting = {j.name: j for j in jobs if j.after}
    ready = [(-cost[j.name], j.name) for j in jobs if not j.after]
    heapq.heapify(ready)
    group_of = {j.name: j.group for j in jobs}
    searches_left: dict[str, int] = {}
    for j in jobs:
        if j.group:
            searches_left[j.group] = searches_left.get(j.group, 0) + 1
    running: list[tuple[float, str]] = []  # (end time, name)
    now, free = 0.0, slots
    while ready or running:
        while ready and free:
            _, name = heapq.heappop(ready)
            heapq.heappush(running, (now + cost[name], name))
            free -= 1
        now, name = heapq.heappop(running)
        free += 1
        group = group_of[name]
        if group:
            searches_left[group] -= 1
            if searches_left[group] == 0:
                for other in [w for w in waiting.values() if w.after == group]:
                    heapq.heappush(ready, (-cost[other.name], other.name))
                    del waiting[other.name]
    if waiting:  # study_jobs drops a run whose search is not benched, so this is a bug
        raise SpecbenchError(f"jobs waiting on a search that never ran: {', '.join(sorted(waiting))}")
    return now


def estimate(study_file: Path, records: dict[str, dict], cores: int, gpus: int = 1,
             calibrate: Path | None = None, root: Path | None = None) -> list[dict]:
    """One projection per bench record ({name: record}): wall seconds expected and upper bound."""
    from specbench.study import Study
    root = root or Path(__file__).resolve().parents[1]
    study = Study.from_file(study_file, root=root)
    calibrate = calibrate if calibrate is not None else default_calibration(study.config['study'], root)
    calibration = load_calibration(calibrate)
    catalog = study.datasets_catalog
    out = []
    for name, record in records.items():
        hardware = record.get("hardware", {})
        gpu = hardware.get("gpu")
        model = CostModel(record, catalog)
        jobs, missing = study_jobs(study, model, calibration)
        slots = gpus if gpu else cores
        by_kind = {k: sum(j.seconds for j in jobs if j.kind == k) for k in ("search", "run", "sweep")}
        extrapolated = sorted({f"{ds} from {c.extrapolated_from}" for ds in study.dataset_names()
                               for (d, m, b) in model.timed if (c := model.cost(ds, m, b)) and c.extrapolated_from})
        out.append({
            "bench": name, "device": gpu or hardware.get("cpu") or hardware.get("device"), "slots": slots,
            "slot_kind": "GPU" if gpu else "core", "jobs": len(jobs),
            "expected_seconds": makespan(jobs, slots), "upper_seconds": makespan(jobs, slots, upper=True),
            "serial_seconds": sum(j.seconds for j in jobs), "job_seconds_by_kind": by_kind,
            "missing": missing, "extrapolated": extrapolated,
            "calibration": calibration.source,
            "evaluations_timed": any(r.get("eval_seconds") is not None for r in model.timed.values()),
        })
    return out


def load_records(paths: list[Path]) -> dict[str, dict]:
    import json
    records = {}
    for path in paths:
        try:
            records[Path(path).name] = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise SpecbenchError(f"{path}: not a bench record ({exc}); `make bench` writes them under results/bench/")
    return records


def default_records(root: Path) -> list[Path]:
    """Every bench record under results/bench/ (the side-by-side reference timings excluded)."""
    return sorted(p for p in (root / "results" / "bench").glob("*.json") if not p.name.startswith("reference-"))


def format_estimate(rows: list[dict], study_file: Path) -> str:
    def hours(s: float) -> str:
        return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"
    lines = [f"{study_file}:"]
    for r in rows:
        lines.append(f"  {r['device']} ({r['bench']}, {r['slots']} {r['slot_kind']}{'s' if r['slots'] > 1 else ''}): "
                     f"expected {hours(r['expected_seconds'])}, at most {hours(r['upper_seconds'])} "
                     f"({r['jobs']} jobs; job time: search {hours(r['job_seconds_by_kind']['search'])}, "
                     f"run {hours(r['job_seconds_by_kind']['run'])}, sweep {hours(r['job_seconds_by_kind']['sweep'])})")
        if r["missing"]:
            lines.append(f"    not benched (left out): {', '.join(r['missing'])}; `make bench` times them")
        if r["extrapolated"]:
            lines.append(f"    scaled by size: {', '.join(r['extrapolated'])}")
        if not r["evaluations_timed"]:
            lines.append("    evaluations not timed (counted as 0 s): `make bench BENCH_ARGS=--time-eval`")
        lines.append(f"    expected epochs from: {r['calibration'] or 'nothing committed (the upper bound)'}")
    if not any(r["slot_kind"] == "GPU" for r in rows):
        lines.append("  GPU: no bench record from a GPU under results/bench/ (`make bench DEVICE=cuda` on one)")
    return "\n".join(lines)
