"""Comparison tables from run records: main (with significance), ablation, efficiency.

Every table is written as <stem>.csv (long, full precision, machine-readable column names),
<stem>.md and <stem>.tex (human headings and units). Accuracy is the test metric at the last
epoch: a run trains for the epochs chosen on validation, so nothing here selects on test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from specbench.atomic_io import atomic_write_text
from specbench.record import decode_per_user
from specbench.report.records import final_metrics, trained_epochs
from specbench.report.stats import holm, paired_tests, seed_ci
from specbench.report.style import BACKBONE_NAMES, backbone_name, dataset_name, display_labels, metric_name

MAIN_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
PRIMARY = "ndcg@20"  # the metric the prose, the claims and the efficiency figure lead with
CI_MIN_SEEDS = 3     # below this a t-interval over seeds is not reported (std only)
ALPHA = 0.05         # significance level of the Holm-adjusted tests
ID = ["dataset", "backbone", "method", "label"]
__all__ = ["BACKBONE_NAMES", "MAIN_METRICS", "PRIMARY", "CI_MIN_SEEDS", "summary", "significance", "efficiency",
           "write_comparison", "write_significance", "write_efficiency", "write_frame", "seeds_phrase"]


def summary(runs: list[dict], metrics=MAIN_METRICS) -> pd.DataFrame:
    """Long table: one row per (dataset, backbone, method, metric): mean, std, seeds, and a 95% t-interval
    over seeds where there are at least CI_MIN_SEEDS of them (NaN otherwise)."""
    df = final_metrics(runs)
    metrics = [m for m in metrics if m in df]
    long = df.melt(id_vars=ID + ["seed"], value_vars=metrics, var_name="metric").dropna(subset=["value"])
    rows = []
    for key, group in long.groupby(ID + ["metric"], sort=False):
        v = group["value"].to_numpy(dtype=float)
        low, high = seed_ci(v) if len(v) >= CI_MIN_SEEDS else (np.nan, np.nan)
        rows.append(dict(zip(ID + ["metric"], key), mean=v.mean(), std=v.std(ddof=1) if len(v) > 1 else np.nan,
                         seeds=len(v), ci_low=low, ci_high=high))
    return pd.DataFrame(rows)


def seeds_phrase(table: pd.DataFrame) -> str:
    """'2 seeds' / '2–5 seeds', for captions."""
    lo, hi = int(table["seeds"].min()), int(table["seeds"].max())
    n = f"{lo}" if lo == hi else f"{lo}–{hi}"
    return f"{n} seed{'s' if hi > 1 else ''}"


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
    relative improvement of the seed means, paired per-user t-test and Wilcoxon, Holm-adjusted.
    Columns: method/label (ours), baseline_method/best_baseline (key/label of the best baseline)."""
    table = summary(runs, metrics)
    rows = []
    for (dataset, backbone, metric), group in table.groupby(["dataset", "backbone", "metric"], sort=False):
        baselines = group[~group["method"].isin(ours)]
        if baselines.empty:
            continue
        best = baselines.loc[baselines["mean"].idxmax()]
        for _, mine in group[group["method"].isin(ours)].iterrows():
            row = {"dataset": dataset, "backbone": backbone, "metric": metric, "method": mine["method"],
                   "label": mine["label"], "baseline_method": best["method"], "best_baseline": best["label"],
                   "mean": mine["mean"], "baseline_mean": best["mean"], "seeds": mine["seeds"],
                   "baseline_seeds": best["seeds"],
                   "improvement": (mine["mean"] - best["mean"]) / best["mean"] if best["mean"] else np.nan}
            a, fa = _per_user_mean(runs, dataset, backbone, mine["method"], metric)
            b, fb = _per_user_mean(runs, dataset, backbone, best["method"], metric)
            if a is not None and b is not None and fa == fb:
                row.update(paired_tests(a, b))
            rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    # rows by dataset, backbone (MF, LightGCN, ...) and metric in the given order
    order = {b: i for i, b in enumerate(BACKBONE_NAMES)}
    datasets = {d: i for i, d in enumerate(dict.fromkeys(table["dataset"]))}
    out = out.assign(_d=out["dataset"].map(datasets), _b=out["backbone"].map(lambda b: order.get(b, len(order))),
                     _m=out["metric"].map({m: i for i, m in enumerate(metrics)})).sort_values(
        ["_d", "_b", "_m"], kind="stable").drop(columns=["_d", "_b", "_m"]).reset_index(drop=True)
    for test in ("t_p", "wilcoxon_p"):
        if test in out:
            mask = out[test].notna()
            out.loc[mask, f"{test}_holm"] = holm(out.loc[mask, test])
    return out


def _device(r: dict) -> str:
    env = r.get("environment", {})
    if env.get("gpu"):
        return str(env["gpu"])
    if env.get("cpu") or env.get("threads"):
        threads = env.get("threads")
        return f"CPU ({env.get('cpu', '?')}, {threads} thread{'s' if threads != 1 else ''})"
    return str(env.get("device", "?"))


def efficiency(runs: list[dict]) -> pd.DataFrame:
    """Cost per method, mean over seeds: epochs trained (the number chosen on validation, or the fixed
    setting), seconds per epoch, training seconds for those epochs, model build seconds (a
    training-free filter's fit), their sum, peak memory. Training-free rows have 0 epochs and NaN
    per-epoch and training times (not applicable)."""
    labels = display_labels(runs)
    rows = []
    for r in runs:
        epochs = trained_epochs(r)
        train = float(np.sum([e["seconds"] for e in r["epochs"]])) if epochs else np.nan
        setup = r["timing"].get("setup_seconds", np.nan)
        rows.append({**{k: r["run"][k] for k in ("dataset", "backbone", "method", "seed")},
                     "label": labels[r["run"]["method"]], "device": _device(r), "epochs": epochs,
                     "seconds_per_epoch": r["timing"]["seconds_per_epoch"] if epochs else np.nan,
                     "train_seconds": r["timing"].get("train_seconds", train) if epochs else np.nan,
                     "setup_seconds": setup,
                     "total_seconds": (r["timing"].get("train_seconds", train) if epochs else 0.0)
                     + (0.0 if pd.isna(setup) else setup),
                     "peak_memory_mb": max(r.get("memory", {}).values() or [0]) / 2**20})
    df = pd.DataFrame(rows)
    cols = ["epochs", "seconds_per_epoch", "train_seconds", "setup_seconds", "total_seconds", "peak_memory_mb"]
    out = df.groupby(ID + ["device"], sort=False)[cols].mean().reset_index()
    out.insert(len(ID) + 1, "seeds", df.groupby(ID + ["device"], sort=False).size().to_numpy())
    return out


# ---------- formatting ----------

def _fmt(mean, std, bold, marker=""):
    num = f"**{mean:.4f}**{marker}" if bold else f"{mean:.4f}{marker}"
    return num if pd.isna(std) else f"{num} ± {std:.4f}"


def fmt_p(p) -> str:
    if p is None or pd.isna(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def fmt_pct(x, tex=False) -> str:
    if x is None or pd.isna(x):
        return "n/a"
    sign = "+" if x > 0 else ("$-$" if tex else "−") if x < 0 else "±"
    return f"{sign}{abs(100 * x):.1f}" + (r"\%" if tex else "%")


def fmt_num(x, digits=2, unit="") -> str:
    if x is None or pd.isna(x):
        return "n/a"
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 10:
        s = f"{x:.1f}"
    else:
        s = f"{x:.{digits}f}"
    return s + unit


def _esc(s) -> str:
    return (str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("&", r"\&")
            .replace("%", r"\%").replace("#", r"\#").replace("$", r"\$"))


def _booktabs(header: list[str], rows: list[list[str]], align: str, caption: str, label: str,
              group_first: bool = True, pre_header: str | None = None) -> str:
    """A booktabs table; with ``group_first`` a rule separates changes of the first column, whose
    repeats are left blank. Cells must already be LaTeX."""
    lines = [r"\begin{table}[tbp]", r"\centering", r"\small", rf"\caption{{{caption}}}", rf"\label{{{label}}}",
             rf"\begin{{tabular}}{{{align}}}", r"\toprule"]
    if pre_header:
        lines.append(pre_header)
    lines += [" & ".join(header) + r" \\", r"\midrule"]
    previous = None
    for row in rows:
        first = row[0]
        if group_first and previous is not None and first != previous:
            lines.append(r"\midrule")
        cells = ([first if first != previous else ""] if group_first else [first]) + list(row[1:])
        lines.append(" & ".join(cells) + r" \\")
        previous = first
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _write(stem, long, md_text, tex) -> list[Path]:
    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    atomic_write_text(paths[0], long.to_csv(index=False))
    atomic_write_text(paths[1], md_text)
    atomic_write_text(paths[2], tex)
    return paths


# ---------- the comparison tables (main, ablation) ----------

def _wide(table: pd.DataFrame, cell, ours=()) -> pd.DataFrame:
    """Rows (backbone, method label): backbones MF, LightGCN, then others; within one, methods by label
    with ours last. Columns (dataset, metric) in the table's order."""
    best = table.groupby(["dataset", "backbone", "metric"])["mean"].transform("max") == table["mean"]
    cells = table.assign(cell=[cell(r, b) for (_, r), b in zip(table.iterrows(), best)],
                         backbone=table["backbone"].map(lambda b: BACKBONE_NAMES.get(b, b)),
                         label=[f"{lab} (ours)" if m in set(ours) else lab
                                for m, lab in zip(table["method"], table["label"])])
    wide = cells.pivot_table(index=["backbone", "label"], columns=["dataset", "metric"], values="cell",
                             aggfunc="first", sort=False)
    order = {name: i for i, name in enumerate(BACKBONE_NAMES.values())}  # MF first, then LightGCN, then others
    mine = {f"{lab} (ours)" for m, lab in zip(table["method"], table["label"]) if m in set(ours)}
    rows = sorted(wide.index, key=lambda k: (order.get(k[0], len(order)), k[0], k[1] in mine, k[1].casefold()))
    datasets, metrics = list(dict.fromkeys(table["dataset"])), list(dict.fromkeys(table["metric"]))
    columns = [(d, m) for d in datasets for m in metrics if ((table["dataset"] == d) & (table["metric"] == m)).any()]
    return wide.reindex(index=pd.MultiIndex.from_tuples(rows, names=wide.index.names),
                        columns=pd.MultiIndex.from_tuples(columns, names=wide.columns.names))


def _markers(sig: pd.DataFrame | None) -> dict:
    """† where ours beats the best baseline with Holm-adjusted Wilcoxon p < ALPHA."""
    if sig is None or sig.empty or "wilcoxon_p_holm" not in sig:
        return {}
    hits = sig[(sig["wilcoxon_p_holm"] < ALPHA) & (sig["improvement"] > 0)]
    return {(r.dataset, r.backbone, r.method, r.metric): "†" for r in hits.itertuples()}


def write_comparison(table: pd.DataFrame, stem: Path, caption: str, sig: pd.DataFrame | None = None,
                     ours=(), label: str | None = None) -> list[Path]:
    """<stem>.csv (long), .md and .tex (backbone-grouped, best per backbone in bold, † = significant)."""
    stem = Path(stem)
    marks = _markers(sig)
    mark = lambda r: marks.get((r["dataset"], r["backbone"], r["method"], r["metric"]), "")  # noqa: E731
    md = _wide(table, lambda r, b: _fmt(r["mean"], r["std"], b, mark(r)), ours)
    datasets = list(dict.fromkeys(d for d, _ in md.columns))
    md.columns = [(f"{dataset_name(d)} " if len(datasets) > 1 else "") + metric_name(m) for d, m in md.columns]
    note = f" † Holm-adjusted paired Wilcoxon p < {ALPHA} against the best baseline." if marks else ""
    md_text = (f"{caption}{note}\n\n" + (f"Dataset: {dataset_name(datasets[0])}.\n\n" if len(datasets) == 1 else "")
               + md.reset_index().rename(columns={"backbone": "Backbone", "label": "Method"})
               .to_markdown(index=False) + "\n")

    compact = len(md.columns) > 8  # the paper grid (3 datasets x 4 metrics): means only, or it will not fit

    def tex_cell(r, b):
        num = r"\textbf{%.4f}" % r["mean"] if b else "%.4f" % r["mean"]
        num += r"$^\dagger$" if mark(r) else ""
        return num if pd.isna(r["std"]) or compact else num + r"\,{\scriptsize$\pm$%.4f}" % r["std"]
    tex = _wide(table, tex_cell, ours)
    if compact:
        note += f" Means only; the standard deviations are in {stem.name}.md and {stem.name}.csv."
    cols = list(tex.columns)
    pre = " & & " + " & ".join(
        rf"\multicolumn{{{sum(1 for d, _ in cols if d == ds)}}}{{c}}{{{_esc(dataset_name(ds))}}}" for ds in datasets) + r" \\"
    rules = []
    start = 3
    for ds in datasets:
        n = sum(1 for d, _ in cols if d == ds)
        rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
        start += n
    rows = [[_esc(bb), _esc(lab), *("--" if pd.isna(v) else v for v in row.values)] for (bb, lab), row in tex.iterrows()]
    tex_text = _booktabs(["Backbone", "Method", *(_esc(metric_name(m)) for _, m in cols)], rows,
                         "ll" + "r" * len(cols), _esc(caption + note), label or f"tab:{stem.name}",
                         pre_header=pre + " " + " ".join(rules))
    return _write(stem, table, md_text, tex_text)


# ---------- significance ----------

def write_significance(sig: pd.DataFrame, stem: Path, caption: str) -> list[Path]:
    """Ours against the best baseline: means, relative difference in percent, Holm-adjusted p-values."""
    labels = list(dict.fromkeys(sig["label"]))
    single = len(labels) == 1
    heads = ["Dataset / backbone", "Metric", labels[0] if single else "Ours", "Best baseline", "Mean", "Difference",
             "p (t-test)", "p (Wilcoxon)"]
    md_rows, tex_rows = [], []
    for r in sig.itertuples():
        setting = f"{dataset_name(r.dataset)} / {backbone_name(r.backbone, short=True)}"
        p_t, p_w = fmt_p(getattr(r, "t_p_holm", np.nan)), fmt_p(getattr(r, "wilcoxon_p_holm", np.nan))
        mine = f"{r.mean:.4f}" if single else f"{r.label} {r.mean:.4f}"
        md_rows.append([setting, metric_name(r.metric), mine, r.best_baseline, f"{r.baseline_mean:.4f}",
                        fmt_pct(r.improvement), p_t, p_w])
        tex_rows.append([_esc(setting), _esc(metric_name(r.metric)), _esc(mine), _esc(r.best_baseline),
                         f"{r.baseline_mean:.4f}", fmt_pct(r.improvement, tex=True),
                         p_t.replace("<", "$<$"), p_w.replace("<", "$<$")])
    users = sorted({int(u) for u in sig["users"].dropna()}) if "users" in sig else []
    full = caption + (f" Paired over {', '.join(map(str, users))} test users; p-values Holm-adjusted." if users else
                      " No per-user values were recorded: p-values n/a.")
    md = pd.DataFrame(md_rows, columns=heads)
    md_text = f"{full}\n\n" + md.to_markdown(index=False, disable_numparse=True,
                                             colalign=["left", "left", "right", "left"] + ["right"] * 4) + "\n"
    tex = _booktabs([_esc(h) for h in heads], tex_rows, "llrlrrrr", _esc(full), f"tab:{Path(stem).name}")
    return _write(stem, sig, md_text, tex)


# ---------- efficiency ----------

def write_efficiency(eff: pd.DataFrame, stem: Path, caption: str, ours=()) -> list[Path]:
    devices = list(dict.fromkeys(eff["device"]))
    datasets = list(dict.fromkeys(eff["dataset"]))
    show_ds = len(datasets) > 1
    heads = (["Dataset"] if show_ds else []) + ["Backbone", "Method", "Epochs", "s / epoch", "Training (s)",
                                                "Build (s)", "Total (s)", "Peak memory (MB)"]
    heads += ["Device"] if len(devices) > 1 else []
    order = {b: i for i, b in enumerate(BACKBONE_NAMES)}
    eff = eff.assign(_o=eff["backbone"].map(lambda b: order.get(b, len(order))), _m=eff["method"].isin(set(ours)),
                     _l=eff["label"].str.casefold()).sort_values(["dataset", "_o", "_m", "_l"], kind="stable")
    eff = eff.drop(columns=["_o", "_m", "_l"])
    md_rows, tex_rows = [], []
    for r in eff.itertuples():
        name = f"{r.label} (ours)" if r.method in set(ours) else r.label
        free = r.epochs == 0
        cells = [("n/a" if free else f"{r.epochs:.0f}"),
                 fmt_num(r.seconds_per_epoch, 3), fmt_num(r.train_seconds), fmt_num(r.setup_seconds, 3),
                 fmt_num(r.total_seconds), fmt_num(r.peak_memory_mb, 0)]
        row = ([dataset_name(r.dataset)] if show_ds else []) + [backbone_name(r.backbone), name] + cells
        row += [r.device] if len(devices) > 1 else []
        md_rows.append(row)
        tex_rows.append([_esc(c) for c in row])
    if not show_ds:
        caption = f"{caption} Dataset: {dataset_name(datasets[0])}."
    if len(devices) == 1:
        caption = f"{caption} Device: {devices[0]}."
    md = pd.DataFrame(md_rows, columns=heads)
    n_text = len(heads) - 6 - (1 if len(devices) > 1 else 0)
    md_text = f"{caption}\n\n" + md.to_markdown(index=False, disable_numparse=True, colalign=["left"] * n_text + ["right"] * 6
                                                + (["left"] if len(devices) > 1 else [])) + "\n"
    tex = _booktabs(heads, tex_rows, "l" * n_text + "r" * 6 + ("l" if len(devices) > 1 else ""), _esc(caption),
                    f"tab:{Path(stem).name}")
    return _write(stem, eff, md_text, tex)


def write_frame(df: pd.DataFrame, stem: Path, caption: str, headings: dict | None = None, align: str | None = None,
                label: str | None = None, floatfmt=".4g") -> list[Path]:
    """A plain table (one row per record): the CSV as given, .md and .tex with ``headings`` (column -> heading)."""
    headings = headings or {c: str(c) for c in df.columns}
    shown = df[list(headings)].rename(columns=headings)
    fmt = lambda v: format(v, floatfmt) if isinstance(v, float) and not pd.isna(v) else ("n/a" if pd.isna(v) else str(v))  # noqa: E731
    md_text = f"{caption}\n\n" + shown.map(fmt).to_markdown(index=False, disable_numparse=True) + "\n"
    rows = [[_esc(fmt(v)) for v in row] for row in shown.itertuples(index=False)]
    tex = _booktabs([_esc(h) for h in shown.columns], rows, align or "l" * len(shown.columns), _esc(caption),
                    label or f"tab:{Path(stem).name}", group_first=False)
    return _write(stem, df, md_text, tex)
