"""The ``specbench`` command: fetch and prepare data, run one job, build the report, list models."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from specbench.atomic_io import atomic_write_text
from specbench.errors import SpecbenchError
from specbench.paths import DATA_DIR, RAW_DIR


def _parse_value(text: str):
    """A --set value as YAML (numbers, lists, null); '1e30' is a number too (YAML 1.1 wants '1.0e30')."""
    import yaml
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _job_spec(args) -> dict:
    """The run spec of ``--spec``, or of ``--study/--dataset/--backbone/--method`` (and a trial or sweep point)."""
    if args.spec:
        return json.loads(args.spec)
    if not all([args.study, args.dataset, args.backbone, args.method]):
        raise SpecbenchError(f"specbench {args.command} needs --spec JSON, or --study, --dataset, --backbone and --method")
    from specbench.study import Study
    study = Study.from_file(args.study)
    if getattr(args, "trial", False):
        return study.trial_spec(args.dataset, args.backbone, args.method)
    return study.spec(args.dataset, args.backbone, args.method, args.seed)


def _job_layers(args) -> list[dict]:
    """The layers a job adds on top of its spec: the tuned settings, then ``--set``."""
    from specbench.schemas import display_path
    from specbench.settings import layer
    layers = []
    if args.tuned:
        from specbench.tuner import tuned_params
        layers.append(layer("tuned", display_path(args.tuned), tuned_params(Path(args.tuned))))
    values = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecbenchError(f"--set expects key=value, got {item!r}")
        values[key] = _parse_value(value)
    if values:
        layers.append(layer("set", "--set on the command line", values))
    return layers


def cmd_run(args):
    from specbench.run import run
    record = run(_job_spec(args), Path(args.out), extra_layers=_job_layers(args), progress=not args.quiet)
    final = record["final"]["metrics"]
    print(f"{args.out}: epoch {record['final']['epoch']} recall@20={final.get('recall@20', float('nan')):.4f} "
          f"ndcg@20={final.get('ndcg@20', float('nan')):.4f} erank={record['final']['spectrum'].get('erank', float('nan')):.2f} "
          f"({record['timing']['seconds_per_epoch']:.3f} s/epoch)")


def cmd_explain(args):
    """Print a run's settings with the layer and file each value came from."""
    from specbench.settings import LAYERS, explain, resolve
    spec = _job_spec(args)
    if args.study and not args.tuned and not args.trial:
        from specbench.study import Study
        study = Study.from_file(args.study)
        chosen = Path(study.chosen_path(args.dataset, args.backbone, args.method))
        if study.is_tuned(args.method):
            if chosen.is_file():
                args.tuned = str(chosen)
            else:
                print(f"# {args.method} is tuned in this study; {chosen} does not exist yet, so no tuned layer below")
    resolved = resolve(spec, _job_layers(args))
    print(f"# {spec['dataset']}/{spec['backbone']}/{spec['method']} (model {spec['model']}), seed {spec['seed']}; "
          f"layers from lowest to highest: {' < '.join(LAYERS)}")
    print(explain(resolved, show_all=args.all))


def cmd_leaderboard(args):
    from specbench.report.leaderboard import write_leaderboard
    for path in write_leaderboard(args.runs, Path(args.out), args.chosen, args.published, args.figures, args.metrics,
                                  ours=args.ours):
        print(path)


def cmd_fetch(args):
    from specbench.datasets import FetchOptions, fetch, load_catalog, resolve_mirror
    catalog = load_catalog(args.catalog)
    ds = catalog.get(args.dataset)
    opts = FetchOptions(retries=args.retries, backoff=args.backoff, timeout=args.timeout)
    record = json.loads(fetch(ds, Path(args.raw), resolve_mirror(args.mirror, catalog), opts).read_text())
    for entry in record["files"].values():
        rows = f"{entry['rows']:,} rows, " if entry["rows"] is not None else ""
        print(f"{Path(args.raw) / ds.name / entry['file']}: {rows}sha256 {entry['sha256']} (from {entry['source']})")


def cmd_prepare(args):
    from specbench.data import prepare
    from specbench.datasets import load_catalog
    ds = load_catalog(args.catalog).get(args.dataset)
    stats_path = prepare(ds, Path(args.raw), Path(args.out), args.test_fraction, args.seed)
    stats = json.loads(stats_path.read_text())
    print(f"{stats_path}: {stats['users']:,} users, {stats['items']:,} items, train {stats['train_rows']:,} rows, "
          f"test {stats['test_rows']:,} rows")


def cmd_datasets_table(args):
    from specbench.report.datasets import write_datasets_table
    for path in write_datasets_table([Path(p) for p in args.stats], Path(args.out)):
        print(path)


def cmd_carve_valid(args):
    from specbench.data import carve_validation
    print(carve_validation(Path(args.data_dir), args.dataset, args.fraction, args.seed))


def _search(args) -> tuple[dict, dict, dict]:
    """(trial spec, search space, protocol) of ``specbench tune`` / ``select`` (what the study passes)."""
    from specbench.study import tuning_protocol
    spec, space = json.loads(args.spec), json.loads(args.space)
    return spec, space, tuning_protocol(json.loads(args.protocol))


def cmd_tune(args):
    from specbench.tuner import run_worker
    spec, space, protocol = _search(args)
    summary = run_worker(spec, space, protocol, Path(args.journal), progress=not args.quiet)
    atomic_write_text(Path(args.out), json.dumps(summary, indent=1) + "\n")
    print(f"{args.out}: ran trials {summary['trials_run']}; {summary['finished']} of {summary['target']} finished "
          f"in {args.journal} ({summary['seconds']:.0f} s)")


def cmd_select(args):
    from specbench.tuner import export, study_name
    spec, space, protocol = _search(args)
    result = export(Path(args.journal), study_name(spec, space, protocol), space, protocol, Path(args.out))
    edges = "".join(f"; {k} at the {v} end of its range" for k, v in result["edges"].items())
    print(f"{args.out}: trial {result['chosen_trial']} of {len(result['trials'])} "
          f"({result['metric']}={result['value']:.4f} on valid, epoch {result['best_epoch']}): {result['params']}{edges}")


def cmd_tuning_check(args):
    from specbench.tuning_check import run_check
    for path in run_check(Path(args.configfile), Path(args.reference), args.cores, args.trials_factor,
                          args.epochs_factor, confirm_seeds=args.confirm_seeds, search=not args.table_only,
                          search_seeds=args.search_seeds):
        print(path)
    print((Path(args.reference) / "tuning-check.md").read_text().split("\n\n", 1)[0])


def cmd_estimate(args):
    from specbench.estimate import default_records, estimate, format_estimate, load_records
    root = Path(__file__).resolve().parents[1]
    paths = [Path(p) for p in args.bench] or default_records(root)
    if not paths:
        raise SpecbenchError("no bench record under results/bench/: run `make bench` first (or pass --bench)")
    rows = estimate(Path(args.configfile), load_records(paths), args.cores, args.gpus,
                    Path(args.calibrate) if args.calibrate else None)
    print(format_estimate(rows, Path(args.configfile)))
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(rows, indent=1) + "\n")


def cmd_rule_times(args):
    from specbench.rule_times import format_rule_times, rule_times
    logs = [Path(p) for p in args.logs] or sorted(Path(".snakemake/log").glob("*.snakemake.log"))[-1:]
    if not logs:
        raise SpecbenchError("no Snakemake log under .snakemake/log/: pass the logs to read")
    table = rule_times(logs)
    print(format_rule_times(table, logs))
    if args.json:
        atomic_write_text(Path(args.json), table.to_json(orient="records", indent=1) + "\n")


def cmd_report(args):
    from specbench.report import build_report
    written = build_report([Path(p) for p in args.runs], Path(args.out), ours=args.ours, ablation=args.ablation,
                           trial_paths=[Path(p) for p in args.trials], chosen_paths=[Path(p) for p in args.chosen])
    for path in written:
        print(path)


def cmd_figures(args):
    from specbench.regenerate import regenerate
    for path in regenerate(Path(args.folder), Path(args.study) if args.study else None, paper=not args.no_paper):
        print(path)


def cmd_paper(args):
    from specbench.regenerate import build_paper
    print(build_paper(Path(args.results), Path(args.out) if args.out else None))


def cmd_study_file(args):
    """The study's settings as the workflow runs them, beside its outputs (results/<study>/study.yaml)."""
    import yaml
    atomic_write_text(Path(args.out), "# written by the workflow (specbench study-file): the settings this study ran with\n"
                      + yaml.safe_dump(json.loads(args.config), sort_keys=False))
    print(args.out)


def cmd_readme(args):
    from specbench.report.readme import update_readme
    changed = update_readme(Path(args.readme), Path(args.reference))
    print(f"{args.readme}: results section {'updated' if changed else 'already up to date'}")


def cmd_models(args):
    from specbench.plugins import discover
    for name, entry in sorted(discover().items()):
        if args.all or entry.source != "recbole":
            print(f"{name:24s} {entry.source}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="specbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def job_options(p, seed=True):
        p.add_argument("--spec", help="the run spec as JSON (what Snakemake passes)")
        p.add_argument("--study", help="a study yaml (config/quick.yaml) to resolve the spec from")
        p.add_argument("--dataset"), p.add_argument("--backbone"), p.add_argument("--method")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")
        p.add_argument("--tuned", help="a chosen.json from `specbench select`: its settings override the spec's")

    p = sub.add_parser("run", help="train and evaluate one configuration, write its JSON")
    job_options(p)
    p.add_argument("--out", required=True, help="the run JSON to write")
    p.add_argument("--quiet", action="store_true", help="no progress lines (by default: one per epoch and "
                                                        "evaluation on stderr, a progress bar on a terminal)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("explain", help="a run's settings and where each value came from (layer and file)")
    job_options(p)
    p.add_argument("--trial", action="store_true", help="explain a tuning trial (its protocol, before the point "
                                                          "the tuner samples) instead of the test run")
    p.add_argument("--all", action="store_true", help="also list the values that later layers overrode")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("carve-valid", help="split a prepared train file into fit and valid (model selection)")
    p.add_argument("dataset")
    p.add_argument("--data-dir", default=DATA_DIR)
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=2024)
    p.set_defaults(func=cmd_carve_valid)

    def search_options(p):
        p.add_argument("--journal", required=True, help="the search's Optuna journal file (created if new)")
        p.add_argument("--spec", required=True, help="the trial spec as JSON, before its point (what Snakemake passes)")
        p.add_argument("--space", required=True, help="the search space as JSON (specbench/search_space.py)")
        p.add_argument("--protocol", required=True, help="the study's tuning block as JSON (defaults filled in)")
        p.add_argument("--out", required=True)

    p = sub.add_parser("tune", help="add trials to a search (Optuna TPE with pruning) until its budget is reached")
    search_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("select", help="the best validation trial of a search -> chosen.json, trials.csv, trials.json")
    search_options(p)
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("tuning-check", help="rerun a study's searches 4x larger (2x the epochs) and report the gain "
                                            "in the validation metric over the study's choices")
    p.add_argument("--configfile", default="config/quick.yaml", help="the study (default config/quick.yaml)")
    p.add_argument("--reference", default="results/reference/quick-cpu",
                   help="a folder with the study's tuning/ choices; the table is written there")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--trials-factor", type=int, default=4)
    p.add_argument("--epochs-factor", type=int, default=2)
    p.add_argument("--confirm-seeds", type=int, nargs="*", default=[],
                   help="retrain both chosen settings of every search that gains 3%% or more with these training "
                        "seeds (e.g. 1 2 3): is the gain real or the larger search's luck")
    p.add_argument("--search-seeds", type=int, nargs="*", default=[],
                   help="run the study's own search of every search that gains 3%% or more again at its budget "
                        "under these tuning seeds (e.g. 1 2 3): is the study's choice an unlucky draw of its budget")
    p.add_argument("--table-only", action="store_true",
                   help="run no search: write the table of the searches finished so far (here or committed)")
    p.set_defaults(func=cmd_tuning_check)

    p = sub.add_parser("estimate", help="the projected wall time of a study from bench records (make bench), "
                                        "on this machine's cores and on a GPU")
    p.add_argument("--configfile", default="config/paper.yaml", help="the study (default config/paper.yaml)")
    p.add_argument("--bench", nargs="*", default=[], help="bench JSONs (default: every results/bench/*.json)")
    p.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="parallel CPU jobs (default: this machine's)")
    p.add_argument("--gpus", type=int, default=1, help="parallel GPU jobs for a GPU record")
    p.add_argument("--calibrate", default=None, help="a finished study folder whose trials.csv give the epochs "
                                                      "trials train (default: the committed reference of the study)")
    p.add_argument("--json", default=None, help="also write the projection as JSON")
    p.set_defaults(func=cmd_estimate)

    p = sub.add_parser("rule-times", help="job time per rule from Snakemake's logs (where a workflow's time went)")
    p.add_argument("logs", nargs="*", help="Snakemake logs (default: the newest under .snakemake/log/)")
    p.add_argument("--json", default=None, help="also write the table as JSON")
    p.set_defaults(func=cmd_rule_times)

    p = sub.add_parser("fetch", help="download or copy a dataset's files into data/raw/<ds>/, checking every checksum")
    p.add_argument("dataset", help="a name in config/datasets.yaml")
    p.add_argument("--catalog", help="the dataset catalogue (default: config/datasets.yaml of this checkout)")
    p.add_argument("--raw", default=RAW_DIR, help="where data/raw/<ds>/ goes")
    p.add_argument("--mirror", help="a folder laid out like the catalogue's mirror paths (else $SPECBENCH_DATA_MIRROR, "
                                   "else the catalogue's mirror; files missing there are downloaded)")
    p.add_argument("--retries", type=int, default=3, help="download attempts per file")
    p.add_argument("--backoff", type=float, default=1.0, help="seconds before the 2nd attempt, doubling after")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before an attempt fails")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("prepare", help="write a fetched dataset's RecBole atomic files and stats.json")
    p.add_argument("dataset", help="a name in config/datasets.yaml")
    p.add_argument("--catalog", help="the dataset catalogue (default: config/datasets.yaml of this checkout)")
    p.add_argument("--raw", default=RAW_DIR, help="where `specbench fetch` put data/raw/<ds>/")
    p.add_argument("--out", default=DATA_DIR, help="where <ds>/<ds>.<split>.inter and stats.json go")
    p.add_argument("--test-fraction", type=float, help="per-user test share (datasets split here only)")
    p.add_argument("--seed", type=int, help="split seed (datasets split here only)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("datasets-table", help="the dataset statistics table from prepared stats.json files")
    p.add_argument("stats", nargs="+", help="data/atomic/<ds>/stats.json files, in table order")
    p.add_argument("--out", required=True, help="path stem, e.g. results/quick/tables/datasets: writes <stem>.csv, .md and .tex")
    p.set_defaults(func=cmd_datasets_table)

    p = sub.add_parser("report", help="tables and figures from run JSONs")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", default="results")
    p.add_argument("--ours", nargs="*", default=[], help="methods compared against the best other method")
    p.add_argument("--ablation", nargs="*", default=[], help="methods shown only in the ablation table")
    p.add_argument("--trials", nargs="*", default=[], help="sweep run JSONs for the sensitivity figure")
    p.add_argument("--chosen", nargs="*", default=[], help="tuning chosen.json files for the tuning table")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("leaderboard", help="the leaderboard (CSV, Markdown, HTML) from run JSONs")
    p.add_argument("runs", nargs="+", help="run JSONs (test split; others are ignored)")
    p.add_argument("--chosen", nargs="*", default=[], help="tuning chosen.json files")
    p.add_argument("--published", default=None, help="published numbers (config/published.yaml)")
    p.add_argument("--figures", default=None, help="a folder of PNG figures to embed")
    p.add_argument("--metrics", nargs="*", default=None, help="metrics to list (default: all but ref_*)")
    p.add_argument("--ours", nargs="*", default=[], help="method keys to mark as ours (the study's report.ours)")
    p.add_argument("--out", required=True, help="output stem, e.g. results/quick/leaderboard: writes <stem>.csv, .md and .html")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("figures", help="rebuild a study folder's tables, figures, leaderboard and paper from its "
                                       "run records alone (no training is ever planned)")
    p.add_argument("folder", help="a study folder: results/<study> or results/reference/<name> (runs/, tuning/, study.yaml)")
    p.add_argument("--study", help="the study settings to use (default: <folder>/study.yaml)")
    p.add_argument("--no-paper", action="store_true", help="skip the LaTeX paper")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("paper", help="build <results>/paper.pdf from paper/main.tex and the tables and figures there")
    p.add_argument("results", help="the study's results folder (results/<study>)")
    p.add_argument("--out", help="the PDF to write (default: <results>/paper.pdf)")
    p.set_defaults(func=cmd_paper)

    p = sub.add_parser("study-file", help="write a study's settings (JSON) as yaml beside its outputs")
    p.add_argument("--config", required=True, help="the study settings as JSON")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_study_file)

    p = sub.add_parser("readme", help="regenerate the README's results section from results/reference/")
    p.add_argument("--readme", default="README.md")
    p.add_argument("--reference", default="results/reference")
    p.set_defaults(func=cmd_readme)

    p = sub.add_parser("models", help="list the models specbench can run")
    p.add_argument("--all", action="store_true", help="include RecBole's built-ins")
    p.set_defaults(func=cmd_models)

    args = parser.parse_args(argv)
    _warnings_to_stderr()
    try:
        args.func(args)
    except SpecbenchError as exc:
        print(f"specbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C carries no message; a signal turned into one does
        print(f"specbench: interrupted ({str(exc) or 'Ctrl-C (SIGINT)'}); rerun the same command to resume",
              file=sys.stderr)
        return 130
    return 0


def _warnings_to_stderr() -> None:
    """specbench's warnings (an unreadable checkpoint moved aside, a stale temp file removed) as
    ``specbench: warning: ...`` lines on stderr."""
    import logging

    class ToStderr(logging.Handler):
        def emit(self, record):
            print(f"specbench: warning: {self.format(record)}", file=sys.stderr)  # sys.stderr as it is now

    logger = logging.getLogger("specbench")
    if not any(type(h).__name__ == "ToStderr" for h in logger.handlers):  # once, if main() runs twice
        logger.addHandler(ToStderr(logging.WARNING))


if __name__ == "__main__":
    sys.exit(main())
