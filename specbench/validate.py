"""Settings checked against a JSON schema before any training.

The schema of one run = the harness settings (config/schema/settings.schema.yaml) plus the
model's own settings: each key of its yaml, typed by its default value unless the yaml's
``schema`` block says more (e.g. ``alpha: {type: number, minimum: 0}``). Unknown keys are
errors, so a typo is never silently ignored; so is a number that is not finite (``.nan``,
``.inf``: they pass ``minimum`` checks, and then fail as a diverged training).
"""

from __future__ import annotations

import difflib
import math

import jsonschema

from specbench.errors import SpecbenchError
from specbench.schemas import SCHEMA_DIR, json_type, load_schema


def _type_of(value) -> dict:
    """The JSON-schema type of a yaml default (nothing for null: any value is allowed)."""
    kind = json_type(value)
    return {"type": kind} if kind in ("boolean", "integer", "number", "string", "array", "object") else {}


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
    if entry.takes_backbone:  # the backbones the class declares (ModelEntry.backbones), nothing else
        props["backbone"] = {**props.get("backbone", {}), "enum": list(entry.backbones)}
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


def _not_finite(value, path=()):
    """(path, value) of every float in ``value`` (a setting, maybe a list or mapping) that is nan or inf."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _not_finite(v, path + (i,))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _not_finite(v, path + (k,))


def _key(path) -> str:
    """topk[0], a.b: the place of a value in the settings."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(settings)"


def validate_settings(entry, settings: dict, where: str) -> None:
    """Raise one SpecbenchError naming every bad key, its value and what is allowed."""
    schema = settings_schema(entry)
    validator = jsonschema.Draft202012Validator(schema)
    problems, bad = [], set()
    for err in sorted(validator.iter_errors(settings), key=lambda e: [str(p) for p in e.absolute_path]):
        if err.validator == "additionalProperties":
            known = sorted(schema["properties"])
            for key in sorted(set(settings) - set(known)):
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unknown setting {key!r}{hint}")
                bad.add(key)
            continue
        path = tuple(err.absolute_path)
        top = str(path[0]) if path else None
        rule = schema["properties"].get(top, {}) if top else {}
        if len(path) > 1 and isinstance(err.schema, dict):
            rule = err.schema  # an item of a list (topk[0]): its own rule, not the list's
        problems.append(f"{_key(path)} = {err.instance!r} is not allowed: expected {_describe(rule)}")
        bad.add(top)
    for key in sorted(k for k in settings if k not in bad):
        for path, value in _not_finite(settings[key], (key,)):
            problems.append(f"{_key(path)} = {value!r} is not allowed: expected a finite number "
                            "(.nan and .inf are not values a run can train with)")
    problems += _protocol_problems(settings)
    if problems:
        raise SpecbenchError(f"invalid settings for model {entry.name} ({where}): " + "; ".join(problems)
                             + f". Model settings are declared in {entry.defaults_file or 'its yaml'}; "
                               f"harness settings in {SCHEMA_DIR / 'settings.schema.yaml'}.")


def _protocol_problems(settings: dict) -> list[str]:
    """Settings that are each allowed but not together: early stopping on the test split (it would pick
    the epoch on test), or a stopping metric at a cut-off that is not evaluated."""
    problems = []
    if int(settings.get("early_stop_patience") or 0) > 0:
        if not settings.get("validation"):
            problems.append(f"early_stop_patience = {settings['early_stop_patience']} needs validation: true "
                            "(early stopping on the test split would choose the epoch on test; final runs train "
                            "for the epochs chosen on validation instead)")
        metric = str(settings.get("early_stop_metric", "ndcg@20"))
        k = metric.partition("@")[2]
        if k.isdigit() and int(k) not in [int(t) for t in settings.get("topk", [])]:
            problems.append(f"early_stop_metric = {metric!r} is not evaluated: its cut-off {k} is not in "
                            f"topk = {settings.get('topk')}")
    return problems
