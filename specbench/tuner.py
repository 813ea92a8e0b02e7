"""Model selection with Optuna: a seeded TPE search with pruning, one search per (study, dataset, backbone, method).

A tuning job (``specbench tune``, one Snakemake job per search and worker) runs trials in one
process with the dataset built once (specbench/harness.py ``data_cache``). Each trial trains on
the fit carve and is scored on the valid carve (``validation: true``; the test split is never
loaded), up to ``max_epochs`` with early stopping, and reports the best validation metric so far
at every evaluation to the pruner, which stops poor settings early (successive halving, Hyperband
or median). Trial 0 is the method's own defaults where they lie in the space.

The search lives in an Optuna journal file beside the chosen setting
(results/<study>/tuning/<dataset>/<backbone>/<method>/optuna.journal): a killed job's rerun loads
it and adds trials until ``trials`` have finished (complete or pruned), and several workers (local
processes, SLURM jobs on a shared file system) can add trials to the same search. A trial left
running by a dead worker on this host is marked failed and its point tried again. The study name
carries a fingerprint of the protocol, space and model code (not of the trial budget), so a changed
search never resumes an old one, and a larger budget continues the smaller search.

``export`` (``specbench select``) reads the journal and writes chosen.json (the best complete
trial's settings, with ``epochs`` = its best validation epoch), trials.csv and trials.json (every
trial: settings, state, validation curve, seconds).
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from specbench import search_space as spaces
from specbench.atomic_io import atomic_write_text
from specbench.errors import SpecbenchError

log = logging.getLogger("specbench")

JOURNAL = "optuna.journal"
PRUNERS = ("hyperband", "successive_halving", "median", "none")
FINISHED = ("COMPLETE", "PRUNED")


def _optuna():
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage(path: Path):
    """The Optuna journal storage in ``path`` (created with its folder); safe for several processes."""
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


# Protocol keys that size a search rather than define it: more trials (or workers) continue the same one.
BUDGET_KEYS = ("trials", "workers")


def study_name(spec: dict, space: dict, protocol: dict) -> str:
    """<dataset>/<backbone>/<method>@<fingerprint of the trial spec, space, protocol and model code>.

    The trial budget is not part of it: raising ``trials`` adds trials to the same search (its first
    trials are the smaller search's, and ``export`` chooses among the first ``trials`` only). Nor are the
    layers' sources (which file set a value, with its path: the same search runs from any checkout).
    Anything else that changes a trial (settings, space, pruner, sampler start, the model's files:
    ``plugins.code_fingerprint``) names a new search, so an old journal never resumes under it."""
    from specbench.plugins import code_fingerprint
    from specbench.study import canonical_hash
    layers = [{k: v for k, v in item.items() if k != "source"} for item in spec["layers"]]  # not where they came from
    identity = {"layers": layers, "model": spec["model"], "seed": spec["seed"], "space": space,
                "protocol": {k: protocol[k] for k in sorted(protocol) if k not in BUDGET_KEYS},
                "code": code_fingerprint(spec["model"])}
    return f"{spec['dataset']}/{spec['backbone']}/{spec['method']}@{canonical_hash(identity)}"


def make_pruner(protocol: dict):
    optuna = _optuna()
    name, rf = protocol["pruner"], int(protocol["reduction_factor"])
    first = int(protocol["min_epochs"])
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=first, max_resource=int(protocol["max_epochs"]),
                                              reduction_factor=rf)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=first, reduction_factor=rf)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=int(protocol["startup_trials"]), n_warmup_steps=first)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise SpecbenchError(f"tuning.pruner = {name!r}: expected one of {', '.join(PRUNERS)}")


def open_search(path: Path, name: str, protocol: dict, seed_offset: int = 0):
    """The Optuna study ``name`` in the journal ``path`` (created if new), with the seeded TPE sampler."""
    optuna = _optuna()
    sampler = optuna.samplers.TPESampler(seed=int(protocol["seed"]) * 100_003 + seed_offset,
                                         n_startup_trials=int(protocol["startup_trials"]))
    return optuna.create_study(storage=storage(path), study_name=name, direction="maximize", sampler=sampler,
                               pruner=make_pruner(protocol), load_if_exists=True)


def worker_id() -> str:
    """host:pid (and the SLURM job when there is one): who runs a trial, to tell a dead worker's."""
    job = os.environ.get("SLURM_JOB_ID")
    return f"{socket.gethostname()}:{os.getpid()}" + (f":slurm-{job}" if job else "")


def _dead_here(worker: str | None) -> bool:
    """Whether ``worker`` ran on this host and its process is gone."""
    if not worker:
        return False
    host, _, rest = worker.partition(":")
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(rest.split(":")[0]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def finished(study) -> int:
    return sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))


def _recover(study) -> list[int]:
    """Mark the running trials of dead workers on this host failed and enqueue their points again.

    A worker killed while a trial was still drawing its settings leaves only some of them (or none) in
    the journal: those are enqueued as they are, and Optuna draws the rest when the trial is retried."""
    from optuna.trial import TrialState
    retried = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _dead_here(t.user_attrs.get("worker")):
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            if t.params:
                study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
            retried.append(t.number)
    return retried


def _enqueue_defaults(study, space: dict, defaults: dict) -> None:
    """Trial 0 of a new search: the method's own settings where they lie in the space."""
    if study.get_trials(deepcopy=False):
        return
    point = {k: defaults[k] for k, rule in space.items() if k in defaults and spaces.contains(rule, defaults[k])}
    if point:
        study.enqueue_trial(point, user_attrs={"defaults": True})


class _SetupLock:
    """An OS lock on ``<journal>.setup`` while a worker recovers stale trials and seeds trial 0."""

    def __init__(self, journal: Path):
        self.path = Path(f"{journal}.setup")

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def run_worker(spec: dict, space: dict, protocol: dict, journal: Path, progress: bool = False) -> dict:
    """Add trials to the search in ``journal`` until ``protocol['trials']`` have finished; returns this
    worker's summary (the trials it ran). ``spec`` is the trial spec without the point (validation on)."""
    optuna = _optuna()
    from specbench.settings import layer, resolve
    from specbench.training import Stop

    journal = Path(journal)
    base = resolve(spec)  # bad settings stop here, before a trial starts
    for point in spaces.corners(space):
        resolve(spec, [layer("trial", "a bound of the search space", point)])
    name = study_name(spec, space, protocol)
    journal.parent.mkdir(parents=True, exist_ok=True)
    with _SetupLock(journal):
        study = open_search(journal, name, protocol)
        retried = _recover(study)
        _enqueue_defaults(study, space, base.settings)
        offset = len(study.get_trials(deepcopy=False))
    if retried:
        log.warning("%s: trials %s were left running by a worker that died; they are marked failed and their "
                    "settings tried again", journal, retried)
    study = open_search(journal, name, protocol, seed_offset=offset)
    metric, target = protocol["metric"], int(protocol["trials"])
    job = f"{spec['dataset']}/{spec['backbone']}/{spec['method']}"
    cache, ran = {}, []
    work = Path(tempfile.mkdtemp(prefix="specbench-tune-"))

    def objective(trial):
        trial.set_user_attr("worker", worker_id())
        params = {k: spaces.suggest(trial, k, rule) for k, rule in space.items()}

        def report(value, epoch):
            trial.report(value, epoch)
            if trial.should_prune():
                raise Stop(f"pruned at epoch {epoch}")

        out = train_setting(spec, params, metric, work, cache, f"{job} trial {trial.number}", progress, report,
                            source=f"{spec['method']} search space (Optuna trial {trial.number})")
        for key in ("curve", "best_epoch", "epochs_trained", "stopped_early", "seconds"):
            trial.set_user_attr(key, out[key])
        trial.set_user_attr("outcome", out["state"])
        ran.append(trial.number)
        if out["state"] != "complete" or out["best_value"] is None:
            raise optuna.TrialPruned(out["state"])
        return out["best_value"]

    def enough(study, _trial):
        if finished(study) >= target:
            study.stop()

    t0 = time.perf_counter()
    try:
        if finished(study) < target:
            study.optimize(objective, n_trials=target, callbacks=[enough], gc_after_trial=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"journal": str(journal), "study_name": name, "worker": worker_id(), "trials_run": ran,
            "finished": finished(study), "target": target, "seconds": time.perf_counter() - t0}


def train_setting(spec: dict, params: dict, metric: str, work: Path, cache: dict, job: str, progress: bool = False,
                  report=None, source: str = "a search's setting") -> dict:
    """Train one setting as a trial does (fit carve, scored on valid every ``eval_step``, early stopping):
    its validation curve ``[[epoch, value, erank], ...]``, best value and epoch, state (complete, pruned,
    diverged), epochs trained and seconds. ``report(best value so far, epoch)`` after each evaluation may
    raise ``training.Stop`` (the pruner). The untrained epoch-0 evaluation of a trained model is left out."""
    from specbench.harness import build
    from specbench.settings import layer, resolve
    from specbench.training import Stop, fit
    resolved = resolve(spec, [layer("trial", source, params)])
    t0 = time.perf_counter()
    h = build(spec, resolved.entry, resolved.settings, work, data_cache=cache)
    trained = h.optimizer is not None
    curve, best = [], {"value": None, "epoch": None}

    def on_evaluate(entry):
        if trained and entry["epoch"] == 0:
            return  # the untrained embeddings are not a setting's result
        value = float(entry["metrics"][metric])
        curve.append([entry["epoch"], value, entry["spectrum"].get("erank")])
        if best["value"] is None or value > best["value"]:
            best.update(value=value, epoch=entry["epoch"])
        if report is not None:
            report(best["value"], entry["epoch"])

    state = "complete"
    try:
        fitted = fit(h, resolved.settings, None, job, progress=progress, on_evaluate=on_evaluate)
        epochs_trained, stopped = len(fitted.epochs), fitted.stopped_early
    except Stop:
        state, epochs_trained, stopped = "pruned", curve[-1][0] if curve else 0, None
    except SpecbenchError as exc:
        if "diverged" not in str(exc):
            raise
        state, epochs_trained, stopped = "diverged", (curve[-1][0] if curve else 0), None
    del h
    return {"curve": curve, "best_value": best["value"], "best_epoch": best["epoch"], "state": state,
            "epochs_trained": epochs_trained, "stopped_early": stopped, "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------- the chosen setting and the trials table

def trial_rows(study) -> list[dict]:
    """Every trial of a search: number, state, settings, best validation value and epoch, curve, seconds."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        state = a.get("outcome", t.state.name.lower()) if t.state.name in FINISHED else t.state.name.lower()
        curve = a.get("curve", [])
        rows.append({"trial": t.number, "state": state, "params": dict(t.params),
                     "best_value": max((c[1] for c in curve), default=None), "best_epoch": a.get("best_epoch"),
                     "epochs_trained": a.get("epochs_trained"), "stopped_early": a.get("stopped_early"),
                     "seconds": a.get("seconds"), "defaults": bool(a.get("defaults")),
                     "retry_of": a.get("retry_of"), "worker": a.get("worker"), "curve": curve})
    return rows


def export(journal: Path, name: str, space: dict, protocol: dict, out: Path) -> dict:
    """Write ``out`` (chosen.json), and trials.csv / trials.json beside it, from the search in ``journal``."""
    optuna = _optuna()
    journal, out = Path(journal), Path(out)
    if not journal.is_file():
        raise SpecbenchError(f"{journal}: no tuning journal; run the tuning job (specbench tune) first")
    try:
        study = optuna.load_study(study_name=name, storage=storage(journal))
    except KeyError:
        raise SpecbenchError(f"{journal} holds no search {name!r} (the protocol, space or model code changed since "
                             "it ran?); rerun the tuning job") from None
    budget, rows = int(protocol["trials"]), trial_rows(study)
    finished_numbers = sorted(r["trial"] for r in rows if r["state"] in ("complete", "pruned", "diverged"))
    if len(finished_numbers) < budget:
        raise SpecbenchError(f"{journal}: {len(finished_numbers)} of {budget} trials of {name} have finished; rerun "
                             "the tuning job to add the rest")
    # the budget's trials: those up to its last finished one (a larger search's later trials do not count)
    rows = [r for r in rows if r["trial"] <= finished_numbers[budget - 1]]
    complete = [r for r in rows if r["state"] == "complete"]
    if not complete:
        raise SpecbenchError(f"{journal}: every trial of {name} was pruned or diverged; widen the search space")
    best = max(complete, key=lambda r: (r["best_value"], -r["trial"]))
    chosen = dict(best["params"])
    if protocol["select_epochs"] and best["best_epoch"]:  # a training-free model has no epochs to choose
        chosen["epochs"] = int(best["best_epoch"])
    result = {"metric": protocol["metric"], "split": "valid", "select_epochs": bool(protocol["select_epochs"]),
              "chosen_trial": best["trial"], "params": chosen, "value": best["best_value"],
              "best_epoch": best["best_epoch"], "edges": spaces.edges(space, best["params"]),
              "space": space, "protocol": protocol, "journal": journal.name, "study_name": name,
              "trials": [{k: v for k, v in r.items() if k != "curve"} for r in rows]}
    atomic_write_text(out.parent / "trials.json", json.dumps(rows, indent=1) + "\n")
    atomic_write_text(out.parent / "trials.csv", _csv(rows, sorted(space)))
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    return result


def _csv(rows: list[dict], keys: list[str]) -> str:
    buf = io.StringIO()
    fields = ["trial", "state", "best_value", "best_epoch", "epochs_trained", "stopped_early", "seconds", "defaults",
              *keys]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**{k: r[k] for k in fields if k in r}, **{k: r["params"].get(k) for k in keys}})
    return buf.getvalue()


def tuned_params(path: Path) -> dict:
    """The settings a chosen.json gives the final runs."""
    with open(path) as f:
        return json.load(f)["params"]


def caption(protocol: dict | None) -> str:
    """The tuning protocol as the tables' captions and the leaderboard print it."""
    if not protocol:
        return "Not tuned: every method at its settings as given."
    stop = (f", early stopping after {protocol['patience']} evaluations without a gain" if protocol["patience"]
            else "")
    prune = {"none": "no pruning", "median": "median pruning", "hyperband": "Hyperband pruning",
             "successive_halving": "successive-halving pruning"}[protocol["pruner"]]
    epochs = "; the final runs train for the chosen trial's best validation epoch" if protocol["select_epochs"] else ""
    return (f"Every tuned method: {protocol['trials']} trials (Optuna TPE, seed {protocol['seed']}, "
            f"{prune}) on a {protocol['valid_fraction']:g} validation carve of train, at most "
            f"{protocol['max_epochs']} epochs evaluated every {protocol['eval_step']}{stop}, best "
            f"{protocol['metric']}{epochs}.")
