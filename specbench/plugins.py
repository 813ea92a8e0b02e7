"""Find recommender models: the models/ folder, installed entry points, RecBole's built-ins.

A model is a RecBole ``GeneralRecommender`` subclass. Its defaults live in ``<ClassName>.yaml``
beside the file that defines it (RecBole's own properties/model/<Name>.yaml for built-ins), with
optional ``schema`` (JSON-schema per setting) and ``search_space`` blocks.
Adding a method means adding a file to models/ (or a package exposing the ``specbench.models``
entry point group); nothing here changes.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path

import yaml

from specbench import compat  # noqa: F401  (must precede recbole)
from specbench.errors import SpecbenchError

ENTRY_POINT_GROUP = "specbench.models"
# Blocks of a model yaml that describe settings rather than set them (``backbones``: the backbones a
# model without a ``backbone`` setting stands for, e.g. [lightgcn]; see study.new_model_methods).
META_KEYS = ("schema", "search_space", "backbones")
REPO_MODELS = Path(__file__).resolve().parents[1] / "models"


class _YamlLoader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-5`` (no dot) as a string; RecBole's own model yamls, and people, write
    floats that way. This loader reads them as floats, as RecBole's Config does."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml(path: Path):
    """A model yaml (ours or RecBole's) with scientific-notation numbers read as floats."""
    with open(path) as f:
        return yaml.load(f, Loader=_YamlLoader)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type
    source: str  # "models/<file>", "entry point <pkg>", or "recbole"
    defaults_file: Path | None

    def _yaml(self) -> dict:
        if self.defaults_file is None or not self.defaults_file.is_file():
            return {}
        data = load_yaml(self.defaults_file) or {}
        if not isinstance(data, dict):
            raise SpecbenchError(f"{self.defaults_file}: expected a mapping of settings, got {type(data).__name__}")
        return data

    def defaults(self) -> dict:
        """The model's default settings from its yaml ({} when it has none), without the meta blocks."""
        return {k: v for k, v in self._yaml().items() if k not in META_KEYS}

    def meta(self, key: str) -> dict:
        """A meta block of the yaml: ``schema`` (JSON-schema per setting) or ``search_space``."""
        return self._yaml().get(key) or {}

    def setting_names(self) -> set[str]:
        """Settings this model reads: the keys of its yaml (RecBole's own yaml for built-ins)."""
        return set(self.defaults()) | set(self.meta("schema"))


def models_dirs() -> tuple[Path, ...]:
    """Folders searched for plugin files: $SPECBENCH_MODELS (os.pathsep-separated) or ./models and the repo's models/."""
    env = os.environ.get("SPECBENCH_MODELS")
    dirs = [Path(p) for p in env.split(os.pathsep) if p] if env else [Path.cwd() / "models", REPO_MODELS]
    seen, out = set(), []
    for d in dirs:
        r = d.resolve()
        if r not in seen and r.is_dir():
            seen.add(r)
            out.append(r)
    return tuple(out)


def _recommender_base():
    from recbole.model.abstract_recommender import GeneralRecommender
    return GeneralRecommender


def _classes_in_module(module) -> list[type]:
    base = _recommender_base()
    return [c for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, base) and c is not base and c.__module__ == module.__name__
            and not inspect.isabstract(c) and not c.__name__.startswith("_")]


def _import_file(path: Path):
    name = f"specbench_models.{path.stem}"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    # Let plugin files import their siblings (e.g. a shared backbone module).
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken plugin must name itself
        del sys.modules[name]
        raise SpecbenchError(f"could not import model file {path}: {type(exc).__name__}: {exc}") from exc
    return module


def _folder_models(dirs) -> list[ModelEntry]:
    found = []
    for d in dirs:
        for path in sorted(d.glob("*.py")):
            if path.name.startswith("_"):
                continue
            for cls in _classes_in_module(_import_file(path)):
                found.append(ModelEntry(cls.__name__, cls, f"models/{path.name}", path.parent / f"{cls.__name__}.yaml"))
    return found


def _entry_point_models() -> list[ModelEntry]:
    found = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:
            raise SpecbenchError(f"entry point {ep.name!r} ({ep.value}) in group {ENTRY_POINT_GROUP} "
                                 f"failed to load: {type(exc).__name__}: {exc}") from exc
        classes = _classes_in_module(obj) if inspect.ismodule(obj) else [obj]
        for cls in classes:
            file = Path(inspect.getfile(cls))
            found.append(ModelEntry(cls.__name__, cls, f"entry point {ep.value}", file.parent / f"{cls.__name__}.yaml"))
    return found


def _recbole_models() -> list[ModelEntry]:
    # Only the general (collaborative filtering) recommenders: importing recbole.utils.get_model
    # would walk every model family and fail on optional dependencies such as lightgbm.
    import recbole
    import recbole.model.general_recommender as general
    base = _recommender_base()
    yamls = Path(recbole.__file__).parent / "properties" / "model"
    return [ModelEntry(n, c, "recbole", yamls / f"{n}.yaml") for n, c in inspect.getmembers(general, inspect.isclass)
            if issubclass(c, base) and c is not base]


@lru_cache(maxsize=None)
def _discover(dirs: tuple[Path, ...]) -> dict[str, ModelEntry]:
    registry: dict[str, ModelEntry] = {}
    for entry in _recbole_models():
        registry[entry.name] = entry
    for entry in _folder_models(dirs) + _entry_point_models():
        other = registry.get(entry.name)
        if other is not None and other.cls is not entry.cls:
            raise SpecbenchError(f"model name {entry.name!r} is defined twice: in {other.source} and in "
                                 f"{entry.source}; rename one of the classes")
        registry[entry.name] = entry
    return registry


def discover() -> dict[str, ModelEntry]:
    """All known models by class name."""
    return _discover(models_dirs())


def get_model(name: str) -> ModelEntry:
    """The model called ``name``; an unknown name fails with the list of known ones."""
    registry = discover()
    if name not in registry:
        plugins = sorted(n for n, e in registry.items() if e.source != "recbole")
        builtins = sorted(n for n, e in registry.items() if e.source == "recbole")
        raise SpecbenchError(
            f"unknown model {name!r}. Known models from models/ and entry points: {', '.join(plugins) or '(none)'}; "
            f"RecBole built-ins: {', '.join(builtins)}. Add a class to models/ or fix the name.")
    return registry[name]
