"""Interaction data as RecBole atomic files: fixed splits written once, read by every run.

Layout: ``data/atomic/<ds>/<ds>.<split>.inter`` (tab-separated ``user_id:token``,
``item_id:token``) plus ``data/atomic/<ds>/stats.json``. Splits are ``train`` and ``test`` (the
evaluation split), and ``valid`` only when carved from train (never from test). ``prepare``
makes them from the files ``specbench fetch`` put in ``data/raw/<ds>/`` (specbench/datasets.py):
the authors' fixed split as published, or a per-user random split made here (MovieLens-100k).

Duplicates are kept as published and only counted in stats.json (see DUPLICATES_POLICY).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from specbench.atomic_io import atomic_write_text
from specbench.errors import SpecbenchError

HEADER = "user_id:token\titem_id:token\n"
DUPLICATES_POLICY = (
    "Rows are kept as published; duplicates are counted here, not removed. RecBole keeps every row and "
    "its inter_matrix sums repeated (user, item) rows into one entry holding the count. specbench "
    "trains on the distinct pairs (the DirectSpec 'users' sampler draws among a user's distinct items, "
    "but its epoch of floor(rows / batch) steps counts every row, as the reference does), the LightGCN "
    "graphs use distinct pairs, and recall/ndcg treat a test set as a set (|test_u| = distinct items); "
    "only the ref_* metrics count test rows, as the reference code does. A pair in both train and test "
    "is a training item at evaluation time: it is masked from the ranking, so it can never be a hit, "
    "but it still counts in the user's test set.")


def recbole_ml100k_path() -> Path:
    """The MovieLens-100k copy shipped inside the recbole wheel (no network)."""
    import recbole
    path = Path(recbole.__file__).resolve().parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
    if not path.is_file():
        raise SpecbenchError(f"{path} is missing: reinstall recbole==1.2.1 (the wheel ships MovieLens-100k)")
    return path


def read_recbole_inter(path: Path) -> pd.DataFrame:
    """user/item columns of a RecBole atomic .inter file, as strings (tokens)."""
    df = pd.read_csv(path, sep="\t", dtype=str)
    cols = {c.split(":")[0]: c for c in df.columns}
    if "user_id" not in cols or "item_id" not in cols:
        raise SpecbenchError(f"{path}: expected columns user_id and item_id in the header, got {list(df.columns)}")
    return df[[cols["user_id"], cols["item_id"]]].set_axis(["user", "item"], axis=1)


def split_per_user(df: pd.DataFrame, test_fraction: float, seed: int) -> dict[str, pd.DataFrame]:
    """Per user, ceil(test_fraction * n_u) random rows to test (at least one row stays in train).

    The paper's splits follow the same rule (test = ceil(0.2 n_u), ../shared/reference/directspec.md).
    """
    if not 0 < test_fraction < 1:
        raise SpecbenchError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(df))
    shuffled = df.iloc[order].reset_index(drop=True)
    rank = shuffled.groupby("user", sort=False).cumcount().to_numpy()
    n_u = shuffled.groupby("user", sort=False)["item"].transform("size").to_numpy()
    n_test = np.minimum(np.ceil(test_fraction * n_u - 1e-9).astype(int), n_u - 1)
    is_test = rank < n_test
    by_user = lambda x: x.sort_values("user", kind="stable").reset_index(drop=True)  # noqa: E731
    return {"train": by_user(shuffled[~is_test]), "test": by_user(shuffled[is_test])}


def _pairs(df: pd.DataFrame) -> pd.DataFrame:
    return df[["user", "item"]].drop_duplicates()


def split_stats(splits: dict[str, pd.DataFrame]) -> dict:
    """Counts that describe a prepared dataset (written to stats.json).

    users/items: distinct ids over all splits; interactions: rows (duplicates kept); density:
    interactions / (users x items). Per split: rows, distinct (user, item) pairs, duplicate rows
    (= rows - distinct pairs), users, items. With train and test: pairs in both, test users and
    items never seen in train.
    """
    full = pd.concat(splits.values(), ignore_index=True)
    n_users, n_items = full["user"].nunique(), full["item"].nunique()
    stats = {"users": int(n_users), "items": int(n_items), "interactions": int(len(full)),
             "density": len(full) / (n_users * n_items)}
    for name, part in splits.items():
        stats[f"{name}_rows"] = int(len(part))
        stats[f"{name}_duplicate_rows"] = int(part.duplicated().sum())
    if "train" in splits and "test" in splits:
        train, test = splits["train"], splits["test"]
        stats["train_test_overlap_pairs"] = int(len(_pairs(train).merge(_pairs(test), on=["user", "item"])))
        stats["test_users_not_in_train"] = int((~test["user"].drop_duplicates().isin(train["user"])).sum())
        stats["test_items_not_in_train"] = int((~test["item"].drop_duplicates().isin(train["item"])).sum())
    stats["distinct_pairs"] = int(len(_pairs(full)))
    for name, part in splits.items():
        stats[f"{name}_distinct_pairs"] = int(len(_pairs(part)))
        stats[f"{name}_users"], stats[f"{name}_items"] = int(part["user"].nunique()), int(part["item"].nunique())
    return stats


def write_atomic(out_dir: Path, name: str, splits: dict[str, pd.DataFrame], extra_stats: dict | None = None,
                 stats: dict | None = None) -> Path:
    """Write <name>.<split>.inter files and stats.json (last); each file appears whole or not at all."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, part in splits.items():
        body = part[["user", "item"]].astype(str).to_csv(sep="\t", header=False, index=False)
        atomic_write_text(out_dir / f"{name}.{split}.inter", HEADER + body)
    stats = {"dataset": name, **(stats if stats is not None else split_stats(splits)), **(extra_stats or {})}
    stats_path = out_dir / "stats.json"
    atomic_write_text(stats_path, json.dumps(stats, indent=2) + "\n")
    return stats_path


def _check_expected(ds, stats: dict) -> None:
    for key in ("users", "items"):
        want = ds.expect.get(key)
        if want is not None and stats[key] != want:
            raise SpecbenchError(f"{ds.name}: train + test hold {stats[key]:,} distinct {key}, expected {want:,} "
                                 f"(datasets.{ds.name}.expect.{key} in config/datasets.yaml); nothing was written")


def prepare(ds, raw_root: Path, out_root: Path, test_fraction: float | None = None, seed: int | None = None) -> Path:
    """RecBole atomic files and stats.json for a fetched dataset (a ``specbench.datasets.Dataset``).

    A fixed split is written as published (train, and test as the evaluation split); a dataset
    with a ``{test_fraction, seed}`` split is split per user here (``test_fraction``/``seed``
    override the catalogue's). Every input is read and checked before anything is written.
    """
    from specbench.datasets import fetched_files, read_pairs
    if ds.fixed_split and (test_fraction is not None or seed is not None):
        raise SpecbenchError(f"{ds.name} has the authors' fixed split: --test-fraction/--seed apply only to "
                             f"datasets split here ({ds.name}.split in config/datasets.yaml)")
    files = fetched_files(ds, raw_root)
    if ds.fixed_split:
        splits = {key: read_pairs(data, str(path), ds.files[key].rows, ds.id_space)
                  for key, (path, data) in files.items()}
        split = "fixed"
    else:
        split = {"test_fraction": ds.split["test_fraction"] if test_fraction is None else test_fraction,
                 "seed": ds.split["seed"] if seed is None else seed}
        path, _ = files["interactions"]
        splits = split_per_user(read_recbole_inter(path), split["test_fraction"], split["seed"])
    stats = split_stats(splits)
    _check_expected(ds, stats)
    record = json.loads((Path(raw_root) / ds.name / "fetched.json").read_text())
    extra = {"title": ds.title, "split": split, "sources": record["files"], "duplicates_policy": DUPLICATES_POLICY}
    return write_atomic(Path(out_root) / ds.name, ds.name, splits, extra, stats)


def atomic_files(data_dir: Path, name: str, splits=("train", "test")) -> list[Path]:
    """Paths of a prepared dataset's split files; a missing one is named with how to make it."""
    paths = [Path(data_dir) / name / f"{name}.{s}.inter" for s in splits]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SpecbenchError(f"dataset {name!r} is not prepared: missing {', '.join(missing)}. "
                             + _how_to_prepare(Path(data_dir), name, splits))
    return paths


def _how_to_prepare(data_dir: Path, name: str, splits) -> str:
    """How to make a missing dataset: the workflow target if config/datasets.yaml knows it, else the
    names it may be a misspelling of (catalogued or prepared in ``data_dir``), never a target that fails."""
    from specbench.datasets import load_catalog
    from specbench.schemas import display_path, suggest
    try:
        catalog = load_catalog()
    except SpecbenchError:
        catalog = None
    if catalog is not None and name in catalog.datasets:
        if any(s in ("fit", "valid") for s in splits):  # the validation carve of a tuning study
            return f"Run `snakemake {data_dir / name / f'{name}.fit.inter'}` first."
        return f"Run `snakemake {data_dir / name / 'stats.json'}` first."
    try:
        prepared = sorted(p.name for p in data_dir.iterdir() if (p / f"{p.name}.train.inter").is_file())
    except OSError:  # no data folder (yet)
        prepared = []
    known = sorted(set(catalog.datasets if catalog else ()) | set(prepared))
    close = suggest(name, known)
    where = display_path(catalog.path) if catalog is not None else "config/datasets.yaml"
    return (f"{name!r} is not in {where} and not prepared in {data_dir}/"
            + (f" (did you mean {close!r}?)" if close else "")
            + (f"; known datasets: {', '.join(known)}" if known else "") + ".")


def carve_validation(data_dir: Path, name: str, fraction: float = 0.1, seed: int = 2024) -> Path:
    """Split <name>.train.inter per user into <name>.fit.inter and <name>.valid.inter.

    Model selection trains on ``fit`` and scores ``valid``; the test file is never read.
    Per user, ceil(fraction * n_u) training rows go to valid, at least one stays in fit.
    """
    folder = Path(data_dir) / name
    train = pd.read_csv(folder / f"{name}.train.inter", sep="\t", dtype=str).set_axis(["user", "item"], axis=1)
    parts = split_per_user(train, fraction, seed)
    for split, new in (("train", "fit"), ("test", "valid")):
        body = parts[split][["user", "item"]].to_csv(sep="\t", header=False, index=False)
        atomic_write_text(folder / f"{name}.{new}.inter", HEADER + body)
    return folder / f"{name}.valid.inter"
