"""A method's search space: the distributions the tuner (specbench/tuner.py) samples, as declared in yaml.

A space maps a setting to one of (models/<Model>.yaml ``search_space``, or the catalogue's):

- a list of values: a categorical choice, e.g. ``n_layers: [2, 3]``;
- ``{low: 1.0e-4, high: 1.0e-2, log: true}``: a float range, log-uniform with ``log``;
- ``{low: 10, high: 1000, log: true, int: true}``: an integer range;
- ``step`` (optional): a grid step inside the range (not with ``log``).

``suggest`` draws a value for an Optuna trial. ``corners`` are the settings a study checks
before any job (each key at its low and high end, every categorical value) so that a bound outside a
setting's schema fails at once, not in trial 7; ``edges`` flags a chosen value that lies at the end
of its range, where a wider range could do better.
"""

from __future__ import annotations

import math

from specbench.errors import SpecbenchError

# A chosen value within this share of its range (log scale for log ranges) of an end lies "at the edge".
EDGE_SHARE = 0.05


def _check(key: str, rule, where: str) -> None:
    if isinstance(rule, list):
        if not rule:
            raise SpecbenchError(f"{where}: search_space.{key} is an empty list (expected at least one value)")
        return
    if not isinstance(rule, dict) or "low" not in rule or "high" not in rule:
        raise SpecbenchError(f"{where}: search_space.{key} = {rule!r}: expected a list of values or "
                             "{low: ..., high: ..., log: true|false, int: true|false, step: ...}")
    unknown = set(rule) - {"low", "high", "log", "int", "step"}
    if unknown:
        raise SpecbenchError(f"{where}: search_space.{key} has unknown keys {sorted(unknown)} "
                             "(known: low, high, log, int, step)")
    low, high = rule["low"], rule["high"]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise SpecbenchError(f"{where}: search_space.{key}: low = {low!r} and high = {high!r} must be numbers "
                             "with low < high")
    if rule.get("log") and low <= 0:
        raise SpecbenchError(f"{where}: search_space.{key}: a log range needs low > 0 (got {low!r})")
    if rule.get("log") and rule.get("step"):
        raise SpecbenchError(f"{where}: search_space.{key}: step and log cannot be combined")


def check_space(space: dict, where: str) -> dict:
    """``space`` if every entry is well formed, else a SpecbenchError naming the key and ``where``."""
    for key, rule in (space or {}).items():
        _check(key, rule, where)
    return dict(space or {})


def suggest(trial, key: str, rule):
    """The value of ``key`` for an Optuna ``trial``, from its entry ``rule``."""
    if isinstance(rule, list):
        return trial.suggest_categorical(key, rule)
    if rule.get("int"):
        return trial.suggest_int(key, int(rule["low"]), int(rule["high"]), log=bool(rule.get("log")),
                                 step=int(rule.get("step") or 1))
    return trial.suggest_float(key, float(rule["low"]), float(rule["high"]), log=bool(rule.get("log")),
                               step=rule.get("step"))


def contains(rule, value) -> bool:
    """Whether ``value`` is a point of the entry ``rule`` (used to seed trial 0 with the defaults)."""
    if isinstance(rule, list):
        return value in rule
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if rule.get("int") and float(value) != int(value):
        return False
    return rule["low"] <= value <= rule["high"]


def corners(space: dict) -> list[dict]:
    """One point per range end and categorical value, each alone (the others at their defaults)."""
    points = []
    for key, rule in space.items():
        values = rule if isinstance(rule, list) else [rule["low"], rule["high"]]
        points += [{key: (int(v) if isinstance(rule, dict) and rule.get("int") else v)} for v in values]
    return points


def position(rule, value) -> float | None:
    """Where ``value`` lies in its range, 0 (low) to 1 (high), on the log scale for a log range; for a
    categorical of at least three numbers, its rank among them; None for any other categorical (with
    two choices either one is an end: no warning says anything there)."""
    if isinstance(rule, list):
        numeric = sorted({v for v in rule if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if len(numeric) < 3 or len(numeric) != len(set(rule)) or value not in numeric:
            return None
        return numeric.index(value) / (len(numeric) - 1)
    low, high, v = float(rule["low"]), float(rule["high"]), float(value)
    if rule.get("log"):
        low, high, v = math.log(low), math.log(high), math.log(v)
    return (v - low) / (high - low)


def edges(space: dict, chosen: dict) -> dict:
    """{setting: "low" | "high"} for each chosen value at (within EDGE_SHARE of) an end of its range."""
    out = {}
    for key, rule in space.items():
        if key not in chosen:
            continue
        where = position(rule, chosen[key])
        if where is None:
            continue
        if where <= EDGE_SHARE:
            out[key] = "low"
        elif where >= 1 - EDGE_SHARE:
            out[key] = "high"
    return out


def describe(space: dict) -> str:
    """'learning_rate ∈ [1e-4, 1e-2] (log); n_layers ∈ {2, 3}': the space as a caption prints it."""
    parts = []
    for key, rule in space.items():
        if isinstance(rule, list):
            parts.append(f"{key} ∈ {{{', '.join(_fmt(v) for v in rule)}}}")
        else:
            kind = ", ".join(w for w, on in (("log", rule.get("log")), ("integer", rule.get("int"))) if on)
            step = f" step {_fmt(rule['step'])}" if rule.get("step") else ""
            parts.append(f"{key} ∈ [{_fmt(rule['low'])}, {_fmt(rule['high'])}]{step}" + (f" ({kind})" if kind else ""))
    return "; ".join(parts)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
