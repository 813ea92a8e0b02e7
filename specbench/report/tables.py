"""The main results table: (backbone, method) x (dataset, metric), mean ± std over seeds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from specbench.atomic_io import atomic_write_text
from specbench.report.records import final_metrics

MAIN_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
BACKBONE_NAMES = {"mf": "MF", "lightgcn": "LightGCN"}


def main_table(runs: list[dict], metrics=MAIN_METRICS) -> pd.DataFrame:
    """Long table: one row per (dataset, backbone, method, metric) with mean, std and seed count."""
    df = final_metrics(runs)
    long = df.melt(id_vars=["dataset", "backbone", "label", "seed"], value_vars=list(metrics), var_name="metric")
    agg = long.groupby(["dataset", "backbone", "label", "metric"], sort=False)["value"]
    out = agg.agg(mean="mean", std=lambda v: v.std(ddof=1) if len(v) > 1 else 0.0, seeds="count").reset_index()
    out["backbone"] = out["backbone"].map(lambda b: BACKBONE_NAMES.get(b, b))
    return out.rename(columns={"label": "method"})


def _wide(table: pd.DataFrame, fmt) -> pd.DataFrame:
    best = table.groupby(["dataset", "backbone", "metric"])["mean"].transform("max") == table["mean"]
    cells = table.assign(cell=[fmt(m, s, b) for m, s, b in zip(table["mean"], table["std"], best)])
    wide = cells.pivot_table(index=["backbone", "method"], columns=["dataset", "metric"], values="cell",
                             aggfunc="first", sort=False)
    return wide


def write_table(table: pd.DataFrame, stem: Path, caption: str) -> list[Path]:
    """<stem>.csv (long, full precision), <stem>.md and <stem>.tex (wide, best per backbone in bold)."""
    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    atomic_write_text(paths[0], table.to_csv(index=False))
    md = _wide(table, lambda m, s, b: f"**{m:.4f} ± {s:.4f}**" if b else f"{m:.4f} ± {s:.4f}")
    md.columns = [f"{d} {m}" for d, m in md.columns]
    atomic_write_text(paths[1], f"{caption}\n\n" + md.reset_index().to_markdown(index=False) + "\n")
    atomic_write_text(paths[2], _latex(_wide(table, lambda m, s, b: (r"\textbf{%.4f}" % m if b else "%.4f" % m)
                                              + r"\,$\pm$\,%.4f" % s), caption))
    return paths


def _latex(wide: pd.DataFrame, caption: str) -> str:
    datasets = list(dict.fromkeys(d for d, _ in wide.columns))
    cols = list(wide.columns)
    esc = lambda s: str(s).replace("_", r"\_").replace("&", r"\&").replace("%", r"\%").replace("#", r"\#")  # noqa: E731
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{esc(caption)}}}",
             r"\begin{tabular}{ll" + "r" * len(cols) + "}", r"\toprule",
             " & & " + " & ".join(rf"\multicolumn{{{sum(1 for d, _ in cols if d == ds)}}}{{c}}{{{esc(ds)}}}"
                                  for ds in datasets) + r" \\",
             "Backbone & Method & " + " & ".join(esc(m) for _, m in cols) + r" \\", r"\midrule"]
    previous = None
    for (backbone, method), row in wide.iterrows():
        if previous is not None and backbone != previous:
            lines.append(r"\midrule")
        lines.append(f"{esc(backbone) if backbone != previous else ''} & {esc(method)} & "
                     + " & ".join("--" if pd.isna(v) else v for v in row.values) + r" \\")
        previous = backbone
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)
