"""The abstract's claims (arXiv 2406.12032) checked against this study's run records.

Each claim gets a verdict computed from the records, with the measurement behind it printed, and
"not measured" where the records hold nothing to decide it. Effective ranks are the last
evaluation's (runs train for the epochs chosen on validation); accuracy is the test metric at the
last epoch; the over-balancing claim reads the α × τ sweep runs (or tuning trials) at their last
epoch. The thresholds are fixed below and printed with every verdict.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from specbench.report.figures import sensitivity_points
from specbench.report.records import final_metrics
from specbench.report.style import BACKBONE_NAMES, backbone_name, dataset_name, metric_name
from specbench.report.tables import ALPHA, PRIMARY, fmt_p, fmt_pct, summary

# Which method keys play which part in the claims (config/methods.yaml); ours come from the report.
ROLES = {
    "positives_only": ("PositivesOnly",),
    "negative_sampling": ("BPR",),
    "contrastive_uniformity": ("DirectAU", "MAWU", "SSM", "SimGCL", "XSimGCL", "SGL", "NCL", "NonContrastiveCL"),
}
COMPLETE = 2.0       # T1: complete collapse = fewer than two effective dimensions
PARTIAL_MAX = 0.5    # T2: partial collapse = at least 2 and below half of d
BALANCED_MIN = 0.75  # T3: balanced = at least three quarters of d

STATEMENTS = {
    "T1": "Training on positive pairs only collapses the embeddings completely (effective rank → 1).",
    "T2": "Negative sampling (BPR) collapses them partially (low effective rank).",
    "T3": "DirectSpec(+) keeps the spectrum balanced (effective rank near the full d).",
    "T4": "Contrastive and uniformity-based methods lie between negative sampling and DirectSpec(+).",
    "T5": "DirectSpec+ is more accurate than the baselines.",
    "T6": "Over-balancing (large α) raises the effective rank but costs accuracy.",
}
CRITERIA = {
    "T1": f"erank < {COMPLETE:g} at the last epoch",
    "T2": f"{COMPLETE:g} ≤ erank < {PARTIAL_MAX:g}·d",
    "T3": f"erank ≥ {BALANCED_MIN:g}·d (partly: above BPR's)",
    "T4": "BPR < erank < DirectSpec(+), same dataset and backbone",
    "T5": f"{metric_name(PRIMARY)} above the best baseline, Holm-adjusted Wilcoxon p < {ALPHA:g}",
    "T6": "largest α: higher erank, lower accuracy than the most accurate α (means over τ)",
}


def _cell(ds, bb) -> str:
    return f"{dataset_name(ds)}/{backbone_name(bb, short=True)}"


def _verdict(results: list[str]) -> str:
    """Cell verdicts ('yes', 'partly', 'no', 'inconclusive') -> the claim's verdict."""
    if not results:
        return "not measured"
    if all(r == "yes" for r in results):
        return "supported"
    if all(r == "no" for r in results):
        return "not supported"
    if all(r == "inconclusive" for r in results):
        return "inconclusive"
    if all(r in ("partly", "yes") for r in results):
        return "partly supported"
    return f"mixed ({sum(r == 'yes' for r in results)} of {len(results)} cases)"


def _erank_table(runs) -> pd.DataFrame:
    df = final_metrics(runs)
    df = df[df["erank"].notna()]
    order = {b: i for i, b in enumerate(BACKBONE_NAMES)}  # MF before LightGCN in every measurement
    df = df.assign(_o=df["backbone"].map(lambda b: order.get(b, len(order)))).sort_values(["dataset", "_o"], kind="stable")
    return df.groupby(["dataset", "backbone", "method", "label"], sort=False).agg(
        erank=("erank", "mean"), dim=("dim", "max"), epoch=("epoch", "max"), seeds=("seed", "nunique")).reset_index()


def _pick(er, ds, bb, methods):
    part = er[(er["dataset"] == ds) & (er["backbone"] == bb) & er["method"].isin(methods)]
    return part


def _rank_claim(er, methods, test, extra=None) -> tuple[list[str], list[str]]:
    """Per (dataset, backbone, method) of ``methods``: test(row, ds, bb) -> a case verdict; the texts,
    one per (method, d): "BPR, d = 64: 9.05 (14%) on MovieLens-100k/MF at epoch 15; ..."."""
    verdicts, texts = [], {}
    for (ds, bb), part in er[er["method"].isin(methods)].groupby(["dataset", "backbone"], sort=False):
        for r in part.itertuples():
            verdicts.append(test(r, ds, bb))
            texts.setdefault(f"{r.label}, d = {r.dim:.0f}: ", []).append(
                f"{r.erank:.2f} ({100 * r.erank / r.dim:.0f}%) on {_cell(ds, bb)} at epoch {r.epoch}"
                + (extra(r, ds, bb) if extra else ""))
    return verdicts, [head + "; ".join(cases) for head, cases in texts.items()]


def claims(runs: list[dict], ours=(), trials: list[dict] = (), roles: dict | None = None,
           sig: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim T1..T6: statement, criterion, verdict, measurement, cases decided."""
    roles = {**ROLES, **(roles or {})}
    ours = list(ours) or sorted({r["run"]["method"] for r in runs if r["run"].get("model") in ("DirectSpec", "DirectSpecPlus")})
    er = _erank_table(runs)
    rows = []

    def add(claim, verdicts, measurement, missing):
        rows.append({"claim": claim, "statement": STATEMENTS[claim], "criterion": CRITERIA[claim],
                     "verdict": _verdict(verdicts), "measurement": measurement if verdicts else missing,
                     "cases": len(verdicts), "cases_holding": sum(v == "yes" for v in verdicts)})

    def bpr_of(ds, bb):
        part = _pick(er, ds, bb, roles["negative_sampling"])
        return part["erank"].mean() if len(part) else np.nan

    # T1
    v, t = _rank_claim(er, roles["positives_only"], lambda r, ds, bb: "yes" if r.erank < COMPLETE else "no")
    add("T1", v, "; ".join(t), "not measured: no positives-only run with a spectrum")
    # T2
    v, t = _rank_claim(er, roles["negative_sampling"],
                       lambda r, ds, bb: "yes" if COMPLETE <= r.erank < PARTIAL_MAX * r.dim else "no")
    add("T2", v, "; ".join(t), "not measured: no BPR run with a spectrum")

    # T3
    def t3(r, ds, bb):
        if r.erank >= BALANCED_MIN * r.dim:
            return "yes"
        return "partly" if r.erank > bpr_of(ds, bb) else "no"
    v, t = _rank_claim(er, ours, t3,
                       lambda r, ds, bb: "" if np.isnan(bpr_of(ds, bb)) else f" (BPR {bpr_of(ds, bb):.2f})")
    add("T3", v, "; ".join(t), "not measured: no DirectSpec(+) run with a spectrum")

    # T4
    verdicts, texts, unmeasured = [], [], []
    for (ds, bb), part in er.groupby(["dataset", "backbone"], sort=False):
        others = part[part["method"].isin(roles["contrastive_uniformity"])]
        if others.empty:
            continue
        low, high = _pick(er, ds, bb, roles["negative_sampling"]), _pick(er, ds, bb, ours)
        if low.empty or high.empty:
            unmeasured.append(f"{_cell(ds, bb)}: no {'BPR' if low.empty else 'DirectSpec(+)'} run")
            continue
        lo, hi = low["erank"].mean(), high["erank"].mean()
        inside = [o for o in others.itertuples() if lo < o.erank < hi]
        verdicts.append("yes" if len(inside) == len(others) else "partly" if inside else "no")
        outside = [f"{o.label} {o.erank:.1f}" for o in others.itertuples() if not lo < o.erank < hi]
        texts.append(f"{_cell(ds, bb)}: {len(inside)} of {len(others)} between BPR {lo:.1f} and "
                     f"{high['label'].iloc[0]} {hi:.1f}" + (f"; outside: {', '.join(outside)}" if outside else ""))
    measurement = "; ".join(texts + [f"{u} (not measured)" for u in unmeasured])
    add("T4", verdicts, measurement, "not measured: " + ("; ".join(unmeasured) if unmeasured
                                                        else "no contrastive or uniformity-based run with a spectrum"))

    # T5
    verdicts, texts = [], []
    table = summary(runs, [PRIMARY])
    if sig is not None and not sig.empty:
        for r in sig[sig["metric"] == PRIMARY].itertuples():
            p = getattr(r, "wilcoxon_p_holm", np.nan)
            if pd.isna(p):
                v = "inconclusive"
            elif p < ALPHA:
                v = "yes" if r.improvement > 0 else "no"
            else:
                v = "inconclusive"
            verdicts.append(v)
            bpr = table[(table["dataset"] == r.dataset) & (table["backbone"] == r.backbone)
                        & table["method"].isin(roles["negative_sampling"])]
            vs_bpr = (f"; vs BPR {bpr['mean'].iloc[0]:.4f} ({fmt_pct((r.mean - bpr['mean'].iloc[0]) / bpr['mean'].iloc[0])})"
                      if len(bpr) and r.baseline_method not in roles["negative_sampling"] else "")
            texts.append(f"{_cell(r.dataset, r.backbone)}: {r.label} {metric_name(PRIMARY)} {r.mean:.4f} vs best "
                         f"baseline {r.best_baseline} {r.baseline_mean:.4f} ({fmt_pct(r.improvement)}, "
                         f"Holm-adjusted Wilcoxon p {'< 0.001' if fmt_p(p) == '<0.001' else '= ' + fmt_p(p)}){vs_bpr}")
    add("T5", verdicts, "; ".join(texts), "not measured: no run of ours with a baseline on the same backbone")

    # T6
    verdicts, texts = [], []
    points = sensitivity_points(list(trials)) if trials else pd.DataFrame()
    if len(points):
        points = points[points["method"].isin(ours)] if ours else points
    for (ds, bb, label), part in (points.groupby(["dataset", "backbone", "label"], sort=False) if len(points) else []):
        by_alpha = part.groupby("alpha").agg(acc=(PRIMARY, "mean"), erank=("erank", "mean"))
        if len(by_alpha) < 2:
            continue
        best, top = by_alpha["acc"].idxmax(), by_alpha.index.max()
        holds = top > best and by_alpha.loc[top, "erank"] > by_alpha.loc[best, "erank"] \
            and by_alpha.loc[top, "acc"] < by_alpha.loc[best, "acc"]
        verdicts.append("yes" if holds else "no")
        taus = ", ".join(f"{t:g}" for t in sorted(set(part["tau"])))
        split = "/".join(sorted(set(part["split"])))
        epochs = sorted(set(part["epoch"]))
        at = f"epoch {epochs[0]}" if len(epochs) == 1 else "last epoch"
        texts.append(f"{_cell(ds, bb)} {label}, {len(part)} sweep runs ({split}, {at}, means over τ ∈ {{{taus}}}): "
                     f"most accurate α = {best:g}: {metric_name(PRIMARY)} {by_alpha.loc[best, 'acc']:.3f}, erank "
                     f"{by_alpha.loc[best, 'erank']:.1f}; largest α = {top:g}: {by_alpha.loc[top, 'acc']:.3f}, erank "
                     f"{by_alpha.loc[top, 'erank']:.1f}")
    add("T6", verdicts, "; ".join(texts), "not measured: no α × τ sweep runs or tuning trials of DirectSpec(+)")
    return pd.DataFrame(rows)


def write_claims(table: pd.DataFrame, stem, caption: str) -> list:
    """claims.csv (one row per claim), .md and .tex (claim, verdict, measurement)."""
    from specbench.report.tables import _esc, _write

    md = table.assign(Claim=[f"{c}: {s}" for c, s in zip(table["claim"], table["statement"])])
    md = md.rename(columns={"criterion": "Criterion", "verdict": "Verdict", "measurement": "Measurement"})
    md_text = f"{caption}\n\n" + md[["Claim", "Criterion", "Verdict", "Measurement"]].to_markdown(index=False) + "\n"
    lines = [r"\begin{table}[tbp]", r"\centering", r"\small", rf"\caption{{{_esc(caption)}}}", r"\label{tab:claims}",
             r"\begin{tabular}{@{}>{\raggedright\arraybackslash}p{0.30\linewidth}>{\raggedright\arraybackslash}p{0.12\linewidth}"
             r">{\raggedright\arraybackslash}p{0.52\linewidth}@{}}", r"\toprule",
             r"Claim (criterion) & Verdict & Measurement \\", r"\midrule"]
    for r in table.itertuples():
        lines.append(rf"\textbf{{{r.claim}}} {_esc(r.statement)} {{\footnotesize\itshape ({_esc(r.criterion)})}} & "
                     rf"{_esc(r.verdict)} & {{\footnotesize {_esc(r.measurement)}}} \\")
        lines.append(r"\addlinespace")
    lines[-1] = r"\bottomrule"
    lines += [r"\end{tabular}", r"\end{table}", ""]
    return _write(stem, table, md_text, "\n".join(lines))
