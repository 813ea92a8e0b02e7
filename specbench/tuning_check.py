"""Is the study's tuning budget enough? The same searches, larger, against the study's choices.

Every search of the check (its journal, and once finished its trials and choice) and every confirmation
run is copied to ``<reference>/tuning-check/`` and restored from there before the next check, so a check
resumes from what was committed (``restore_searches``): a larger budget continues a kept search, and a
kept search whose protocol, space or model code changed is deleted there and runs again.

``specbench tuning-check`` (``make tuning-check``) derives from a study a check study
(``<study>-check``: ``trials`` x 4 and ``max_epochs`` x 2 by default, everything else the same, the
test runs left out), runs its searches under Snakemake (only the tuning jobs: no test split is
touched), and compares each search's best validation metric with the study's own choice (from a
committed reference folder or the study's results). The table (CSV and Markdown) goes beside the
reference choices: a gain under ``THRESHOLD`` means the study's budget finds settings about as good
as a search four times its size. A gain over it is tested twice: ``confirm`` retrains both chosen
settings with fresh training seeds (is the check's choice better, or was its best value luck?), and
``search_seed_values`` runs the study's own search again under other search seeds (is the study's
choice an unlucky draw of its budget, or does that budget fall short on average?).
"""

from __future__ import annotations

import subprocess
import sys
from copy import deepcopy
from pathlib import Path

import pandas as pd

from specbench.atomic_io import atomic_write_text
from specbench.errors import SpecbenchError

THRESHOLD = 0.03  # relative gain in the validation metric that says the budget was too small


def check_config(config: dict, trials_factor: int = 4, epochs_factor: int = 2) -> dict:
    """The check study: ``config`` with ``trials`` and ``max_epochs`` multiplied, under its own name."""
    from specbench.study import tuning_protocol
    if not config.get("tuning"):
        raise SpecbenchError(f"study {config.get('study')!r} has no `tuning` block: nothing to check")
    out = deepcopy(config)
    base = tuning_protocol(config["tuning"])
    out["study"] = f"{config['study']}-check"
    out["tuning"] = {**config["tuning"], "trials": base["trials"] * trials_factor,
                     "max_epochs": base["max_epochs"] * epochs_factor}
    if "min_epochs" in config["tuning"]:
        out["tuning"]["min_epochs"] = base["min_epochs"]
    return out


def seed_config(config: dict, seed: int) -> dict:
    """The study's own searches under another search seed, as the study ``<study>-search-seed<seed>``:
    ``tuning.seed`` = ``seed`` (the TPE sampler's seed and its trials' training seed), the same budget."""
    if not config.get("tuning"):
        raise SpecbenchError(f"study {config.get('study')!r} has no `tuning` block: nothing to check")
    out = deepcopy(config)
    out["study"] = f"{config['study']}-search-seed{int(seed)}"
    out["tuning"] = {**config["tuning"], "seed": int(seed)}
    return out


def compare(reference: dict[tuple, dict], check: dict[tuple, dict]) -> pd.DataFrame:
    """One row per search: the study's chosen validation value, the check's, the relative gain, and how much
    of it the check's trials reach within the study's epoch cap (``gain_within_study_epochs``, from their
    validation curves: more trials alone) — so a gain over ``THRESHOLD`` says whether the study lacks
    trials or epochs (``cause``)."""
    rows = []
    for key in sorted(reference):
        if key not in check:
            raise SpecbenchError(f"the check has no search for {'/'.join(key)}")
        ref, big = reference[key], check[key]
        gain = (big["value"] - ref["value"]) / ref["value"] if ref["value"] else float("nan")
        cap = int(ref["protocol"]["max_epochs"])
        capped = best_within(big, cap)
        gain_capped = (capped - ref["value"]) / ref["value"] if ref["value"] and capped is not None else float("nan")
        within = bool(gain < THRESHOLD)
        cause = ("" if within else "unknown: no trials.json" if capped is None
                 else "trials" if gain_capped >= THRESHOLD else "epochs")
        rows.append({"dataset": key[0], "backbone": key[1], "method": key[2], "metric": ref["metric"],
                     "trials": len(ref["trials"]), "max_epochs": cap,
                     "value": ref["value"], "epoch": ref["best_epoch"],
                     "check_trials": len(big["trials"]), "check_max_epochs": big["protocol"]["max_epochs"],
                     "check_value": big["value"], "check_epoch": big["best_epoch"],
                     "gain": gain, "check_value_within_study_epochs": capped,
                     "gain_within_study_epochs": gain_capped, "within": within, "cause": cause,
                     "chosen": _params(ref), "check_chosen": _params(big)})
    return pd.DataFrame(rows)


def best_within(chosen: dict, max_epoch: int) -> float | None:
    """The best validation value any of a search's trials reached at an epoch <= ``max_epoch`` (their
    curves, ``trials.json``; a training-free search's is its one evaluation, at epoch 0), or None."""
    values = [value for curve in (chosen.get("curves") or {}).values() for epoch, value, *_ in curve
              if epoch <= max_epoch]
    return max(values) if values else None


def _params(chosen: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(chosen["params"].items()))


def load_choices(tuning_dir: Path) -> dict[tuple, dict]:
    """{(dataset, backbone, method): chosen.json} of a study's tuning folder, each with ``curves`` ({trial:
    validation curve}) from the trials.json beside it where there is one."""
    import json

    from specbench.report.leaderboard import load_chosen
    choices = load_chosen(sorted(Path(tuning_dir).glob("*/*/*/chosen.json")))
    for key, chosen in choices.items():
        trials = Path(tuning_dir).joinpath(*key, "trials.json")
        if trials.is_file():
            chosen["curves"] = {t["trial"]: t.get("curve") or [] for t in json.loads(trials.read_text())}
    return choices


def confirm_task(config: dict, key: tuple, params: dict, seed: int, metric: str, out: Path) -> dict:
    """One retraining of a chosen setting under ``config``'s trial protocol with training seed ``seed``
    (the same fit/valid carve); cached in ``out`` (JSON) with the settings it trained and the search it
    belongs to (``search_identity``), so a rerun only trains what is missing, what a changed choice needs
    and what a changed protocol or model makes stale."""
    import json
    import tempfile

    from specbench.study import Study
    from specbench.tuner import train_setting
    study = Study(config, root=ROOT)
    identity = search_identity(study, key)
    if out.is_file():
        cached = json.loads(out.read_text())
        if cached.get("params") == params and cached.get("search") == identity:  # else retrained
            return cached
    spec = study.trial_spec(*key)
    spec["seed"] = int(seed)
    with tempfile.TemporaryDirectory(prefix="specbench-confirm-") as work:
        got = train_setting(spec, {k: v for k, v in params.items() if k != "epochs"}, metric, Path(work), {},
                            f"{'/'.join(key)} confirm seed {seed}", source="the tuning check's confirmation")
    got.update(seed=int(seed), params=params, search=identity)
    atomic_write_text(out, json.dumps(got, indent=1) + "\n")
    return got


def trained_flagged(table: pd.DataFrame, ref_choices: dict) -> list[tuple]:
    """The searches ``table`` flags (a gain of ``THRESHOLD`` or more) whose study choice was trained: a
    training-free search (best epoch 0) has no training or search seed to vary."""
    return [tuple(r) for r in table.loc[~table["within"], ["dataset", "backbone", "method"]].itertuples(index=False)
            if ref_choices[tuple(r)]["best_epoch"]]


def confirm(table: pd.DataFrame, config: dict, check: dict, ref_choices: dict, check_choices: dict,
            seeds: list[int], folder: Path, cores: int = 1) -> pd.DataFrame:
    """Is a gain over ``THRESHOLD`` real or the luck of the larger search? For each such search, retrain the
    study's and the check's chosen settings with fresh training seeds, each under its own protocol (the
    study's or the check's maximum epochs, the same early stopping and carve), and compare the means of
    their best validation values (the statistic a trial reports): ``confirmed_gain``. Searches within the
    threshold, and training-free ones (no seed), are not retrained."""
    from concurrent.futures import ProcessPoolExecutor
    flagged = trained_flagged(table, ref_choices)
    sides = [(key, side, cfg, chosen) for key in flagged
             for side, cfg, chosen in (("study", config, ref_choices), ("check", check, check_choices))]
    tasks = [(cfg, key, chosen[key]["params"], seed, chosen[key]["metric"],
              Path(folder) / "confirm" / Path(*key) / f"{side}-seed{seed}.json")
             for key, side, cfg, chosen in sides for seed in seeds]
    task_sides = [(key, side) for key, side, _, _ in sides for _ in seeds]
    if cores <= 1 or len(tasks) <= 1:  # in this process
        results = [confirm_task(*task) for task in tasks]
    else:  # fresh interpreters: a fork of a process with threads (torch's, a test runner's) can deadlock
        import multiprocessing
        with ProcessPoolExecutor(max_workers=cores, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(confirm_task, *zip(*tasks)))
    values: dict[tuple, dict[str, list]] = {}
    for (key, side), got in zip(task_sides, results):
        values.setdefault(key, {"study": [], "check": []})[side].append(got["best_value"])
    out = table.copy()
    for col in ("confirmed_value", "confirmed_check_value", "confirmed_gain"):
        out[col] = float("nan")
    out["confirm_seeds"] = ""
    for i, row in out.iterrows():
        got = values.get((row["dataset"], row["backbone"], row["method"]))
        if not got or None in got["study"] + got["check"]:
            continue
        a, b = float(pd.Series(got["study"]).mean()), float(pd.Series(got["check"]).mean())
        out.loc[i, ["confirmed_value", "confirmed_check_value", "confirmed_gain"]] = [a, b, (b - a) / a]
        out.loc[i, "confirm_seeds"] = " ".join(map(str, seeds))
    return out


def search_seed_spread(table: pd.DataFrame, values: dict[tuple, list], seeds: list[int]) -> pd.DataFrame:
    """Is a flagged search's gain the draw of the study's budget, or its size? ``values``: {(dataset, backbone,
    method): the best validation values of the study's search (its own seed first) and of the same search
    under each of ``seeds``}. Adds, where all are there, their mean and range and the check's gain over
    that mean (``gain_over_search_seeds``): under ``THRESHOLD``, the study's budget finds on average what
    the check finds, and the study's own shortfall is one draw of that spread."""
    out = table.copy()
    for col in ("search_seed_mean", "search_seed_min", "search_seed_max", "gain_over_search_seeds"):
        out[col] = float("nan")
    out["search_seed_values"] = out["search_seeds"] = ""
    for i, row in out.iterrows():
        got = values.get((row["dataset"], row["backbone"], row["method"]))
        if not got or len(got) != len(seeds) + 1 or None in got:
            continue
        mean = sum(got) / len(got)
        out.loc[i, ["search_seed_mean", "search_seed_min", "search_seed_max", "gain_over_search_seeds"]] = [
            mean, min(got), max(got), (row["check_value"] - mean) / mean]
        out.loc[i, "search_seed_values"] = " ".join(f"{v:.4f}" for v in got)
        out.loc[i, "search_seeds"] = " ".join(map(str, seeds))
    return out


def drop_unflagged(folder: Path, table: pd.DataFrame) -> list[str]:
    """Delete from ``folder`` (<reference>/tuning-check/confirm, or a search seed's tuning folder) the records
    of searches that the complete ``table`` no longer flags: a search run again (its model changed) that now
    gains less than ``THRESHOLD`` leaves the old search's retrainings and reruns behind, which back no
    number. Returns their keys."""
    import shutil
    flagged = {"/".join(map(str, k)) for k in
               table.loc[~table["within"], ["dataset", "backbone", "method"]].itertuples(index=False)}
    dropped = []
    for path in sorted(Path(folder).glob("*/*/*")) if Path(folder).is_dir() else []:
        key = "/".join(path.relative_to(folder).parts)
        if path.is_dir() and key not in flagged:
            shutil.rmtree(path)
            dropped.append(key)
    return dropped


def search_identity(study, key: tuple) -> str:
    """The Optuna study name the search ``key`` (dataset, backbone, method) of ``study`` (a Study) runs under
    (specbench.tuner.study_name: its trial spec, space, protocol and model code, not its trial budget)."""
    from specbench.tuner import study_name
    return study_name(study.trial_spec(*key), study.search_space(key[2], key[1]), study.tuning)


def restore_searches(kept: Path, here: Path, config: dict) -> list[str]:
    """Copy the kept searches of the check study ``config`` into its work folder ``here`` where they are
    still its searches: a finished one whole when its study name and budget are the current ones, only
    its journal when the budget changed (the search continues; a smaller one exports its first trials),
    an unfinished one's journal when it holds the current study. A kept search under another name (its
    protocol, space or model changed) is stale: it is deleted from ``kept`` (git keeps its history) and
    runs again. Returns the stale ones."""
    import json
    import shutil

    import optuna

    from specbench.study import Study
    from specbench.tuner import JOURNAL, storage
    study = Study(config, root=ROOT)
    budget, searches, stale = int(study.tuning["trials"]), set(study.tuned_keys()), []
    for journal in sorted(Path(kept).glob(f"*/*/*/{JOURNAL}")):
        folder = journal.parent
        key = folder.relative_to(kept).parts
        if key not in searches:  # a search this study no longer has: left where it is
            continue
        name = search_identity(study, key)
        chosen = folder / "chosen.json"
        done = json.loads(chosen.read_text()) if chosen.is_file() else None
        if done and done.get("study_name") == name and int(done["protocol"]["trials"]) == budget:
            copy_missing(folder, Path(here) / Path(*key))
        elif name in optuna.get_all_study_names(storage(journal)):
            # the journal alone: its choice, trials and worker summaries are the smaller budget's, and
            # without them Snakemake runs the search's workers again, which add the missing trials
            copy_missing(folder, Path(here) / Path(*key), exclude=(".json", ".csv"))
        else:
            shutil.rmtree(folder)
            stale.append("/".join(key))
    return stale


def keep_searches(here: Path, kept: Path) -> None:
    """Keep every search of the work folder ``here`` in ``kept`` (beside the table), finished (chosen.json)
    or not (its journal resumes), so that no rerun repeats a trial. The work folder's files replace the
    kept ones only where its trials moved on: a search Snakemake reran without adding a trial (its
    parameters or an input's time changed) only reopened its journal, and the kept search stays as it was."""
    for journal in Path(here).glob("*/*/*/optuna.journal"):
        target = Path(kept) / journal.parent.relative_to(here)
        moved_on = not (target / journal.name).is_file() or trial_record(journal) != trial_record(target / journal.name)
        copy_missing(journal.parent, target, exclude=(".setup",), overwrite=moved_on)


def trial_record(journal: Path) -> list:
    """Every trial of every study in the Optuna journal ``journal``: (study, number, state, values), to tell
    whether a search's trials moved on between two copies of its journal."""
    import optuna

    from specbench.tuner import storage
    store = storage(journal)
    return [(name, t.number, t.state.name, t.values)
            for name in sorted(optuna.get_all_study_names(store))
            for t in optuna.load_study(study_name=name, storage=store).get_trials(deepcopy=False)]


def copy_missing(src: Path, dst: Path, exclude: tuple = (), overwrite: bool = False) -> None:
    """Copy the files under ``src`` that ``dst`` lacks (the check's searches and confirmations, between the
    work folder and the committed reference); ``overwrite``: also those it has (the work folder's are newer).
    Names ending in one of ``exclude`` are left out."""
    import shutil
    for path in sorted(Path(src).rglob("*")) if Path(src).is_dir() else []:
        target = Path(dst) / path.relative_to(src)
        if path.is_file() and (overwrite or not target.exists()) and not path.name.endswith(tuple(exclude)):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def write_table(table: pd.DataFrame, stem: Path, command: str, unfinished: list | None = None,
                own_seed: int = 0) -> list[Path]:
    """The table as CSV and Markdown; ``unfinished`` searches (not yet in the check) are named in the caption;
    ``own_seed``: the study's tuning.seed, first in the search-seed columns."""
    stem = Path(stem)
    worst = table["gain"].max()
    caption = (f"Tuning check: each search of the study against the same search with {table['check_trials'].iloc[0]} "
               f"trials and at most {table['check_max_epochs'].iloc[0]} epochs (the study: "
               f"{table['trials'].iloc[0]} and {table['max_epochs'].iloc[0]}). Value: the best validation "
               f"{table['metric'].iloc[0]} of the chosen trial; gain: (check - study) / study; gain by epoch "
               f"{table['max_epochs'].iloc[0]}: the same for the best value any check trial reached by the study's "
               f"epoch cap (its validation curve), i.e. what more trials alone give; cause of a gain of "
               f"{THRESHOLD:.0%} or more: trials when that part reaches it, else epochs. "
               f"{int(table['within'].sum())} of {len(table)} searches gain less than {THRESHOLD:.0%}; the largest "
               f"gain is {worst:+.1%}. Command: `{command}`."
               + (f" **Partial: {len(unfinished)} searches not finished yet** ({', '.join('/'.join(k[1:]) for k in unfinished)})."
                  if unfinished else ""))
    pct = lambda col: [f"{g:+.1%}" if g == g else "" for g in table[col]]  # noqa: E731 (NaN: no curves)
    shown = table.assign(gain=pct("gain"), gain_within_study_epochs=pct("gain_within_study_epochs"),
                         value=table["value"].round(4), check_value=table["check_value"].round(4))
    shown = shown.rename(columns={"gain_within_study_epochs": f"gain by epoch {table['max_epochs'].iloc[0]}"})
    cols = ["backbone", "method", "value", "epoch", "check_value", "check_epoch", "gain",
            f"gain by epoch {table['max_epochs'].iloc[0]}", "within", "cause", "chosen", "check_chosen"]
    if "confirmed_gain" in table and table["confirmed_gain"].notna().any():
        seeds = next(s for s in table["confirm_seeds"] if s)
        shown = shown.assign(confirmed_gain=pct("confirmed_gain"))
        cols.insert(cols.index("within"), "confirmed_gain")
        caption += (f" Confirmed gain (searches at {THRESHOLD:.0%} or more): both chosen settings retrained with "
                    f"training seeds {seeds} under their own protocols, (mean check - mean study) / mean study of "
                    "their best validation values; the part of the gain that is not the larger search's luck.")
    if "gain_over_search_seeds" in table and table["gain_over_search_seeds"].notna().any():
        seeds = next(s for s in table["search_seeds"] if s)
        span = [f"{lo:.4f}-{hi:.4f}" if lo == lo else "" for lo, hi in
                zip(table["search_seed_min"], table["search_seed_max"])]
        shown = shown.assign(search_seed_range=span, gain_over_search_seeds=pct("gain_over_search_seeds"))
        cols[cols.index("within"):cols.index("within")] = ["search_seed_range", "gain_over_search_seeds"]
        caption += (f" Search seeds (searches at {THRESHOLD:.0%} or more): the study's own search run again at its "
                    f"budget under tuning seeds {seeds} (the sampler's seed and its trials' training seed); range: "
                    f"the lowest and highest best validation value over seeds {own_seed} {seeds}; gain over search "
                    "seeds: (check - their mean) / their mean. Under "
                    f"{THRESHOLD:.0%}, the study's budget finds on average what the check finds, and the study's "
                    "own gap is the draw of its search seed.")
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md")]
    atomic_write_text(paths[0], table.to_csv(index=False))
    atomic_write_text(paths[1], caption + "\n\n" + shown[cols].to_markdown(index=False) + "\n")
    return paths


ROOT = Path(__file__).resolve().parents[1]


def run_searches(config: dict, keys: list[tuple] | None, kept: Path, workdir: Path, cores: int, search: bool,
                 derived_name: str, source: str) -> tuple[Path, int]:
    """Run the searches ``keys`` (None: all) of the study ``config`` under Snakemake (this checkout's Snakefile,
    ``cores``, in ``workdir``; their tuning jobs only, so no test split is touched), resumed from the searches
    kept in ``kept`` and kept there again (``restore_searches``, ``keep_searches``). The study file Snakemake
    reads is written to its results folder as ``derived_name``. Returns that folder and Snakemake's exit code
    (0 with ``search=False``: nothing runs, what was kept is restored)."""
    import yaml

    from specbench.study import Study
    study = Study(config, root=ROOT, source=source)
    here = Path(workdir) / study.paths.results
    stale = restore_searches(kept, here / "tuning", config)  # resume from what an earlier check kept
    if stale:
        print(f"tuning check: {len(stale)} kept searches of {config['study']} ran under another protocol, space or "
              f"model code and run again: {', '.join(stale)}", file=sys.stderr)
    targets = [study.chosen_path(*key) for key in (study.tuned_keys() if keys is None else keys)]
    derived = here / derived_name
    derived.parent.mkdir(parents=True, exist_ok=True)
    derived.write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--configfile", str(derived.resolve()),
           "--cores", str(cores), "--keep-going", *targets]
    done = subprocess.run(cmd, cwd=workdir) if search and targets else subprocess.CompletedProcess(cmd, 0)
    keep_searches(here / "tuning", kept)
    return here, done.returncode


def search_seed_values(base: dict, study_file: Path, keys: list[tuple], seeds: list[int], kept: Path,
                       workdir: Path, cores: int, search: bool = True) -> tuple[dict[tuple, list], int]:
    """The searches ``keys`` of the study ``base`` (read from ``study_file``) run again under each of ``seeds``
    (``seed_config``: the same budget, another sampler and training seed), kept in ``kept``/seed<s>/ and resumed
    from there. Returns {key: [best validation value under each seed, None where that search has not
    finished]} and the worst Snakemake exit code."""
    values: dict[tuple, list] = {key: [] for key in keys}
    worst = 0
    for seed in seeds:
        config = seed_config(base, seed)
        here, code = run_searches(config, keys, Path(kept) / f"seed{seed}" / "tuning", workdir, cores, search,
                                  "search-seed-study.yaml", f"{study_file} (tuning check, search seed {seed})")
        worst = worst or code
        done = load_choices(here / "tuning")
        for key in keys:
            values[key].append(done[key]["value"] if key in done else None)
    return values, worst


def run_check(study_file: Path, reference: Path, cores: int, trials_factor: int = 4, epochs_factor: int = 2,
              workdir: Path = Path("."), confirm_seeds: list[int] | None = None, search: bool = True,
              search_seeds: list[int] | None = None) -> list[Path]:
    """Run the check study's searches (Snakemake on this checkout's Snakefile, ``cores``, in ``workdir``),
    retrain the settings of searches that gain ``THRESHOLD`` or more with ``confirm_seeds`` (``confirm``),
    run those searches again at the study's budget under ``search_seeds`` (``search_seed_values``), and write
    <reference>/tuning-check.{csv,md}. ``search=False``: no search runs, the table of what has finished (here
    or committed) is written."""
    from specbench.schemas import load_yaml
    base = load_yaml(Path(study_file))
    config = check_config(base, trials_factor, epochs_factor)
    ref_choices = load_choices(Path(reference) / "tuning")
    if not ref_choices:
        raise SpecbenchError(f"{reference}/tuning holds no chosen.json: run the study (or point --reference at a "
                             "folder with its tuning choices) first")
    from specbench.study import tuning_protocol
    own_seed = int(tuning_protocol(base["tuning"])["seed"])
    if own_seed in (search_seeds or []):
        raise SpecbenchError(f"--search-seeds {' '.join(map(str, search_seeds))}: {own_seed} is the study's own "
                             f"tuning.seed ({study_file}); give other seeds")
    kept = Path(reference) / "tuning-check"
    here, code = run_searches(config, None, kept / "tuning", workdir, cores, search, "check-study.yaml",
                              f"{study_file} (tuning check)")
    copy_missing(kept / "confirm", here / "confirm")
    check = load_choices(here / "tuning")
    unfinished = sorted(k for k in ref_choices if k not in check)
    table = compare({k: v for k, v in ref_choices.items() if k in check}, check)
    if confirm_seeds and not table.empty:
        try:
            table = confirm(table, base, config, ref_choices, check, list(confirm_seeds), here, cores)
        finally:
            copy_missing(here / "confirm", kept / "confirm", overwrite=True)
        _drop_unflagged(kept / "confirm", table, unfinished, "confirmations")
    if search_seeds and not table.empty:
        values, seed_code = search_seed_values(base, Path(study_file), trained_flagged(table, ref_choices),
                                               list(search_seeds), kept / "search-seeds", workdir, cores, search)
        code = code or seed_code
        table = search_seed_spread(table, {k: [ref_choices[k]["value"], *v] for k, v in values.items()},
                                   list(search_seeds))
        for seed in search_seeds:
            _drop_unflagged(kept / "search-seeds" / f"seed{seed}" / "tuning", table, unfinished, "search-seed runs")
    command = (f"specbench tuning-check --configfile {study_file} --reference {reference}"
               + (f" --confirm-seeds {' '.join(map(str, confirm_seeds))}" if confirm_seeds else "")
               + (f" --search-seeds {' '.join(map(str, search_seeds))}" if search_seeds else ""))
    written = (write_table(table, Path(reference) / "tuning-check", command, unfinished, own_seed)
               if not table.empty else [])
    if code != 0:  # what finished is in the table; the rest resumes on a rerun
        raise SpecbenchError(f"the check's searches failed (snakemake exit {code}); unfinished: "
                             f"{', '.join('/'.join(k) for k in unfinished) or 'none'}; rerun to resume them")
    if unfinished:
        raise SpecbenchError(f"{len(unfinished)} of the check's searches are not finished "
                             f"({', '.join('/'.join(k) for k in unfinished)}): the table has the others; "
                             "rerun without --table-only to finish them")
    return written


def _drop_unflagged(folder: Path, table: pd.DataFrame, unfinished: list, what: str) -> None:
    if unfinished:  # a search not yet in the table is not "no longer flagged"
        return
    dropped = drop_unflagged(folder, table)
    if dropped:
        print(f"tuning check: {what} of searches now within {THRESHOLD:.0%} deleted from {folder}: "
              f"{', '.join(dropped)}", file=sys.stderr)
