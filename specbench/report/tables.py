"""Comparison tables from run records: main (with significance), ablation, efficiency.

Every table is written as <stem>.csv (long, full precision), <stem>.md and <stem>.tex.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from specbench.atomic_io import atomic_write_text
from specbench.record import decode_per_user
from specbench.report.records import final_metrics
from specbench.report.stats import holm, paired_tests, seed_ci

MAIN_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
BACKBONE_NAMES = {"mf": "MF", "lightgcn": "LightGCN", "filter": "Graph filter (training-free)"}
ID = ["dataset", "backbone", "method", "label"]


def summary(runs: list[dict], metrics=MAIN_METRICS) -> pd.DataFrame:
    """Long table: one row per (dataset, backbone, method, metric): mean, std, seeds, 95% CI over seeds."""
    df = final_metrics(runs)
    long = df.melt(id_vars=ID + ["seed"], value_vars=list(metrics), var_name="metric")
    rows = []
    for key, group in long.groupby(ID + ["metric"], sort=False):
        v = group["value"].to_numpy()
        low, high = seed_ci(v)
        rows.append(dict(zip(ID + ["metric"], key), mean=v.mean(), std=v.std(ddof=1) if len(v) > 1 else 0.0,
                         seeds=len(v), ci_low=low, ci_high=high))
    return pd.DataFrame(rows)


def _per_user_mean(runs: list[dict], dataset, backbone, method, metric):
    """Per-user metric averaged over a method's seeds, and the user-order fingerprint."""
    arrays, fingerprints = [], set()
    for r in runs:
        if (r["run"]["dataset"], r["run"]["backbone"], r["run"]["method"]) == (dataset, backbone, method):
            decoded = decode_per_user(r)
            if metric not in decoded:
                return None, None
            arrays.append(decoded[metric])
            fingerprints.add((r["per_user"].get("user_tokens_sha256"), decoded["users"].tobytes()))
    if not arrays or len(fingerprints) != 1:
        return None, None
    return np.mean(arrays, axis=0), fingerprints.pop()


def significance(runs: list[dict], ours: list[str], metrics=MAIN_METRICS) -> pd.DataFrame:
    """Each of ``ours`` against the best other method of its (dataset, backbone), per metric:
    relative improvement of the seed means, paired per-user t-test and Wilcoxon, Holm-adjusted."""
    table = summary(runs, metrics)
    rows = []
    for (dataset, backbone, metric), group in table.groupby(["dataset", "backbone", "metric"], sort=False):
        baselines = group[~group["method"].isin(ours)]
        if baselines.empty:
            continue
        best = baselines.loc[baselines["mean"].idxmax()]
        for _, mine in group[group["method"].isin(ours)].iterrows():
            row = {"dataset": dataset, "backbone": backbone, "metric": metric, "method": mine["label"],
                   "best_baseline": best["label"], "mean": mine["mean"], "baseline_mean": best["mean"],
                   "improvement": (mine["mean"] - best["mean"]) / best["mean"] if best["mean"] else np.nan}
            a, fa = _per_user_mean(runs, dataset, backbone, mine["method"], metric)
            b, fb = _per_user_mean(runs, dataset, backbone, best["method"], metric)
            if a is not None and b is not None and fa == fb:
                row.update(paired_tests(a, b))
            rows.append(row)
    out = pd.DataFrame(rows)
    for test in ("t_p", "wilcoxon_p"):
        if test in out:
            mask = out[test].notna()
            out.loc[mask, f"{test}_holm"] = holm(out.loc[mask, test])
    return out


def efficiency(runs: list[dict]) -> pd.DataFrame:
    """Seconds per epoch, epochs and training time to the best evaluation, peak memory (mean over seeds)."""
    rows = []
    for r in runs:
        trained = [h for h in r["history"] if h["epoch"] > 0] or r["history"]  # training-free: epoch 0 only
        best = max(trained, key=lambda h: h["metrics"].get("ndcg@20", 0.0))
        seconds = [e["seconds"] for e in r["epochs"]]
        rows.append({**{k: r["run"][k] for k in ("dataset", "backbone", "method", "seed")},
                     "label": r["run"].get("label", r["run"]["method"]),
                     "seconds_per_epoch": r["timing"]["seconds_per_epoch"], "epochs": len(seconds),
                     "best_epoch": best["epoch"], "train_seconds_to_best": float(np.sum(seconds[:best["epoch"]])),
                     "train_seconds": r["timing"]["train_seconds"],
                     "setup_seconds": r["timing"].get("setup_seconds", np.nan),  # model build (a filter's fit)
                     "peak_memory_mb": max(r.get("memory", {}).values() or [0]) / 2**20,
                     "device": r.get("environment", {}).get("gpu") or r.get("environment", {}).get("device", "?")})
    df = pd.DataFrame(rows)
    cols = ["seconds_per_epoch", "epochs", "best_epoch", "train_seconds_to_best", "train_seconds", "setup_seconds",
            "peak_memory_mb"]
    return df.groupby(ID + ["device"], sort=False)[cols].mean().reset_index()


# ---------- writers ----------

def _fmt(mean, std, bold, marker=""):
    return f"**{mean:.4f}**{marker} ± {std:.4f}" if bold else f"{mean:.4f}{marker} ± {std:.4f}"


def _wide(table: pd.DataFrame, cell) -> pd.DataFrame:
    best = table.groupby(["dataset", "backbone", "metric"])["mean"].transform("max") == table["mean"]
    cells = table.assign(cell=[cell(r, b) for (_, r), b in zip(table.iterrows(), best)],
                         backbone=table["backbone"].map(lambda b: BACKBONE_NAMES.get(b, b)))
    wide = cells.pivot_table(index=["backbone", "label"], columns=["dataset", "metric"], values="cell",
                             aggfunc="first", sort=False)
    order = {name: i for i, name in enumerate(BACKBONE_NAMES.values())}  # MF first, then LightGCN, then others
    return wide.sort_index(level=0, key=lambda idx: idx.map(lambda b: order.get(b, len(order))), sort_remaining=False)


def _markers(sig: pd.DataFrame | None) -> dict:
    """† where ours beats the best baseline with Holm-adjusted Wilcoxon p < 0.05."""
    if sig is None or sig.empty or "wilcoxon_p_holm" not in sig:
        return {}
    hits = sig[(sig["wilcoxon_p_holm"] < 0.05) & (sig["improvement"] > 0)]
    return {(r.dataset, r.backbone, r.method, r.metric): "†" for r in hits.itertuples()}


def write_comparison(table: pd.DataFrame, stem: Path, caption: str, sig: pd.DataFrame | None = None) -> list[Path]:
    """<stem>.csv (long), .md and .tex (backbone-grouped, best per backbone in bold, † = significant)."""
    stem = Path(stem)
    marks = _markers(sig)
    mark = lambda r: marks.get((r["dataset"], r["backbone"], r["label"], r["metric"]), "")  # noqa: E731
    md = _wide(table, lambda r, b: _fmt(r["mean"], r["std"], b, mark(r)))
    md.columns = [f"{d} {m}" for d, m in md.columns]
    tex = _wide(table, lambda r, b: (r"\textbf{%.4f}" % r["mean"] if b else "%.4f" % r["mean"])
                + (r"$^\dagger$" if mark(r) else "") + r"\,{\scriptsize$\pm$%.4f}" % r["std"])
    note = " † Holm-adjusted paired Wilcoxon p < 0.05 against the best baseline." if marks else ""
    return _write(stem, table, f"{caption}{note}", md.reset_index().rename(columns={"label": "method"}),
                  _latex(tex, caption + note))


def write_frame(df: pd.DataFrame, stem: Path, caption: str, floatfmt=".4g") -> list[Path]:
    """A plain table (one row per record) in the three formats."""
    tex_df = df.copy()
    tex_df.columns = [str(c) for c in tex_df.columns]
    body = tex_df.to_latex(index=False, float_format=lambda x: format(x, floatfmt), escape=True)
    tex = "\n".join([r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_esc(caption)}}}",
                     body, r"\end{table}", ""])
    return _write(Path(stem), df, caption, df, tex, floatfmt)


def _write(stem, long, caption, md_frame, tex, floatfmt=".4f") -> list[Path]:
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    atomic_write_text(paths[0], long.to_csv(index=False))
    atomic_write_text(paths[1], f"{caption}\n\n" + md_frame.to_markdown(index=False, floatfmt=floatfmt) + "\n")
    atomic_write_text(paths[2], tex)
    return paths


def _esc(s) -> str:
    return str(s).replace("_", r"\_").replace("&", r"\&").replace("%", r"\%").replace("#", r"\#")


def _latex(wide: pd.DataFrame, caption: str) -> str:
    datasets = list(dict.fromkeys(d for d, _ in wide.columns))
    cols = list(wide.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_esc(caption)}}}",
             r"\begin{tabular}{ll" + "r" * len(cols) + "}", r"\toprule",
             " & & " + " & ".join(rf"\multicolumn{{{sum(1 for d, _ in cols if d == ds)}}}{{c}}{{{_esc(ds)}}}"
                                  for ds in datasets) + r" \\",
             "Backbone & Method & " + " & ".join(_esc(m) for _, m in cols) + r" \\", r"\midrule"]
    previous = None
    for (backbone, method), row in wide.iterrows():
        if previous is not None and backbone != previous:
            lines.append(r"\midrule")
        lines.append(f"{_esc(backbone) if backbone != previous else ''} & {_esc(method)} & "
                     + " & ".join("--" if pd.isna(v) else v for v in row.values) + r" \\")
        previous = backbone
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)
