"""One resolver for a run's settings: every layer in one documented order, each value's origin kept.

A run's settings are merged from these layers, later winning (``LAYERS``; README, "How a run's
settings are made"; ``specbench explain`` prints the result with the origin of every value):

 1. ``harness``   the harness defaults: ``default`` of each key in config/schema/settings.schema.yaml
 2. ``study``     the study's ``run_defaults`` (defaults a model may override)
 3. ``model``     the model's yaml (models/<Model>.yaml; RecBole's own for its built-ins)
 4. ``preset``    the catalogue's ``presets`` (config/methods.yaml), "*/<backbone>", then "<dataset>",
                  then "<dataset>/<backbone>": the most specific wins
 5. ``fixed``     the catalogue's ``fixed``: what defines a variant (an ablation)
 6. ``protocol``  the study's ``run_settings`` (epochs, evaluation, device: the same for every method)
 7. ``job``       the job itself: its ``backbone``, for a model that takes one
 8. ``trial``     a tuning trial: the study's ``tuning.run_settings``, then the point of the search
                  space, then ``validation: true`` (train on the fit carve, score the valid carve)
 9. ``sweep``     a point of a sensitivity sweep
10. ``spec``      ``params`` of a hand-written run spec (``specbench run --spec``)
11. ``tuned``     the settings chosen on validation (``chosen.json`` of ``specbench select``)
12. ``set``       ``specbench run --set key=value``

A layer is ``{"layer": name, "source": where it was read, "values": {...}}``; a run spec carries the
layers from the study (4 to 9) and the job adds 11 and 12. ``resolve`` inserts 1 and 3, merges in
this order whatever order the layers were given in, and checks the result against the schemas
(specbench/validate.py) before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from specbench.errors import SpecbenchError
from specbench.schemas import display_path

LAYERS = ("harness", "study", "model", "preset", "fixed", "protocol", "job", "trial", "sweep", "spec",
          "tuned", "set")
ROOT = Path(__file__).resolve().parents[1]
HARNESS_SCHEMA = ROOT / "config" / "schema" / "settings.schema.yaml"


def layer(name: str, source: str, values: dict) -> dict:
    """One layer of settings; ``name`` must be one of ``LAYERS``."""
    if name not in LAYERS:
        raise SpecbenchError(f"unknown settings layer {name!r} (known, lowest first: {', '.join(LAYERS)})")
    return {"layer": name, "source": str(source), "values": dict(values or {})}


@lru_cache(maxsize=None)
def harness_defaults() -> dict:
    """The ``default`` of every harness setting that has one (config/schema/settings.schema.yaml)."""
    with open(HARNESS_SCHEMA) as f:
        props = yaml.safe_load(f)["properties"]
    return {key: rule["default"] for key, rule in props.items() if "default" in rule}


@dataclass(frozen=True)
class Resolved:
    """A run's settings, the model they are for, and for each key the layer that set it."""
    entry: object  # plugins.ModelEntry
    settings: dict
    origin: dict  # key -> {"layer": ..., "source": ...} of the value that won
    trail: list = field(default_factory=list)  # every value of every layer, lowest first (explain --all)

    def origin_record(self) -> dict:
        """What the run JSON records: for every setting, the layer and file that set it."""
        return {key: dict(self.origin[key]) for key in self.settings}


def spec_layers(spec: dict) -> list[dict]:
    """The layers a run spec carries; a hand-written spec's ``params`` are the ``spec`` layer."""
    layers = [dict(item) for item in spec.get("layers", [])]
    if spec.get("params"):
        layers.append(layer("spec", "the run spec's params", spec["params"]))
    return layers


def resolve(spec: dict, extra: list[dict] = ()) -> Resolved:
    """Merge every layer of ``spec`` (plus ``extra``: tuned, --set) in ``LAYERS`` order and validate.

    This is the only place a run's settings are put together; ``specbench run``, ``bench``, the
    workflow's planning check and ``specbench explain`` all call it.
    """
    from specbench.plugins import get_model
    from specbench.validate import validate_settings
    entry = get_model(spec["model"])
    given = spec_layers(spec) + [dict(item) for item in extra]
    for item in given:
        if item.get("layer") not in LAYERS:
            raise SpecbenchError(f"run spec of {spec.get('method')}: unknown settings layer {item.get('layer')!r} "
                                 f"(known: {', '.join(LAYERS)})")
        if item["layer"] in ("harness", "model"):
            raise SpecbenchError(f"run spec of {spec.get('method')}: the {item['layer']!r} layer is read from its "
                                 "file by the resolver, not given in a spec")
    model_source = display_path(entry.defaults_file) if entry.defaults_file else f"model {entry.name} (no yaml)"
    layers = [layer("harness", display_path(HARNESS_SCHEMA), harness_defaults()),
              layer("model", model_source, entry.defaults()), *given]
    layers.sort(key=lambda item: LAYERS.index(item["layer"]))  # stable: given order within a layer
    settings, origin, trail = {}, {}, []
    for item in layers:
        for key, value in item["values"].items():
            settings[key] = value
            origin[key] = {"layer": item["layer"], "source": item["source"]}
            trail.append({"key": key, "value": value, "layer": item["layer"], "source": item["source"]})
    validate_settings(entry, settings, where=f"{spec['dataset']}/{spec['backbone']}/{spec['method']}")
    return Resolved(entry, settings, origin, trail)


def explain(resolved: Resolved, show_all: bool = False) -> str:
    """The settings as a table, each with its layer and source (``git config --show-origin``-like).

    ``show_all`` also lists the values that a later layer overrode, under the one that won.
    """
    rows = [("setting", "value", "layer", "source")]
    for key in sorted(resolved.settings):
        won = resolved.origin[key]
        rows.append((key, _show(resolved.settings[key]), won["layer"], won["source"]))
        if show_all:
            lost = [t for t in resolved.trail if t["key"] == key][:-1]
            rows.extend(("  (was)", _show(t["value"]), t["layer"], t["source"]) for t in reversed(lost))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 6)
    return "\n".join(line.rstrip() for line in lines)


def _show(value) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
