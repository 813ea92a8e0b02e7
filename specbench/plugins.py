"""Find recommender models: the specbench_models package (models/), extra folders, installed entry
points, RecBole's built-ins.

A model is a RecBole ``GeneralRecommender`` subclass. Its defaults live in ``<ClassName>.yaml``
beside the file that defines it (RecBole's own properties/model/<Name>.yaml for built-ins), with
optional ``schema`` (JSON-schema per setting) and ``search_space`` blocks. The backbones it runs on
are its class attribute ``backbones`` (specbench_models.base.EncoderRecommender: mf and lightgcn).
Adding a method means adding a file to models/ (or to a folder named by $SPECBENCH_MODELS, or a
package exposing the ``specbench.models`` entry point group); nothing here changes.

models/ is the package ``specbench_models`` (pyproject.toml maps the name to the folder), so a
model file imports shared pieces as package modules (``from .backbones import Encoder``; from a
file elsewhere ``from specbench_models.backbones import Encoder``) and each is loaded once. Files
in $SPECBENCH_MODELS folders are imported by location, each folder as a package of its own under
a unique name; nothing here edits sys.path.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import pkgutil
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path


from specbench import compat  # noqa: F401  (must precede recbole)
from specbench.errors import SpecbenchError

ENTRY_POINT_GROUP = "specbench.models"
PACKAGE = "specbench_models"
# Blocks of a model yaml that describe settings rather than set them.
META_KEYS = ("schema", "search_space")
# The backbones of a plugin class that declares none (e.g. a plain GeneralRecommender subclass).
DEFAULT_BACKBONES = ("mf",)


@lru_cache(maxsize=None)
def _read_yaml(path: Path, mtime_ns: int, check: bool) -> dict:
    """A model yaml, parsed once per version of the file; ours are checked against
    config/schema/model.schema.yaml (RecBole's own are read as they are)."""
    from specbench.schemas import check_model_file, load_yaml
    data = check_model_file(path) if check else load_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecbenchError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type
    source: str  # "models/<file>", "entry point <pkg>", or "recbole"
    defaults_file: Path | None

    def _yaml(self) -> dict:
        if self.defaults_file is None or not self.defaults_file.is_file():
            return {}
        path = Path(self.defaults_file)
        return _read_yaml(path, path.stat().st_mtime_ns, self.source != "recbole")

    @property
    def takes_backbone(self) -> bool:
        """Whether the model takes ``backbone`` as a setting: its yaml has a ``backbone`` key."""
        return "backbone" in self._yaml()

    @property
    def backbones(self) -> tuple[str, ...] | None:
        """The backbones the model runs on: its class attribute ``backbones``; for a plugin class
        without one, its yaml's default ``backbone`` if it takes one, else mf. None for RecBole's
        built-ins (the catalogue's backbone -> class mapping decides for those)."""
        if self.source == "recbole":
            return None
        declared = getattr(self.cls, "backbones", None)
        if declared is not None:
            if isinstance(declared, str):
                raise SpecbenchError(f"{self.name} ({self.source}): backbones must be a tuple of names, "
                                     f"e.g. ({declared!r},), not the string {declared!r}")
            return tuple(declared)
        if self.takes_backbone:
            return (str(self._yaml()["backbone"]),)
        return DEFAULT_BACKBONES

    def defaults(self) -> dict:
        """The model's default settings from its yaml ({} when it has none), without the meta blocks."""
        return {k: v for k, v in self._yaml().items() if k not in META_KEYS}

    def meta(self, key: str) -> dict:
        """A meta block of the yaml: ``schema`` (JSON-schema per setting) or ``search_space``."""
        return self._yaml().get(key) or {}


def package_dir() -> Path:
    """The folder of the specbench_models package (the repository's models/)."""
    import specbench_models
    return Path(next(iter(specbench_models.__path__))).resolve()


def extra_dirs() -> tuple[Path, ...]:
    """Folders named by $SPECBENCH_MODELS (os.pathsep-separated) that exist, less the package's own."""
    env = os.environ.get("SPECBENCH_MODELS", "")
    seen, out = {package_dir()}, []
    for p in env.split(os.pathsep):
        r = Path(p).resolve() if p else None
        if r is not None and r not in seen and r.is_dir():
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


def _broken(path: Path, exc: Exception) -> SpecbenchError:
    return SpecbenchError(f"could not import model file {path}: {type(exc).__name__}: {exc}")


def _package_modules() -> list:
    """The method modules of specbench_models: every module but ``_``-prefixed and shared ones."""
    import specbench_models
    shared = set(getattr(specbench_models, "SHARED_MODULES", ()))
    modules = []
    for info in sorted(pkgutil.iter_modules(specbench_models.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in shared:
            continue
        try:
            modules.append(importlib.import_module(f"{PACKAGE}.{info.name}"))
        except Exception as exc:  # a broken plugin must name itself
            raise _broken(Path(info.module_finder.path) / f"{info.name}.py", exc) from exc
    return modules


def _folder_package(folder: Path) -> str:
    """A package of its own for an extra folder, under a name unique to its path (so its files may
    import each other relatively, ``from ._shared import x``)."""
    name = f"{PACKAGE}_dir_{hashlib.sha1(str(folder).encode()).hexdigest()[:12]}"
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        package = importlib.util.module_from_spec(spec)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    return name


def _import_file(path: Path):
    """The module of a file in an extra folder, imported by location (once per file)."""
    name = f"{_folder_package(path.parent)}.{path.stem}"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken plugin must name itself
        del sys.modules[name]
        raise _broken(path, exc) from exc
    return module


def _entry(cls: type, file: Path) -> ModelEntry:
    return ModelEntry(cls.__name__, cls, f"models/{file.name}", file.parent / f"{cls.__name__}.yaml")


def _folder_models(extra) -> list[ModelEntry]:
    found = []
    for module in _package_modules():
        found.extend(_entry(cls, Path(module.__file__)) for cls in _classes_in_module(module))
    for d in extra:
        for path in sorted(d.glob("*.py")):
            if path.name.startswith("_"):
                continue
            found.extend(_entry(cls, path) for cls in _classes_in_module(_import_file(path)))
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
def _discover(extra: tuple[Path, ...]) -> dict[str, ModelEntry]:
    registry: dict[str, ModelEntry] = {}
    for entry in _recbole_models():
        registry[entry.name] = entry
    for entry in _folder_models(extra) + _entry_point_models():
        other = registry.get(entry.name)
        if other is not None and other.cls is not entry.cls:
            raise SpecbenchError(f"model name {entry.name!r} is defined twice: in {other.source} and in "
                                 f"{entry.source}; rename one of the classes")
        registry[entry.name] = entry
    return registry


def discover() -> dict[str, ModelEntry]:
    """All known models by class name."""
    return _discover(extra_dirs())


def _package_module(obj):
    """The module ``obj`` (a module, class or function) comes from when that is models/ or a
    $SPECBENCH_MODELS folder, else None."""
    name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None)
    module = sys.modules.get(name) if isinstance(name, str) and name.startswith(PACKAGE) else None
    return module if getattr(module, "__file__", None) else None


def code_fingerprint(name: str) -> str:
    """A hash of the code and defaults that make model ``name`` what it is: the files of its classes
    (its own and every base class from models/ or a $SPECBENCH_MODELS folder), of the modules,
    functions and classes those files take from the same place, and its yaml. A search keyed by it
    never resumes after the model changed (specbench/tuner.py). RecBole and torch are pinned by the
    environment, so a built-in model's fingerprint is RecBole's version."""
    entry = get_model(name)
    if entry.source == "recbole":
        import recbole
        return f"recbole-{recbole.__version__}"
    modules = {m for c in entry.cls.__mro__ if (m := _package_module(c))}
    modules |= {m for module in list(modules) for obj in vars(module).values() if (m := _package_module(obj))}
    files = {Path(m.__file__) for m in modules}
    if entry.defaults_file is not None and Path(entry.defaults_file).is_file():
        files.add(Path(entry.defaults_file))
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


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
