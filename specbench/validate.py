"""Settings checked against a JSON schema before any training.

The schema of one run = the harness settings (config/schema/settings.schema.yaml) plus the
model's own settings: each key of its yaml, typed by its default value unless the yaml's
``schema`` block says more (e.g. ``alpha: {type: number, minimum: 0}``). Unknown keys are
errors, so a typo is never silently ignored.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

from specbench.errors import SpecbenchError

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "config" / "schema"
# Values of the harness settings when neither the study nor the model sets them.
HARNESS_DEFAULTS = {
    "epochs": 100, "eval_step": 10, "train_batch_size": 2048, "learner": "adam", "learning_rate": 1e-3,
    "weight_decay": 0.0, "lr_decay": 1.0, "train_sampler": "pairs", "topk": [10, 20], "device": "cpu",
    "eval_scores_per_block": 2**24, "checkpoint_every": 0, "clip_grad_norm": None, "eval_at_start": True,
}


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    with open(SCHEMA_DIR / name) as f:
        return yaml.safe_load(f)


def _type_of(value) -> dict:
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, dict):
        return {"type": "object"}
    return {}


def settings_schema(entry) -> dict:
    """JSON schema for every setting a run of ``entry`` (a plugins.ModelEntry) may have."""
    harness = load_schema("settings.schema.yaml")
    props = dict(harness["properties"])
    explicit = entry.meta("schema")
    for key, default in entry.defaults().items():
        if key not in props:
            props[key] = _type_of(default)
            if props[key].get("type") == "integer" and key not in explicit:
                props[key] = {"type": "number"}  # an int default (e.g. lr 1) must not forbid 0.5
    for key, rule in explicit.items():
        props[key] = {**props.get(key, {}), **rule}
    return {"type": "object", "properties": props, "additionalProperties": False}


def _describe(rule: dict) -> str:
    parts = []
    if "enum" in rule:
        parts.append("one of " + ", ".join(map(repr, rule["enum"])))
    if "type" in rule:
        parts.append(rule["type"] if isinstance(rule["type"], str) else " or ".join(rule["type"]))
    for word, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if word in rule:
            parts.append(f"{sign} {rule[word]}")
    if "pattern" in rule:
        parts.append(f"matching {rule['pattern']}")
    return " ".join(parts) or "see the schema"


def validate_settings(entry, settings: dict, where: str) -> None:
    """Raise one SpecbenchError naming every bad key, its value and what is allowed."""
    schema = settings_schema(entry)
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(settings), key=lambda e: list(e.absolute_path)):
        if err.validator == "additionalProperties":
            known = sorted(schema["properties"])
            for key in sorted(set(settings) - set(known)):
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unknown setting {key!r}{hint}")
            continue
        key = ".".join(str(p) for p in err.absolute_path) or "(settings)"
        top = str(err.absolute_path[0]) if err.absolute_path else None
        rule = schema["properties"].get(top, {}) if top else {}
        problems.append(f"{key} = {err.instance!r} is not allowed: expected {_describe(rule)}")
    if problems:
        raise SpecbenchError(f"invalid settings for model {entry.name} ({where}): " + "; ".join(problems)
                             + f". Model settings are declared in {entry.defaults_file or 'its yaml'}; "
                               f"harness settings in {SCHEMA_DIR / 'settings.schema.yaml'}.")


def resolve_settings(spec: dict):
    """(model entry, validated settings) of a run spec: harness defaults < model yaml < spec params."""
    from specbench.plugins import get_model
    entry = get_model(spec["model"])
    settings = {**HARNESS_DEFAULTS, **entry.defaults(), **spec.get("params", {})}
    validate_settings(entry, settings, where=f"{spec['dataset']}/{spec['backbone']}/{spec['method']}")
    return entry, settings
