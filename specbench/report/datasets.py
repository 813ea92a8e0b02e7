"""The dataset statistics table, results/tables/datasets.{csv,md,tex}, from prepared stats.json files.

Every number comes from data/atomic/<ds>/stats.json (written by ``specbench prepare``): users and
items are the distinct ids in train + test, interactions the rows as published (duplicates kept),
density = interactions / (users x items).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from specbench.atomic_io import atomic_write_text
from specbench.errors import SpecbenchError

# (stats.json key, column heading in the .md and .tex tables)
SHOWN = [("title", "Dataset"), ("users", "Users"), ("items", "Items"), ("interactions", "Interactions"),
         ("density", "Density"), ("train_rows", "Train"), ("test_rows", "Test")]
EXTRA = ["dataset", "distinct_pairs", "train_duplicate_rows", "test_duplicate_rows", "train_test_overlap_pairs"]
CAPTION = ("Datasets as prepared: distinct users and items in train + test, interactions = rows as "
           "published (duplicates kept), density = interactions / (users {times} items), rows per split.")


def datasets_table(stats_paths: list[Path]) -> pd.DataFrame:
    """One row per dataset, in the given order; a missing file or key is named."""
    rows = []
    for path in stats_paths:
        path = Path(path)
        if not path.is_file():
            raise SpecbenchError(f"{path} does not exist: run `snakemake {path}` (specbench prepare) first")
        stats = json.loads(path.read_text())
        stats.setdefault("title", stats.get("dataset", path.parent.name))
        missing = [k for k, _ in SHOWN if k not in stats] + [k for k in EXTRA if k not in stats]
        if missing:
            raise SpecbenchError(f"{path}: missing key(s) {missing}; rerun `specbench prepare` to rewrite it")
        rows.append({k: stats[k] for k in EXTRA[:1] + [k for k, _ in SHOWN] + EXTRA[1:]})
    return pd.DataFrame(rows)


def _cells(df: pd.DataFrame) -> pd.DataFrame:
    """Display strings: thousands separators, density in percent with three significant digits."""
    out = pd.DataFrame({heading: df[key] for key, heading in SHOWN})
    for key, heading in SHOWN:
        if key == "density":
            out[heading] = [f"{100 * v:#.3g}%" for v in df[key]]
        elif key != "title":
            out[heading] = [f"{int(v):,}" for v in df[key]]
    return out


def _latex(cells: pd.DataFrame) -> str:
    esc = lambda s: str(s).replace("%", r"\%").replace("_", r"\_").replace("&", r"\&")  # noqa: E731
    caption = esc(CAPTION.format(times=r"$\times$"))
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}", r"\label{tab:datasets}",
             r"\begin{tabular}{l" + "r" * (len(cells.columns) - 1) + "}", r"\toprule",
             " & ".join(cells.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(v) for v in row) + r" \\" for row in cells.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def write_datasets_table(stats_paths: list[Path], stem: Path) -> list[Path]:
    """<stem>.csv (every count, full precision), <stem>.md and <stem>.tex (the shown columns)."""
    df = datasets_table(stats_paths)
    cells = _cells(df)
    stem = Path(stem)
    paths = [stem.with_name(stem.name + s) for s in (".csv", ".md", ".tex")]
    atomic_write_text(paths[0], df.to_csv(index=False))
    align = ["left"] + ["right"] * (len(cells.columns) - 1)
    atomic_write_text(paths[1], CAPTION.format(times="×") + "\n\n" + cells.to_markdown(index=False, colalign=align) + "\n")
    atomic_write_text(paths[2], _latex(cells))
    return paths
