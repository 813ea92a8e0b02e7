"""A study = the grid of runs a Snakemake config asks for, and the exact settings of each run.

Settings of one run, later entries winning:
RecBole defaults < ``run_defaults`` (study) < the model's <Model>.yaml < the method's ``params``
< the method's ``presets`` (per dataset and/or backbone) < the method's ``fixed`` settings (what
defines a variant) < ``run_settings`` (study protocol, e.g. epochs) < tuned settings < overrides.
The model yaml is merged inside ``specbench.run``; everything else is resolved here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from specbench.errors import SpecbenchError

RUNS_DIR = "results/runs"
TUNING_DIR = "results/tuning"


def canonical_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Method:
    """One row of a results table: a model class per backbone plus settings."""
    name: str
    label: str
    models: dict  # backbone -> model class name
    params: dict = field(default_factory=dict)
    presets: dict = field(default_factory=dict)  # "<dataset>", "*/<backbone>" or "<dataset>/<backbone>" -> params
    search_space: dict | None = None  # setting -> candidate values (None: the model yaml's)
    fixed: dict = field(default_factory=dict)  # what defines a variant: wins over presets
    tune: bool = True  # False: never tuned (e.g. the published settings as they are)
    passes_backbone: bool = False  # the model takes ``backbone`` as a setting

    @classmethod
    def from_catalogue(cls, name: str, entry: dict, backbones) -> "Method":
        entry = dict(entry or {})
        model = entry.pop("model", name)
        models = model if isinstance(model, dict) else {b: model for b in entry.pop("backbones", backbones)}
        return cls(name=name, label=entry.pop("label", name), models=dict(models),
                   params=entry.pop("params", {}) or {}, presets=entry.pop("presets", {}) or {},
                   search_space=entry.pop("search_space", None), fixed=entry.pop("fixed", {}) or {},
                   tune=bool(entry.pop("tune", True)),
                   passes_backbone=not isinstance(model, dict))


@dataclass(frozen=True)
class Job:
    dataset: str
    backbone: str
    method: str
    seed: int

    @property
    def path(self) -> str:
        return f"{RUNS_DIR}/{self.dataset}/{self.backbone}/{self.method}/{self.seed}.json"


def new_model_methods(catalogue: dict, backbones) -> list[Method]:
    """A method for every plugin model (models/ or an entry point) that no catalogue entry names.

    This is how a model file dropped into models/ reaches the tables and the leaderboard after one
    ``snakemake``: it runs with its yaml's defaults and is tuned over its yaml's ``search_space``.
    Backbones: the ``enum`` of a ``backbone`` setting in its schema (else its default backbone),
    or, for a model without a ``backbone`` setting, its yaml's ``backbones`` list (default: mf).
    """
    from specbench.plugins import discover
    named = set()
    for entry in catalogue.values():
        model = (entry or {}).get("model")
        named.update(model.values() if isinstance(model, dict) else [model])
    named.update(name for name, entry in catalogue.items() if not (entry or {}).get("model"))
    methods = []
    for name, entry in sorted(discover().items()):
        if entry.source == "recbole" or name in named:
            continue
        defaults = entry.defaults()
        if "backbone" in defaults:
            supported = entry.meta("schema").get("backbone", {}).get("enum") or [defaults["backbone"]]
            methods.append(Method(name=name, label=name, models={b: name for b in supported if b in backbones},
                                  passes_backbone=True))
        else:
            fixed = entry.meta("backbones") or ["mf"]
            methods.append(Method(name=name, label=name, models={b: name for b in fixed if b in backbones}))
    return [m for m in methods if m.models]


class Study:
    def __init__(self, config: dict, root: Path = Path(".")):
        self.config = config
        self.root = Path(root)
        catalogue_file = self.root / config.get("catalogue", "config/methods.yaml")
        with open(catalogue_file) as f:
            catalogue = (yaml.safe_load(f) or {}).get("methods", {})
        catalogue.update(config.get("methods_extra", {}) or {})
        backbones = list(config.get("backbones", ["mf"]))
        self.methods = {}
        for name in config.get("methods", []):
            if name not in catalogue:
                raise SpecbenchError(f"method {name!r} in the study's `methods` is not in {catalogue_file} "
                                     f"(known: {', '.join(sorted(catalogue))}); add an entry there")
            self.methods[name] = Method.from_catalogue(name, catalogue[name], backbones)
        if config.get("new_models"):
            for method in new_model_methods(catalogue, backbones):
                self.methods.setdefault(method.name, method)
        self.backbones = backbones
        self.restrict = {m: list(b) for m, b in (config.get("restrict") or {}).items()}
        self.datasets = list(config.get("datasets", []))
        self.seeds = [int(s) for s in config.get("seeds", [0])]

    @classmethod
    def from_file(cls, path, root: Path = Path(".")) -> "Study":
        with open(path) as f:
            return cls(yaml.safe_load(f), root)

    def backbones_of(self, method: Method) -> list[str]:
        """The study's backbones that ``method`` supports, less any ``restrict`` entry excludes."""
        allowed = self.restrict.get(method.name, self.backbones)
        return [b for b in self.backbones if b in method.models and b in allowed]

    def jobs(self) -> list[Job]:
        return [Job(d, b, m.name, s) for d in self.datasets for m in self.methods.values()
                for b in self.backbones_of(m) for s in self.seeds]

    def run_paths(self) -> list[str]:
        return [j.path for j in self.jobs()]

    def resources(self, dataset: str, backbone: str, method: str) -> dict:
        """Scheduler resources of one job: gpu (1 when the run asks for CUDA), mem_mb, runtime (minutes).

        From the study's ``resources``: ``default`` < ``<dataset>`` < ``<dataset>/<backbone>``.
        """
        table = self.config.get("resources") or {}
        res = {"mem_mb": 4000, "runtime": 60, **table.get("default", {}), **table.get(dataset, {}),
               **table.get(f"{dataset}/{backbone}", {})}
        device = str(self.spec(dataset, backbone, method, 0)["params"].get("device", "cpu"))
        res["gpu"] = int(device.startswith("cuda"))
        return res

    def validate(self) -> None:
        """Resolve and check every job's settings (types, ranges, unknown keys) before any training."""
        from specbench.validate import resolve_settings
        checked = set()
        for job in self.jobs():
            key = (job.dataset, job.backbone, job.method)
            if key not in checked:
                checked.add(key)
                resolve_settings(self.spec(*key, job.seed))
                if self.is_tuned(job.method):
                    for trial in range(len(self.trials(*key))):
                        resolve_settings(self.trial_spec(*key, trial))

    def spec(self, dataset: str, backbone: str, method: str, seed: int | str) -> dict:
        """Everything ``specbench run`` needs for one job (JSON-serialisable)."""
        if method not in self.methods:
            raise SpecbenchError(f"method {method!r} is not in this study (methods: {', '.join(self.methods)})")
        m = self.methods[method]
        if backbone not in m.models:
            raise SpecbenchError(f"method {method!r} has no {backbone!r} backbone (has: {', '.join(m.models)})")
        presets = {}
        for key in (f"*/{backbone}", dataset, f"{dataset}/{backbone}"):  # most specific wins
            presets.update(m.presets.get(key) or {})
        params = {**self.config.get("run_defaults", {}), **m.params, **presets, **m.fixed,
                  **self.config.get("run_settings", {})}
        if m.passes_backbone:
            params["backbone"] = backbone
        return {"dataset": dataset, "backbone": backbone, "method": method, "label": m.label,
                "model": m.models[backbone], "seed": int(seed),
                "data_dir": self.config.get("data_dir", "data/atomic"), "params": params}

    # ---- model selection on a validation split carved from train (never the test split) ----

    @property
    def tuning(self) -> dict | None:
        return self.config.get("tuning")

    def search_space(self, method: str, backbone: str) -> dict:
        """Candidate values per setting: the catalogue's ``search_space``, else the model yaml's."""
        m = self.methods[method]
        if m.search_space is not None:
            return dict(m.search_space)
        from specbench.plugins import get_model
        return dict(get_model(m.models[backbone]).meta("search_space"))

    def trials(self, dataset: str, backbone: str, method: str) -> list[dict]:
        """The settings tried: the whole grid, or a seeded sample of ``tuning.budget`` points of it.

        Every method gets the same budget; a method without a search space gets one trial (its
        defaults), which still selects its number of epochs on validation.
        """
        import itertools
        import random
        space = self.search_space(method, backbone)
        keys = sorted(space)
        grid = [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))] or [{}]
        budget = int(self.tuning.get("budget", len(grid)))
        if len(grid) > budget:
            rng = random.Random(f"{self.tuning.get('seed', 0)}/{dataset}/{backbone}/{method}")
            grid = [grid[i] for i in sorted(rng.sample(range(len(grid)), budget))]
        return grid

    def trial_spec(self, dataset: str, backbone: str, method: str, trial: int | str) -> dict:
        spec = self.spec(dataset, backbone, method, self.tuning.get("seed", 0))
        spec["params"].update(self.tuning.get("run_settings", {}))
        spec["params"].update(self.trials(dataset, backbone, method)[int(trial)])
        spec["params"]["validation"] = True
        return spec

    def trial_paths(self, dataset: str, backbone: str, method: str) -> list[str]:
        n = len(self.trials(dataset, backbone, method))
        return [f"{TUNING_DIR}/{dataset}/{backbone}/{method}/trial-{i}.json" for i in range(n)]

    def chosen_path(self, dataset: str, backbone: str, method: str) -> str:
        return f"{TUNING_DIR}/{dataset}/{backbone}/{method}/chosen.json"

    def is_tuned(self, method: str) -> bool:
        return bool(self.tuning) and self.methods[method].tune

    def tuned_keys(self) -> list[tuple[str, str, str]]:
        """(dataset, backbone, method) of every tuned job group."""
        return sorted({(j.dataset, j.backbone, j.method) for j in self.jobs() if self.is_tuned(j.method)})

    # ---- sensitivity sweeps: a grid of settings of one method, evaluated like the main runs ----

    def sweeps(self) -> dict:
        return self.config.get("sweeps") or {}

    def sweep_points(self, name: str) -> list[dict]:
        import itertools
        grid = self.sweeps()[name]["grid"]
        keys = sorted(grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]

    def sweep_paths(self) -> list[str]:
        paths = []
        for name, sweep in self.sweeps().items():
            for d in sweep["datasets"]:
                for b in sweep["backbones"]:
                    for p in range(len(self.sweep_points(name))):
                        for seed in sweep.get("seeds", [0]):
                            paths.append(f"results/sweeps/{name}/{d}/{b}/{sweep['method']}/{p}-{seed}.json")
        return paths

    def sweep_spec(self, name: str, dataset: str, backbone: str, point: int | str, seed: int | str) -> dict:
        sweep = self.sweeps()[name]
        spec = self.spec(dataset, backbone, sweep["method"], seed)
        spec["params"].update(self.sweep_points(name)[int(point)])
        return spec
