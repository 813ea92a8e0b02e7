"""The config files a user edits, checked against their JSON Schemas before any job.

Every file has a schema in config/schema/ (Draft 2020-12, strict: an unknown key is an error);
its ``description`` fields document the file format:

- studies (config/quick.yaml, config/paper.yaml): study.schema.yaml, ``check_file(path, "study")``
  (or ``check(config, "study", configfile)`` on Snakemake's merged ``config``);
- config/methods.yaml: methods.schema.yaml, ``check_file(path, "methods")``;
- config/datasets.yaml: datasets.schema.yaml, ``check_file(path, "datasets")`` (datasets.load_catalog);
- config/published.yaml: published.schema.yaml, ``check_file(path, "published")`` (leaderboard);
- models/<Model>.yaml: model.schema.yaml plus cross-checks, ``check_model_file(path)`` or
  ``check_model_yaml(data, path)``. RecBole's own yamls are never checked.

A problem is reported as ``<file>[, line L]: <where>: <what>``, e.g.
``config/methods.yaml, line 145: methods.BSPM: unknown key 'fixd' (did you mean 'fixed'?)`` or
``config/methods.yaml, line 146: methods.BSPM.tune = 'no': expected boolean``; every problem of a
file is collected into one :class:`SpecbenchError`. YAML syntax errors (a TAB, a missing colon)
are reported as ``<file>, line L, column C: <problem>``.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

from specbench.errors import SpecbenchError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "config" / "schema"
# Blocks of a model yaml that describe its settings rather than set them.
MODEL_META_KEYS = ("schema", "search_space")
# How close (difflib ratio) a model yaml's top-level key must be to a meta block or a harness
# setting to be taken for a misspelling of it (model settings are free names: only near-misses),
# and at most how many typos (edits: a letter added, dropped, changed, or two swapped) apart, so
# that a composed name such as mf_embedding_size or num_layers is not taken for one.
NEAR_MISS_CUTOFF = 0.85


# ---------------------------------------------------------------- reading YAML

class YamlLoader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-5`` (no dot) as a string; RecBole's own model yamls, and people, write
    floats that way. This loader reads them as floats, as RecBole's Config does. A key given twice
    in one mapping is an error (YAML would keep the last silently); keys that a merge (``<<:``)
    brings in may be overridden as usual."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first given on line {first.start_mark.line + 1})",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def display_path(path) -> str:
    """``path`` relative to this checkout when it lies inside it, else as given."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(ROOT))
    except (ValueError, OSError):
        return str(path)


def _syntax_error(file: str, exc: yaml.YAMLError, text: str) -> SpecbenchError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if context and getattr(exc, "context_mark", None) and exc.context_mark is not mark:
        problem = f"{problem} ({context} on line {exc.context_mark.line + 1})"
    if mark is None:
        return SpecbenchError(f"{file}: not valid YAML: {problem}")
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if "\t" in line[:mark.column + 1] or "found character '\\t'" in problem:
        problem += " (a TAB: YAML indents with spaces only)"
    return SpecbenchError(f"{file}, line {mark.line + 1}, column {mark.column + 1}: {problem}")


def _read(path) -> tuple[str, str]:
    path = Path(path)
    file = display_path(path)
    try:
        return file, path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecbenchError(f"{file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecbenchError(f"{file}: cannot be read ({exc})") from None


def _parse(text: str, file: str):
    try:
        return yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(file, exc, text) from None


def load_yaml(path):
    """The data of a YAML file, with ``1e-5`` read as a float and duplicate keys refused; a syntax
    error (e.g. a TAB) is a SpecbenchError ``<file>, line L, column C: <problem>``."""
    file, text = _read(path)
    return _parse(text, file)


# ---------------------------------------------------------------- schemas

@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """config/schema/<name> (``"methods"`` = ``"methods.schema.yaml"``), itself checked as a schema."""
    path = schema_path(name)
    with open(path, encoding="utf-8") as f:
        schema = yaml.safe_load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def schema_path(name: str) -> Path:
    name = str(name)
    if not name.endswith((".yaml", ".yml", ".json")):
        name += ".schema.yaml"
    path = SCHEMA_DIR / name
    if not path.is_file():
        known = sorted(p.name for p in SCHEMA_DIR.glob("*.schema.yaml"))
        raise SpecbenchError(f"no schema {path} (known: {', '.join(known)})")
    return path


@lru_cache(maxsize=None)
def harness_settings() -> frozenset:
    """Names of the settings the harness reads (the keys of settings.schema.yaml ``properties``)."""
    return frozenset(load_schema("settings.schema.yaml").get("properties", {}))


# ---------------------------------------------------------------- explaining errors

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_TYPES = {"object": "a mapping", "array": "a list", "string": "string", "number": "number",
          "integer": "integer", "boolean": "boolean", "null": "null"}


def _where(path) -> str:
    """A dotted place in a file: methods.BSPM.presets["*/mf"].lr_decay, entries[3].metric."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.match(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{str(part)!r}]"
    return out


def _value(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def json_type(v) -> str:
    """The JSON-schema type name of a parsed yaml value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _type_names(types) -> str:
    types = [types] if isinstance(types, str) else list(types)
    return " or ".join(_TYPES.get(t, t) for t in types)


def suggest(word, candidates, cutoff: float = 0.6) -> str | None:
    """The candidate closest to ``word`` (case-insensitive first), or None."""
    word = str(word)
    candidates = [str(c) for c in candidates]
    for c in candidates:
        if c.lower() == word.lower():
            return c
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=cutoff)
    return close[0] if close else None


def edit_distance(a: str, b: str) -> int:
    """Typos between ``a`` and ``b``: insertions, deletions, substitutions, adjacent swaps (OSA)."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def near_miss(word, targets) -> str | None:
    """The target ``word`` is a misspelling of: difflib ratio >= NEAR_MISS_CUTOFF and at most one
    typo away (two for names of 10 letters or more); None when it is none's."""
    word = str(word)
    for close in difflib.get_close_matches(word, list(targets), n=3, cutoff=NEAR_MISS_CUTOFF):
        if word != close and edit_distance(word, close) <= (1 if len(close) < 10 else 2):
            return close
    return None


def _did_you_mean(word, candidates) -> str:
    close = suggest(word, candidates)
    return f" (did you mean {close!r}?)" if close else ""


_NO_VALUE = object()


class _Problem:
    """One problem at ``path``; ``value``: the offending value (shown as ``<path> = <value>``)."""
    __slots__ = ("path", "text", "kind", "key", "hint", "line_path", "value")

    def __init__(self, path, text, kind="", key=None, hint=None, line_path=None, value=_NO_VALUE):
        self.path, self.text, self.kind, self.key, self.hint = tuple(path), text, kind, key, hint
        self.line_path = tuple(line_path if line_path is not None else path)
        self.value = value


def _branch_types(schema) -> set | None:
    """The JSON types an anyOf/oneOf branch is about (None: any)."""
    if not isinstance(schema, dict):
        return None
    if "type" in schema:
        t = schema["type"]
        return {t} if isinstance(t, str) else set(t)
    if "const" in schema:
        return {json_type(schema["const"])}
    if "enum" in schema:
        return {json_type(v) for v in schema["enum"]}
    return None


def _fits(instance, types: set | None) -> bool:
    if types is None:
        return True
    t = json_type(instance)
    return t in types or (t == "integer" and "number" in types)


def _alternatives(schemas) -> str:
    parts = []
    for s in schemas:
        if "const" in s:
            parts.append(repr(s["const"]))
        elif "enum" in s:
            parts.append("one of " + ", ".join(map(repr, s["enum"])))
        elif "type" in s:
            parts.append(_type_names(s["type"]))
        elif "description" in s:
            parts.append(s["description"])
    return " or ".join(parts) or "a value the schema allows"


def _property_name_error(err) -> bool:
    parts = list(err.relative_schema_path)
    return any(p == "propertyNames" and (i == 0 or parts[i - 1] not in ("properties", "$defs"))
               for i, p in enumerate(parts))


def _explain(err) -> list[_Problem]:
    path = list(err.absolute_path)
    v, inst, schema = err.validator, err.instance, err.schema if isinstance(err.schema, dict) else {}

    if _property_name_error(err):
        key = inst
        allowed = ""
        if v == "enum":
            allowed = f": expected one of {', '.join(map(repr, err.validator_value))}" + \
                      _did_you_mean(key, err.validator_value)
        elif v == "pattern":
            allowed = f": expected {schema['description']}" if schema.get("description") else \
                f": expected a name matching {err.validator_value}"
        else:
            allowed = f": {err.message}"
        return [_Problem(path, f"key {key!r} is not allowed{allowed}", "badkey", key,
                         line_path=path + [key])]

    if v in ("anyOf", "oneOf"):
        branches = schema.get(v, [])
        fitting = [i for i, b in enumerate(branches) if _fits(inst, _branch_types(b))]
        if not fitting:
            return [_Problem(path, f"expected {_alternatives(branches)}", "type", value=inst)]
        by_branch = {i: [] for i in fitting}
        for sub in err.context:
            i = sub.relative_schema_path[0]
            if i in by_branch:
                by_branch[i].append(sub)
        best = min(by_branch.values(), key=len)
        if not best:  # oneOf: more than one branch matched
            return [_Problem(path, err.message, v, value=inst)]
        return [p for sub in best for p in _explain(sub)]

    if v == "additionalProperties" and err.validator_value is False and isinstance(inst, dict):
        known = list(schema.get("properties", {}))
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        extras = [k for k in inst if k not in known and not any(p.search(str(k)) for p in patterns)]
        out = []
        for key in extras:
            close = suggest(key, known)
            hint = f" (did you mean {close!r}?)" if close else \
                (f" (allowed: {', '.join(known)})" if known else " (no keys are allowed here)")
            out.append(_Problem(path, f"unknown key {key!r}{hint}", "unknown", key, close, line_path=path + [key]))
        return out
    if v == "required":
        props = schema.get("properties", {})
        out = []
        for key in err.validator_value:
            if isinstance(inst, dict) and key not in inst:
                desc = props.get(key, {}).get("description") if isinstance(props.get(key), dict) else None
                out.append(_Problem(path, f"missing key {key!r}" + (f" ({desc})" if desc else ""), "missing", key))
        return out
    if v == "type":
        return [_Problem(path, f"expected {_type_names(err.validator_value)}", "type", value=inst)]
    if v == "enum":
        return [_Problem(path, f"expected one of {', '.join(map(repr, err.validator_value))}"
                         + _did_you_mean(inst, [e for e in err.validator_value if isinstance(e, str)]), "enum",
                         value=inst)]
    if v == "const":
        return [_Problem(path, f"expected {err.validator_value!r}", "const", value=inst)]
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if v in bounds:
        return [_Problem(path, f"expected a number {bounds[v]} {err.validator_value}", "range", value=inst)]
    if v in ("minItems", "maxItems"):
        word = "at least" if v == "minItems" else "at most"
        n = err.validator_value
        return [_Problem(path, f"expected {word} {n} item{'s' if n != 1 else ''}", "items", value=inst)]
    if v in ("minProperties", "maxProperties"):
        word = "at least" if v == "minProperties" else "at most"
        n = err.validator_value
        return [_Problem(path, f"expected {word} {n} key{'s' if n != 1 else ''}", "items", value=inst)]
    if v == "uniqueItems":
        return [_Problem(path, "expected no item twice", "items", value=inst)]
    if v == "pattern":
        expected = schema["description"] if schema.get("description") else f"a string matching {err.validator_value}"
        return [_Problem(path, f"expected {expected}", "pattern", value=inst)]
    if v in ("minLength", "maxLength"):
        return [_Problem(path, err.message, v, value=inst)]
    if v == "not" or v is None:  # `not`, or a `false` schema
        key = path[-1] if path else None
        text = f"key {key!r} is not allowed" if key is not None else "not allowed"
        return [_Problem(path[:-1], text + (f": {schema['description']}" if schema.get("description") else ""),
                         "notallowed", key, line_path=path)]
    return [_Problem(path, err.message, v, value=inst)]


# ---------------------------------------------------------------- line numbers

def _key_lines(text: str | None):
    """The composed YAML node tree of ``text`` (for line numbers), or None."""
    if not text:
        return None
    try:
        return yaml.compose(text, Loader=YamlLoader)
    except yaml.YAMLError:
        return None


def _scalar(node):
    return node.value if isinstance(node, yaml.ScalarNode) else None


def _find(node, part):
    """(key node, value node) of ``part`` in a mapping or sequence node, following merges."""
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            return node.value[part], node.value[part]
        return None
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in reversed(node.value):
        if key_node.tag != "tag:yaml.org,2002:merge" and _scalar(key_node) == str(part):
            return key_node, value_node
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            for merged in (value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]):
                hit = _find(merged, part)
                if hit:
                    return hit
    return None


def _line(tree, path) -> int | None:
    node, key_node = tree, None
    for part in path:
        hit = _find(node, part)
        if hit is None:
            break
        key_node, node = hit
    target = key_node if key_node is not None else None
    return target.start_mark.line + 1 if target is not None else None


# ---------------------------------------------------------------- checking

def problems(data, schema_name: str, file=None, *, text: str | None = None) -> list[str]:
    """Every problem of ``data`` against config/schema/<schema_name>, one message each."""
    found = _problems(data, load_schema(schema_name))
    return _render(found, display_path(file) if file is not None else "(config)", text)


def _problems(data, schema: dict) -> list[_Problem]:
    validator = jsonschema.Draft202012Validator(schema)
    found: list[_Problem] = []
    for err in validator.iter_errors(data):
        found.extend(_explain(err))
    # A misspelt required key is reported once (as unknown, with its suggestion), not also as missing.
    meant = {(p.path, p.hint) for p in found if p.kind == "unknown" and p.hint}
    return [p for p in found if not (p.kind == "missing" and (p.path, p.key) in meant)]


def _render(found: list[_Problem], file: str, text: str | None) -> list[str]:
    tree = _key_lines(text)
    lines = [_line(tree, p.line_path) if tree is not None else None for p in found]
    order = sorted(range(len(found)), key=lambda i: (lines[i] or 0, [(0, x) if isinstance(x, int) else (1, str(x))
                                                                      for x in found[i].path]))
    out, seen = [], set()
    for i in order:
        p, line = found[i], lines[i]
        head = f"{file}, line {line}" if line else file
        where = _where(p.path)
        if p.value is _NO_VALUE:
            message = f"{head}: {where or 'top level'}: {p.text}"
        elif not p.path and p.value is None:
            message = f"{head}: the file is empty: {p.text}"
        elif not p.path:
            message = f"{head}: top level is {_value(p.value)}: {p.text}"
        else:
            message = f"{head}: {where} = {_value(p.value)}: {p.text}"
        if message not in seen:
            seen.add(message)
            out.append(message)
    return out


def _raise(messages: list[str], schema_name: str, what: str | None) -> None:
    if not messages:
        return
    schema = load_schema(schema_name)
    what = what or schema.get("title") or "this file"
    doc = display_path(schema_path(schema_name))
    raise SpecbenchError("\n".join(messages) + f"\n(the format of {what} is documented in {doc})")


def check(data, schema_name: str, file=None, what: str | None = None, *, text: str | None = None):
    """Validate ``data`` (from ``file``) against config/schema/<schema_name>; every problem in one
    SpecbenchError, each naming the file, the place and the key, with a did-you-mean for a
    misspelt key. ``what`` names the kind of file in the error's last line (default: the schema's
    ``title``); ``text`` (the file's YAML) adds line numbers. Returns ``data``."""
    _raise(problems(data, schema_name, file, text=text), schema_name, what)
    return data


def check_file(path, schema_name: str, what: str | None = None):
    """Load the YAML file ``path`` (see :func:`load_yaml`) and :func:`check` it; returns its data."""
    file, text = _read(path)
    data = _parse(text, file)
    return check(data, schema_name, path, what, text=text)


# ---------------------------------------------------------------- model yamls

def model_problems(data, file=None, harness=None, *, text: str | None = None) -> list[str]:
    """Every problem of a model yaml: model.schema.yaml, plus ``schema:``/``search_space:`` keys
    that name no setting, a leftover ``backbones:`` and top-level near-misses of a meta block or a
    harness setting."""
    harness = set(harness_settings() if harness is None else harness)
    data = {} if data is None else data
    found = _problems(data, load_schema("model.schema.yaml"))
    if isinstance(data, dict):
        settings = [k for k in data if k not in MODEL_META_KEYS and k != "backbones"]
        known = sorted(set(settings) | harness)
        for block in MODEL_META_KEYS:
            entries = data.get(block)
            if not isinstance(entries, dict):
                continue
            for key in entries:
                if key not in known:
                    close = suggest(key, known)
                    hint = f" (did you mean {close!r}?)" if close else ""
                    found.append(_Problem([block], f"key {key!r} names no setting of this yaml and no harness "
                                          f"setting{hint}; a new setting needs its default at the top level",
                                          "nosetting", key, line_path=[block, key]))
        for key in settings:
            if key in harness:
                continue
            for targets, kind in ((MODEL_META_KEYS, "the meta block"), (sorted(harness), "the harness setting")):
                close = near_miss(key, targets)
                if close:
                    found.append(_Problem([], f"unknown key {key!r} (did you mean {close!r}?): a setting name "
                                          f"this close to {kind} {close!r} is taken for a typo; rename it if "
                                          f"it is meant as a setting", "nearmiss", key,
                                          line_path=[key]))
                    break
        for name, rule in (data.get("schema") or {}).items() if isinstance(data.get("schema"), dict) else ():
            if isinstance(rule, dict) and isinstance(rule.get("pattern"), str):
                try:
                    re.compile(rule["pattern"])
                except re.error as exc:
                    found.append(_Problem(["schema", name, "pattern"], f"not a regular expression ({exc})",
                                          "pattern", value=rule["pattern"]))
    return _render(found, display_path(file) if file is not None else "(model yaml)", text)


def check_model_yaml(data, file=None, harness_settings=None, *, text: str | None = None):
    """Check the data of a model yaml (models/<Model>.yaml, not RecBole's own): model.schema.yaml,
    then that every ``schema:`` and ``search_space:`` key names a setting of the yaml or a harness
    setting (``harness_settings``: names; default the keys of settings.schema.yaml ``properties``),
    that no ``backbones:`` key is left (the class declares its backbones), and that no top-level key
    is a near-miss of ``schema``/``search_space`` or of a harness setting. One SpecbenchError for
    all problems; returns ``data``."""
    _raise(model_problems(data, file, harness_settings, text=text), "model.schema.yaml", "a model yaml")
    return data


def check_model_file(path, harness_settings=None):
    """Load a model yaml and :func:`check_model_yaml` it (with line numbers); returns its data."""
    file, text = _read(path)
    data = _parse(text, file)
    return check_model_yaml(data, path, harness_settings, text=text)
