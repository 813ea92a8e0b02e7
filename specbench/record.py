"""The run record: one JSON file per run, written whole or not at all, read without torch or RecBole.

A record holds the run's identity, settings, environment, per-epoch losses, every evaluation
(metrics and spectrum) and the last evaluation's per-user metrics, packed compactly for paired
tests. The report and model selection read records through this module only.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import numpy as np

from specbench.atomic_io import atomic_write_text
from specbench.errors import SpecbenchError

SCHEMA_VERSION = 1
PER_USER_METRICS = ("recall@20", "ndcg@20", "recall@10", "ndcg@10")  # kept per user at the last epoch
REQUIRED = ("schema", "run", "final", "history", "timing")


def json_safe(value):
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def encode_per_user(values: dict, users) -> dict:
    """Per-user metrics of the last evaluation, compact (float32, zlib, base64), for paired tests.

    ``users``: the evaluated user ids on the host (an array, or a CPU tensor)."""
    pack = lambda a, dtype: base64.b64encode(zlib.compress(np.asarray(a, dtype=dtype).tobytes())).decode()  # noqa: E731
    return {"encoding": "base64(zlib(little-endian array))", "users": pack(users, "<i4"),
            "users_dtype": "int32", "metrics_dtype": "float32",
            "metrics": {name: pack(v, "<f4") for name, v in values.items()}}


def decode_per_user(record: dict) -> dict[str, np.ndarray]:
    """The inverse of encode_per_user: {"users": ids, metric: values} (empty if the run has none)."""
    enc = record.get("per_user") or {}
    if not enc:
        return {}
    unpack = lambda s, dtype: np.frombuffer(zlib.decompress(base64.b64decode(s)), dtype=dtype)  # noqa: E731
    return {"users": unpack(enc["users"], "<i4"), **{k: unpack(v, "<f4") for k, v in enc["metrics"].items()}}


def write_record(path: Path, record: dict) -> None:
    atomic_write_text(Path(path), json.dumps(record, indent=1) + "\n")


def load_run(path: Path) -> dict:
    """A run record, with ``_path`` set; a clear error if the file is not one."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecbenchError(f"{path}: not a readable run JSON ({exc})") from exc
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise SpecbenchError(f"{path}: not a specbench run record (missing {', '.join(missing)})")
    record["_path"] = str(path)
    return record
