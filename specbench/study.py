"""A study = the grid of runs a workflow config asks for, and the settings layers of each run.

The study file (config/quick.yaml, config/paper.yaml) names datasets, backbones, methods of the
catalogue (config/methods.yaml), seeds, the protocol and the tuning budget. For each job this
module builds the run spec: identity (dataset, backbone, method, model class, seed, data folder)
and the settings layers that come from the study and the catalogue, each with its source. The
merge of those layers with the harness defaults and the model's yaml, in the one documented order,
is specbench/settings.py; paths come from specbench/paths.py.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from specbench import search_space
from specbench.errors import SpecbenchError
from specbench.paths import StudyPaths
from specbench.schemas import display_path
from specbench.settings import layer

# Model selection when the study's `tuning` block leaves a key out (config/schema/study.schema.yaml);
# min_epochs (the pruner's first rung) defaults to 2 x eval_step, startup_trials (TPE's random
# start) to a third of the trials, at least 2 and at most 10.
TUNING_DEFAULTS = {"trials": 8, "max_epochs": 100, "eval_step": 5, "patience": 3, "metric": "ndcg@20", "seed": 0,
                   "valid_fraction": 0.1, "split_seed": 2024, "select_epochs": True, "pruner": "hyperband",
                   "reduction_factor": 3, "min_epochs": None, "startup_trials": None, "workers": 1,
                   "run_settings": {}}
# Scheduler resources of a job when the study's `resources` table leaves a key out.
RESOURCE_DEFAULTS = {"mem_mb": 4000, "runtime": 60}


def canonical_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Method:
    """One row of a results table: a model class per backbone plus the catalogue's settings."""
    name: str
    label: str
    models: dict  # backbone -> model class name
    presets: dict = field(default_factory=dict)  # "<dataset>", "*/<backbone>" or "<dataset>/<backbone>" -> settings
    search_space: dict | None = None  # setting -> candidate values (None: the model yaml's)
    fixed: dict = field(default_factory=dict)  # what defines a variant: wins over presets
    tune: bool = True  # False: never tuned (e.g. the published settings as they are)

    @classmethod
    def from_catalogue(cls, name: str, entry: dict, where: str) -> "Method":
        """A catalogue entry (already checked against config/schema/methods.schema.yaml).

        ``model`` is a class name, run on every backbone the class declares (its ``backbones``),
        or a mapping backbone -> class name (RecBole's built-ins: BPR is MF, LightGCN is LightGCN).
        """
        from specbench.plugins import get_model
        entry = dict(entry or {})
        model = entry.get("model", name)
        if isinstance(model, dict):
            models = dict(model)
            for backbone, cls_name in models.items():
                declared = get_model(cls_name).backbones
                if declared is not None and backbone not in declared:
                    raise SpecbenchError(f"{where}.model: {cls_name} declares backbones {list(declared)}, "
                                         f"not {backbone!r}")
        else:
            declared = get_model(model).backbones
            if declared is None:
                raise SpecbenchError(f"{where}.model: {model} is a RecBole built-in that declares no backbones; "
                                     f"give a mapping backbone -> class, e.g. {{mf: {model}}}")
            models = {b: model for b in declared}
        return cls(name=name, label=entry.get("label", name), models=models, presets=entry.get("presets") or {},
                   search_space=entry.get("search_space"), fixed=entry.get("fixed") or {},
                   tune=bool(entry.get("tune", True)))


@dataclass(frozen=True)
class Job:
    dataset: str
    backbone: str
    method: str
    seed: int


def new_model_methods(catalogue: dict, backbones) -> list[Method]:
    """A method for every plugin model (models/ or an entry point) that no catalogue entry names.

    This is how a model file dropped into models/ reaches the tables and the leaderboard after one
    ``snakemake``: it runs with its yaml's defaults on the study's backbones among those its class
    declares, and is tuned over its yaml's ``search_space``.
    """
    from specbench.plugins import discover
    named = set()
    for name, entry in catalogue.items():
        model = (entry or {}).get("model", name)
        named.update(model.values() if isinstance(model, dict) else [model])
    methods = []
    for name, entry in sorted(discover().items()):
        if entry.source == "recbole" or name in named or not entry.backbones:
            continue
        models = {b: name for b in entry.backbones if b in backbones}
        if models:
            methods.append(Method(name=name, label=name, models=models))
    return methods


def tuning_protocol(block: dict) -> dict:
    """A study's ``tuning`` block with every default filled in (``TUNING_DEFAULTS``)."""
    t = {**TUNING_DEFAULTS, **block}
    if t["min_epochs"] is None:
        t["min_epochs"] = min(2 * int(t["eval_step"]), int(t["max_epochs"]))
    if t["startup_trials"] is None:
        t["startup_trials"] = min(10, max(2, int(t["trials"]) // 3))
    return t


class Study:
    def __init__(self, config: dict, root: Path = Path("."), source: str | Path | None = None):
        from specbench.schemas import check, check_file
        self.source = display_path(source) if source else "the study config"
        self.config = check(config, "study.schema.yaml", self.source)
        self.root = Path(root)
        self.paths = StudyPaths.of(config)
        catalogue_path = self.root / config.get("catalogue", "config/methods.yaml")
        self.catalogue_file = display_path(catalogue_path)
        if not catalogue_path.is_file():
            raise SpecbenchError(f"{self.source}: catalogue = {config.get('catalogue')!r}: no such file "
                                 f"{catalogue_path} (expected a method catalogue like config/methods.yaml)")
        catalogue = (check_file(catalogue_path, "methods.schema.yaml") or {}).get("methods", {})
        self.backbones = list(config.get("backbones", ["mf"]))
        self.methods = {}
        for name in config.get("methods", []):
            if name not in catalogue:
                raise SpecbenchError(f"{self.source}: method {name!r} in `methods` is not in {self.catalogue_file} "
                                     f"(known: {', '.join(sorted(catalogue))}); add an entry there")
            self.methods[name] = Method.from_catalogue(name, catalogue[name], f"{self.catalogue_file}: methods.{name}")
        if config.get("new_models"):
            for method in new_model_methods(catalogue, self.backbones):
                self.methods.setdefault(method.name, method)
        self.sweep_methods = {}  # a sweep may vary a catalogue method that the main table does not list
        for name, sweep in (config.get("sweeps") or {}).items():
            method = sweep["method"]
            if method not in self.methods and method not in catalogue:
                raise SpecbenchError(f"{self.source}: sweeps.{name}.method = {method!r} is not in {self.catalogue_file} "
                                     f"(known: {', '.join(sorted(catalogue))})")
            self.sweep_methods[method] = self.methods.get(method) or Method.from_catalogue(
                method, catalogue[method], f"{self.catalogue_file}: methods.{method}")
        self.restrict = {m: list(b) for m, b in (config.get("restrict") or {}).items()}
        self.datasets = list(config.get("datasets", []))
        self.seeds = [int(s) for s in config.get("seeds", [0])]
        self.tuning = tuning_protocol(config["tuning"]) if config.get("tuning") else None
        self._resolved = lru_cache(maxsize=None)(self._resolve)
        self._model_code = lru_cache(maxsize=None)(self._fingerprint)

    @classmethod
    def from_file(cls, path, root: Path = Path(".")) -> "Study":
        from specbench.schemas import load_yaml
        return cls(load_yaml(Path(path)), root, source=path)

    # ---- what the rules pass to the CLI (rules/*.smk only wire files) ----

    @property
    def datasets_yaml(self) -> Path:
        return self.root / "config" / "datasets.yaml"

    @property
    def published_file(self) -> str:
        return str(self.root / "config" / "published.yaml")

    @property
    def datasets_catalog(self):
        from specbench.datasets import load_catalog
        if not hasattr(self, "_catalog"):
            self._catalog = load_catalog(self.datasets_yaml)
        return self._catalog

    def check_datasets(self) -> None:
        """Every dataset of the study can be fetched (it is in config/datasets.yaml) or is prepared already."""
        from specbench.datasets import check_requested
        check_requested(self.dataset_names(), self.datasets_catalog, self.paths.data_dir)

    def fetch_args(self) -> str:
        mirror = f" --mirror {shlex.quote(str(self.config['data_mirror']))}" if self.config.get("data_mirror") else ""
        return f"--catalog {shlex.quote(str(self.datasets_yaml))} --raw {self.paths.raw_dir}{mirror}"

    def prepare_args(self, dataset: str) -> str:
        """``specbench prepare`` options: folders, and the study's ``split`` for a dataset split here."""
        args = f"--catalog {shlex.quote(str(self.datasets_yaml))} --raw {self.paths.raw_dir} --out {self.paths.data_dir}"
        split = self.config.get("split") or {}
        if split and not self.datasets_catalog.get(dataset).fixed_split:
            args += "".join(f" --{key.replace('_', '-')} {value}" for key, value in split.items())
        return args

    def carve_args(self) -> str:
        tuning = self.tuning or tuning_protocol({})
        return f"--data-dir {self.paths.data_dir} --fraction {tuning['valid_fraction']} --seed {tuning['split_seed']}"

    def spec_json(self, kind: str, dataset: str, backbone: str, method: str, index, seed=0) -> str:
        """The run spec a job passes to ``specbench run --spec``: kind "run" (index = seed) or a sweep's
        name (index = point)."""
        if kind == "run":
            spec = self.spec(dataset, backbone, method, index)
        else:
            spec = self.sweep_spec(kind, dataset, backbone, index, seed)
        return json.dumps(spec, sort_keys=True)

    def tuned_inputs(self, dataset: str, backbone: str, method: str) -> list[str]:
        """The chosen.json a test run reads when the study tunes its method, else nothing."""
        return [self.chosen_path(dataset, backbone, method)] if self.is_tuned(method) else []

    def model_code(self, backbone: str, method: str) -> str:
        """The fingerprint of the code of ``method``'s model on ``backbone`` (plugins.code_fingerprint).
        The training rules carry it as a param, so Snakemake reruns a search or a run whose model file,
        base class, helper module or yaml changed (a param change is one of its rerun triggers)."""
        return self._model_code(backbone, method)

    def _fingerprint(self, backbone: str, method: str) -> str:
        from specbench.plugins import code_fingerprint
        return code_fingerprint(self._method(method, backbone).models[backbone])

    def search_args(self, dataset: str, backbone: str, method: str) -> str:
        """What ``specbench tune`` and ``specbench select`` get: the journal, the trial spec, space, protocol."""
        spec = self.trial_spec(dataset, backbone, method)
        return " ".join([f"--journal {shlex.quote(self.journal_path(dataset, backbone, method))}",
                         f"--spec {shlex.quote(json.dumps(spec, sort_keys=True))}",
                         f"--space {shlex.quote(json.dumps(self.search_space(method, backbone)))}",
                         f"--protocol {shlex.quote(json.dumps(self.tuning, sort_keys=True))}"])

    def sensitivity_paths(self) -> list[str]:
        """The sensitivity figure's runs: the study's sweeps (none: no sensitivity figure)."""
        return self.sweep_paths()

    @property
    def ours(self) -> list[str]:
        """The methods the report compares with the best other method (``report.ours``)."""
        return list((self.config.get("report") or {}).get("ours", []))

    @property
    def ablation(self) -> list[str]:
        """The methods shown only in the ablation table (``report.ablation``) that this study runs."""
        return [m for m in (self.config.get("report") or {}).get("ablation", []) if m in self.methods]

    def report_args(self) -> str:
        return " ".join([f"--out {self.paths.results}", "--ours", *self.ours, "--ablation", *self.ablation])

    # ---- the grid ----

    def backbones_of(self, method: Method) -> list[str]:
        """The study's backbones that ``method`` supports, less any ``restrict`` entry excludes."""
        allowed = self.restrict.get(method.name, self.backbones)
        return [b for b in self.backbones if b in method.models and b in allowed]

    def jobs(self) -> list[Job]:
        return [Job(d, b, m.name, s) for d in self.datasets for m in self.methods.values()
                for b in self.backbones_of(m) for s in self.seeds]

    def run_path(self, job: Job) -> str:
        return self.paths.run.format(**vars(job))

    def run_paths(self) -> list[str]:
        return [self.run_path(j) for j in self.jobs()]

    def dataset_names(self) -> list[str]:
        """Every dataset a job of this study reads (main runs and sweeps)."""
        names = list(self.datasets)
        for sweep in self.sweeps().values():
            names += [d for d in sweep["datasets"] if d not in names]
        return names

    # ---- one job's settings ----

    def _method(self, method: str, backbone: str) -> Method:
        m = self.methods.get(method) or self.sweep_methods.get(method)
        if m is None:
            raise SpecbenchError(f"method {method!r} is not in the study {self.source} "
                                 f"(methods: {', '.join(self.methods)})")
        if backbone not in m.models:
            raise SpecbenchError(f"method {method!r} has no {backbone!r} backbone (has: {', '.join(m.models)})")
        return m

    def spec(self, dataset: str, backbone: str, method: str, seed: int | str) -> dict:
        """Everything ``specbench run`` needs for one test run (JSON-serialisable): identity and layers."""
        m = self._method(method, backbone)
        model = m.models[backbone]
        layers = []
        if self.config.get("run_defaults"):
            layers.append(layer("study", f"{self.source}: run_defaults", self.config["run_defaults"]))
        for key in (f"*/{backbone}", dataset, f"{dataset}/{backbone}"):  # most specific wins
            if m.presets.get(key):
                layers.append(layer("preset", f"{self.catalogue_file}: methods.{method}.presets.{key}", m.presets[key]))
        if m.fixed:
            layers.append(layer("fixed", f"{self.catalogue_file}: methods.{method}.fixed", m.fixed))
        if self.config.get("run_settings"):
            layers.append(layer("protocol", f"{self.source}: run_settings", self.config["run_settings"]))
        from specbench.plugins import get_model
        if get_model(model).takes_backbone:
            layers.append(layer("job", f"the job's backbone ({dataset}/{backbone}/{method})", {"backbone": backbone}))
        return {"dataset": dataset, "backbone": backbone, "method": method, "label": m.label, "model": model,
                "seed": int(seed), "data_dir": self.paths.data_dir, "layers": layers}

    def trial_spec(self, dataset: str, backbone: str, method: str) -> dict:
        """A tuning trial before its point: the test run's layers, then the tuning protocol (at most
        ``max_epochs``, early stopping, the valid carve). The tuner adds each trial's point."""
        spec = self.spec(dataset, backbone, method, self.tuning["seed"])
        t = self.tuning
        spec["layers"].append(layer("trial", f"{self.source}: tuning", {
            "epochs": t["max_epochs"], "eval_step": t["eval_step"], "early_stop_patience": t["patience"],
            "early_stop_metric": t["metric"], "validation": True}))
        if t["run_settings"]:
            spec["layers"].append(layer("trial", f"{self.source}: tuning.run_settings", t["run_settings"]))
        return spec

    def sweep_spec(self, name: str, dataset: str, backbone: str, point: int | str, seed: int | str) -> dict:
        sweep = self.sweeps()[name]
        spec = self.spec(dataset, backbone, sweep["method"], seed)
        spec["layers"].append(layer("sweep", f"{self.source}: sweeps.{name}.grid (point {int(point)})",
                                    self.sweep_points(name)[int(point)]))
        return spec

    def _resolve(self, kind: str, dataset: str, backbone: str, method: str, index: int):
        from specbench.settings import resolve
        if kind == "trial":  # index: a corner of the search space (-1: none, the trial protocol alone)
            point = search_space.corners(self.search_space(method, backbone))[index] if index >= 0 else {}
            where = f"{self.search_space_source(method, backbone)}: a bound" if point else ""
            return resolve(self.trial_spec(dataset, backbone, method), [layer("trial", where, point)] if point else [])
        if kind == "run":
            return resolve(self.spec(dataset, backbone, method, index))
        return resolve(self.sweep_spec(kind, dataset, backbone, index, 0))

    def resolved(self, dataset: str, backbone: str, method: str, *, trial: bool = False):
        """The resolved settings (settings.Resolved) of a test run, or of a tuning trial before its point; cached."""
        return self._resolved("trial" if trial else "run", dataset, backbone, method, -1 if trial else 0)

    def settings(self, dataset: str, backbone: str, method: str, *, trial: bool = False) -> dict:
        """The settings a test run (or a trial, before its point) gets, before any tuned value or --set."""
        return self.resolved(dataset, backbone, method, trial=trial).settings

    def resources(self, dataset: str, backbone: str, method: str) -> dict:
        """Scheduler resources of one job: gpu (1 when the run asks for CUDA), mem_mb, runtime (minutes).

        From the study's ``resources``: ``default`` < ``<dataset>`` < ``<dataset>/<backbone>``.
        """
        table = self.config.get("resources") or {}
        res = {**RESOURCE_DEFAULTS, **table.get("default", {}), **table.get(dataset, {}),
               **table.get(f"{dataset}/{backbone}", {})}
        res["gpu"] = int(str(self.settings(dataset, backbone, method)["device"]).startswith("cuda"))
        return res

    def job_resources(self) -> dict:
        """The ``resources:`` of every training rule, as Snakemake wants them (a function per key)."""
        return {key: (lambda w, key=key: self.resources(w.dataset, w.backbone, w.method)[key])
                for key in ("gpu", "mem_mb", "runtime")}

    def validate(self) -> None:
        """Check the datasets, and resolve and check every job's and sweep point's settings, and for a
        tuned method the trial protocol at every bound of its search space, before any training."""
        self.check_datasets()
        for key in sorted({(j.dataset, j.backbone, j.method) for j in self.jobs()}):
            self.resolved(*key)
            if self.is_tuned(key[2]):
                self.resolved(*key, trial=True)
                for corner in range(len(search_space.corners(self.search_space(key[2], key[1])))):
                    self._resolved("trial", *key, corner)
        for name, sweep in self.sweeps().items():
            for d, b in itertools.product(sweep["datasets"], sweep["backbones"]):
                for point in range(len(self.sweep_points(name))):
                    self._resolved(name, d, b, sweep["method"], point)

    # ---- model selection on a validation split carved from train (never the test split) ----

    def search_space(self, method: str, backbone: str) -> dict:
        """Each setting's distribution (specbench/search_space.py): the catalogue's ``search_space``,
        else the model yaml's."""
        m = self.methods[method]
        if m.search_space is not None:
            space = m.search_space
        else:
            from specbench.plugins import get_model
            space = get_model(m.models[backbone]).meta("search_space")
        return search_space.check_space(space, self.search_space_source(method, backbone))

    def search_space_source(self, method: str, backbone: str) -> str:
        if self.methods[method].search_space is not None:
            return f"{self.catalogue_file}: methods.{method}.search_space"
        from specbench.plugins import get_model
        return f"{display_path(get_model(self.methods[method].models[backbone]).defaults_file)}: search_space"

    def worker_paths(self, dataset: str, backbone: str, method: str) -> list[str]:
        """The summaries of the search's tuning jobs (``tuning.workers`` of them share one journal)."""
        return [self.paths.tune_worker.format(dataset=dataset, backbone=backbone, method=method, worker=w)
                for w in range(int(self.tuning["workers"]))]

    def journal_path(self, dataset: str, backbone: str, method: str) -> str:
        return self.paths.journal.format(dataset=dataset, backbone=backbone, method=method)

    def chosen_path(self, dataset: str, backbone: str, method: str) -> str:
        return self.paths.chosen.format(dataset=dataset, backbone=backbone, method=method)

    def is_tuned(self, method: str) -> bool:
        return bool(self.tuning) and self.methods[method].tune

    def tuned_keys(self) -> list[tuple[str, str, str]]:
        """(dataset, backbone, method) of every tuned job group."""
        return sorted({(j.dataset, j.backbone, j.method) for j in self.jobs() if self.is_tuned(j.method)})

    # ---- sensitivity sweeps: a grid of settings of one method, evaluated like the main runs ----

    def sweeps(self) -> dict:
        return self.config.get("sweeps") or {}

    def sweep_points(self, name: str) -> list[dict]:
        grid = self.sweeps()[name]["grid"]
        keys = sorted(grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]

    def sweep_paths(self) -> list[str]:
        return [self.paths.sweep_run.format(sweep=name, dataset=d, backbone=b, method=sweep["method"], point=p, seed=s)
                for name, sweep in self.sweeps().items() for d in sweep["datasets"] for b in sweep["backbones"]
                for p in range(len(self.sweep_points(name))) for s in sweep.get("seeds", [0])]
