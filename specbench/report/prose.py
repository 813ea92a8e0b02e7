"""The paper's generated text: LaTeX fragments under <out>/paper/, every number computed from the records.

abstract.tex     what this build measured, in two sentences, and the claims' verdicts
results.tex      the Results section: methods and data, the claims table, accuracy (who wins where,
                 by how much, with significance), spectrum, sensitivity, ablation, cost; it inputs the
                 generated tables and figures that exist (\\generatedtable, \\generatedfigure of main.tex)
discussion.tex   the verdicts in words and the caveats the records show (seeds, unconverged runs, notes)
provenance.tex   runs, dates, commits, hardware and package versions the numbers come from
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from specbench.atomic_io import atomic_write_text
from specbench.report import bib
from specbench.report.figures import sensitivity_points
from specbench.report.records import final_metrics
from specbench.report.style import backbone_name, dataset_name, display_labels, metric_name
from specbench.report.tables import (ALPHA, BACKBONE_NAMES, CI_MIN_SEEDS, MAIN_METRICS, PRIMARY, _device, _esc,
                                     fmt_num, fmt_p, fmt_pct, seeds_phrase)

RISING = 0.02  # a run whose primary metric rose by more than this (relative) over its last evaluation step


def _and(items) -> str:
    items = list(items)
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def _p_text(p) -> str:
    s = fmt_p(p)
    return "n/a" if s == "n/a" else ("$p < 0.001$" if s == "<0.001" else f"$p = {s}$")


def _bb_order(backbones):
    order = {b: i for i, b in enumerate(BACKBONE_NAMES)}
    return sorted(dict.fromkeys(backbones), key=lambda b: order.get(b, len(order)))


class Facts:
    """What the generated text draws on, computed once."""

    def __init__(self, runs, main_runs, ablation_runs, ours, table, sig, eff, claim_table, trials, run_paths):
        self.runs, self.main_runs, self.ablation_runs = runs, main_runs, ablation_runs
        self.ours = [m for m in ours if any(r["run"]["method"] == m for r in runs)]
        self.labels = display_labels(runs)
        self.table, self.sig, self.eff, self.claims = table, sig, eff, claim_table
        self.trials, self.run_paths = trials, [Path(p) for p in run_paths]
        self.models = {r["run"]["method"]: r["run"].get("model") for r in runs}
        self.final = final_metrics(main_runs)

    def L(self, method, cite=False) -> str:
        text = _esc(self.labels.get(method, method))
        return text + (bib.citep(bib.method_keys(method, self.models.get(method))) if cite else "")

    def ranked(self, ds, bb, metric=PRIMARY) -> pd.DataFrame:
        t = self.table
        return t[(t["dataset"] == ds) & (t["backbone"] == bb) & (t["metric"] == metric)].sort_values(
            "mean", ascending=False)

    def value(self, row) -> str:
        """mean ± std; the std left out with one seed or none to show (a deterministic model)."""
        return f"{row['mean']:.4f}" + ("" if pd.isna(row["std"]) or row["std"] == 0 else f"~$\\pm$~{row['std']:.4f}")


def _methods_paragraph(f: Facts) -> str:
    datasets = list(dict.fromkeys(r["run"]["dataset"] for r in f.main_runs))
    by_bb = {}
    for r in f.main_runs:
        by_bb.setdefault(r["run"]["backbone"], dict.fromkeys([]))[r["run"]["method"]] = None
    ours = [m for m in f.ours if any(r["run"]["method"] == m for r in f.main_runs)]
    parts = []
    for bb in _bb_order(by_bb):
        methods = [m for m in by_bb[bb] if m not in ours]
        name = backbone_name(bb)
        cite = bib.citep(bib.BACKBONE_CITES.get(bb, []))
        head = ("the training-free graph filters" if bb == "filter" else f"the {name}{cite} backbone")
        mine = [m for m in by_bb[bb] if m in ours]
        parts.append(f"on {head}: " + _and([f"{f.L(m, cite=True)} (ours)" for m in mine]
                                           + [f.L(m, cite=True) for m in methods]))
    seeds = seeds_phrase(f.table)
    data = _and(f"{_esc(dataset_name(d))}{bib.citep(bib.dataset_keys(d))}" for d in datasets)
    n_methods = len({r["run"]["method"] for r in f.main_runs})
    return (f"This build holds {len(f.main_runs)} test runs of {n_methods} methods on {data}, "
            f"{seeds} per configuration, trained and evaluated with RecBole{bib.citep(bib.OTHER_CITES['recbole'])}. "
            f"Methods, {'; '.join(parts)}.\n")


def _claims_paragraph(f: Facts) -> str:
    c = f.claims
    groups = {}
    for r in c.itertuples():
        groups.setdefault(r.verdict.split(" (")[0], []).append(r.claim)
    order = ["supported", "partly supported", "mixed", "inconclusive", "not supported", "not measured"]
    said = [f"{_and(groups[k])} {'is' if len(groups[k]) == 1 else 'are'} {k}" for k in order if k in groups]
    return ("Table~\\ref{tab:claims} checks the six claims of the abstract of \\citet{peng2024balancing} against "
            "these records; every verdict is computed from them by the criterion printed with it, and the "
            f"measurement it rests on is shown. Here, {_and(said)}.\n")


def _accuracy_paragraphs(f: Facts) -> list[str]:
    out = []
    metric = metric_name(PRIMARY)
    for ds in dict.fromkeys(f.table["dataset"]):
        t = f.table[(f.table["dataset"] == ds) & (f.table["metric"] == PRIMARY)].sort_values("mean", ascending=False)
        top = t.iloc[0]
        text = [f"\\paragraph{{{_esc(dataset_name(ds))}.}} The most accurate model overall is {f.L(top['method'])} "
                f"({_esc(backbone_name(top['backbone']))}) with {metric} {f.value(top)}."]
        for bb in _bb_order(t["backbone"]):
            ranked = f.ranked(ds, bb)
            if ranked.empty:
                continue
            a = ranked.iloc[0]
            name = "the training-free filters" if bb == "filter" else backbone_name(bb)
            if len(ranked) == 1:
                text.append(f"On {name}, only {f.L(a['method'])} was run ({f.value(a)}).")
            else:
                b, rest = ranked.iloc[1], ranked.iloc[2:4]
                follow = [f"{f.L(b['method'])} ({b['mean']:.4f}, {fmt_pct((b['mean'] - a['mean']) / a['mean'], tex=True)})"]
                follow += [f"{f.L(r['method'])} ({r['mean']:.4f})" for _, r in rest.iterrows()]
                text.append(f"On {name}, {f.L(a['method'])} leads ({f.value(a)}) of {len(ranked)} methods, ahead of "
                            f"{_and(follow)}.")
            mine = [m for m in f.ours if m in set(ranked["method"])]
            for m in mine:
                pos = list(ranked["method"]).index(m) + 1
                s = f"{f.L(m)} ranks {pos} of {len(ranked)}"
                if f.sig is not None and not f.sig.empty:
                    row = f.sig[(f.sig["dataset"] == ds) & (f.sig["backbone"] == bb) & (f.sig["metric"] == PRIMARY)
                                & (f.sig["method"] == m)]
                    if len(row):
                        r = row.iloc[0]
                        p = r.get("wilcoxon_p_holm", np.nan)
                        verdict = ("significant" if not pd.isna(p) and p < ALPHA else
                                   "not significant" if not pd.isna(p) else "untested: no per-user values")
                        s += (f": {fmt_pct(r['improvement'], tex=True)} against the best baseline, "
                              f"{f.L(r['baseline_method'])} (Holm-adjusted paired Wilcoxon {_p_text(p)}, {verdict})")
                    wins = f.sig[(f.sig["dataset"] == ds) & (f.sig["backbone"] == bb) & (f.sig["method"] == m)]
                    better = [metric_name(x) for x, imp, pw in zip(wins["metric"], wins["improvement"],
                                                                   wins.get("wilcoxon_p_holm", pd.Series(dtype=float)))
                              if imp > 0]
                    s += (f"; it is above the best baseline on {len(better)} of {len(wins)} metrics"
                          + (f" ({_and(better)})" if better else ""))
                bpr = ranked[ranked["method"] == "BPR"]
                if len(bpr) and m != "BPR":
                    mean = ranked[ranked["method"] == m]["mean"].iloc[0]
                    s += f", and {fmt_pct((mean - bpr['mean'].iloc[0]) / bpr['mean'].iloc[0], tex=True)} against BPR"
                text.append(s + ".")
            if not mine and f.ours and bb != "filter":
                text.append(f"(No {_and(f.L(m) for m in f.ours)} run on {name} in this study.)")
        below = []
        for bb in _bb_order(t["backbone"]):
            ranked = f.ranked(ds, bb)
            bpr = ranked[ranked["method"] == "BPR"]
            if len(bpr):
                below += [f"{f.L(r['method'])} ({backbone_name(bb, short=True)})" for _, r in ranked.iterrows()
                          if r["method"] != "BPR" and r["mean"] < bpr["mean"].iloc[0]]
        if below:
            text.append(f"Below BPR on the same backbone: {_and(below)}.")
        out.append(" ".join(text) + "\n")
    return out


def _per_method(f: Facts) -> pd.DataFrame:
    """Final effective rank and primary metric per (dataset, backbone, method), MF before LightGCN."""
    df = f.final[f.final["erank"].notna()]
    per = df.groupby(["dataset", "backbone", "method"], sort=False).agg(
        erank=("erank", "mean"), acc=(PRIMARY, "mean"), dim=("dim", "max"), epoch=("epoch", "max")).reset_index()
    order = {b: i for i, b in enumerate(_bb_order(per["backbone"]))}
    return per.assign(_o=per["backbone"].map(order)).sort_values(["dataset", "_o"], kind="stable").drop(columns="_o")


def _spectrum_paragraph(f: Facts) -> str:
    df = f.final[f.final["erank"].notna()]
    if df.empty:
        return "No run recorded an embedding spectrum.\n"
    per = _per_method(f)
    text = []
    for (ds, bb), part in per.groupby(["dataset", "backbone"], sort=False):
        part = part.sort_values("erank")
        lo, hi, dim = part.iloc[0], part.iloc[-1], int(part["dim"].max())
        s = (f"On {_esc(dataset_name(ds))} with {backbone_name(bb)}, the final effective rank (of $d = {dim}$) runs "
             f"from {lo['erank']:.2f} ({f.L(lo['method'])}) to {hi['erank']:.1f} ({f.L(hi['method'])})")
        named = [m for m in list(f.ours) + ["BPR"] if m in set(part["method"]) and m not in (lo["method"], hi["method"])]
        if named:
            s += "; " + _and(f"{f.L(m)} ends at {part[part['method'] == m]['erank'].iloc[0]:.1f}" for m in named)
        if len(part) >= 4:
            rho, p = stats.spearmanr(part["erank"], part["acc"])
            s += (f". Across its {len(part)} methods, final effective rank and {metric_name(PRIMARY)} have "
                  f"Spearman $\\rho = {rho:.2f}$ ({_p_text(p)})")
        text.append(s + ".")
    epochs = sorted({int(e) for e in df["epoch"]})
    text.append("Each run is measured at its own last epoch"
                + (f" ({_and(str(e) for e in epochs)}, the epochs chosen on validation)" if len(epochs) > 1 else "")
                + ": a curve in Figure~\\ref{fig:erank} ends where its training ended.")
    return " ".join(text) + "\n"


def _sensitivity_paragraph(f: Facts) -> str:
    points = sensitivity_points(list(f.trials)) if f.trials else pd.DataFrame()
    if points.empty:
        return ""
    text = []
    for (ds, bb, label), part in points.groupby(["dataset", "backbone", "label"], sort=False):
        split = "/".join(sorted(set(part["split"])))
        epochs = sorted(set(part["epoch"]))
        at = f"epoch {epochs[0]}" if len(epochs) == 1 else "the last epoch of each run"
        best, worst = part.loc[part[PRIMARY].idxmax()], part.loc[part[PRIMARY].idxmin()]
        top = part.loc[part["erank"].idxmax()]
        cell = lambda r: f"$\\alpha = {r['alpha']:g}, \\tau = {r['tau']:g}$"  # noqa: E731
        s = (f"Over the {len(part)} points of the $\\alpha \\times \\tau$ grid of {_esc(label)} on "
             f"{_esc(dataset_name(ds))}/{backbone_name(bb, short=True)} ({split} split, {at}, "
             f"{seeds_phrase(part.groupby(['alpha', 'tau']).size().rename('seeds').to_frame())}), "
             f"{metric_name(PRIMARY)} runs from {worst[PRIMARY]:.3f} ({cell(worst)}) to {best[PRIMARY]:.3f} "
             f"({cell(best)}); the highest effective rank, {top['erank']:.1f} at {cell(top)}, comes with "
             f"{metric_name(PRIMARY)} {top[PRIMARY]:.3f}.")
        flat = [a for a, g in part.groupby("alpha") if g["tau"].nunique() > 1 and g[PRIMARY].nunique() == 1
                and g["erank"].round(6).nunique() == 1]
        if flat:
            s += (f" At $\\alpha = {_and(f'{a:g}' for a in flat)}$ every $\\tau$ gives the same result: the "
                  "$\\tau$-dependent term is off.")
        text.append(s)
    return " ".join(text) + " The points are not used to choose any setting: the reported runs use the settings " \
        "chosen on validation.\n"


def _ablation_paragraph(f: Facts) -> str:
    if not f.ablation_runs:
        return ""
    abl = final_metrics(f.ablation_runs).groupby(["dataset", "backbone", "method"], sort=False)[PRIMARY].mean()
    full = f.final.groupby(["dataset", "backbone", "method"], sort=False)[PRIMARY].mean()
    text = []
    for (ds, bb, m), v in abl.items():
        ref = [full[(ds, bb, o)] for o in f.ours if (ds, bb, o) in full]
        s = f"{f.L(m)} reaches {metric_name(PRIMARY)} {v:.4f} on {_esc(dataset_name(ds))}/{backbone_name(bb, short=True)}"
        if ref:
            s += f" ({fmt_pct((v - ref[0]) / ref[0], tex=True)} against {f.L(f.ours[0])})"
        text.append(s + ".")
    return " ".join(text) + "\n"


def _cost_paragraph(f: Facts) -> str:
    eff = f.eff[f.eff["method"].isin({r["run"]["method"] for r in f.main_runs})]
    text = []
    order = {b: i for i, b in enumerate(_bb_order(eff["backbone"]))}
    eff = eff.assign(_o=eff["backbone"].map(order)).sort_values(["dataset", "_o"], kind="stable")
    for (ds, bb), part in eff.groupby(["dataset", "backbone"], sort=False):
        if bb == "filter":
            text.append(f"The training-free filters fit in {fmt_num(part['setup_seconds'].min(), 2)}--"
                        f"{fmt_num(part['setup_seconds'].max(), 2)}~s.")
            continue
        bpr = part[part["method"] == "BPR"]
        for m in f.ours:
            mine = part[part["method"] == m]
            if mine.empty:
                continue
            r = mine.iloc[0]
            s = (f"On {backbone_name(bb)}, {f.L(m)} takes {fmt_num(r['seconds_per_epoch'], 3)}~s per epoch and "
                 f"{fmt_num(r['train_seconds'])}~s for its {r['epochs']:.0f} epochs")
            if len(bpr):
                ratio = r["seconds_per_epoch"] / bpr["seconds_per_epoch"].iloc[0]
                s += f", {ratio:.1f}$\\times$ BPR's {fmt_num(bpr['seconds_per_epoch'].iloc[0], 3)}~s per epoch"
            text.append(s + ".")
        slow = part.sort_values("seconds_per_epoch", ascending=False).iloc[0]
        text.append(f"The slowest per epoch on {backbone_name(bb)} is {f.L(slow['method'])} "
                    f"({fmt_num(slow['seconds_per_epoch'], 3)}~s).")
    devices = sorted(set(f.eff["device"]))
    text.append(f"All times are wall-clock on {_and(_esc(d) for d in devices)}; the epochs are those each run trained "
                "(chosen on validation), never an epoch picked on test.")
    return " ".join(text) + "\n"


def rising_runs(f: Facts) -> list[str]:
    """Methods whose primary metric still rose by more than RISING over their last evaluation step."""
    out = {}
    for r in f.main_runs:
        h = [x for x in r["history"] if x["epoch"] > 0]
        if len(h) < 2 or PRIMARY not in h[-1]["metrics"] or not h[-2]["metrics"].get(PRIMARY):
            continue
        gain = h[-1]["metrics"][PRIMARY] / h[-2]["metrics"][PRIMARY] - 1
        if gain > RISING:
            out.setdefault((r["run"]["method"], r["run"]["backbone"]), []).append((gain, r["final"]["epoch"]))
    return [f"{f.L(m)} ({backbone_name(bb, short=True)}, {max(e for _, e in v)} epochs, "
            f"{fmt_pct(np.mean([g for g, _ in v]), tex=True)})" for (m, bb), v in out.items()]


def _study_note(run_paths: list[Path]) -> str:
    """The NOTE.md of the study folder the runs came from (<folder>/runs/...), if any, as LaTeX."""
    import re
    for p in run_paths:
        parts = p.resolve().parts
        if "runs" in parts:
            folder = Path(*parts[:len(parts) - parts[::-1].index("runs") - 1])
            note = folder / "NOTE.md"
            if note.is_file():
                text = _esc(note.read_text().strip())
                text = re.sub(r"`([^`]*)`", lambda m: r"\texttt{" + m.group(1) + "}", text)
                return re.sub(r"\*\*([^*]*)\*\*", r"\\textbf{\1}", text)
    return ""


def _rank_vs_accuracy(f: Facts) -> str:
    """Where a near-full rank comes with low accuracy: balance is then not sufficient for accuracy."""
    out = []
    for (ds, bb), part in _per_method(f).groupby(["dataset", "backbone"], sort=False):
        if len(part) < 4:
            continue
        best = part.loc[part["acc"].idxmax()]
        dim = part["dim"].max()
        bpr = part[part["method"] == "BPR"]
        high = part[(part["erank"] >= 0.9 * dim)]
        if bpr.empty:
            continue
        weak = high[high["acc"] < bpr["acc"].iloc[0]]
        if weak.empty:
            continue
        rho, p = stats.spearmanr(part["erank"], part["acc"])
        out.append(f"On {_esc(dataset_name(ds))}/{backbone_name(bb, short=True)} the most accurate method, "
                   f"{f.L(best['method'])}, ends at effective rank {best['erank']:.1f} ({100 * best['erank'] / dim:.0f}\\% "
                   f"of $d$), while {_and(f'{f.L(r.method)} ({r.erank:.1f}, {metric_name(PRIMARY)} {r.acc:.3f})' for r in weak.itertuples())} "
                   f"reach{'es' if len(weak) == 1 else ''} at least 90\\% of $d$ and stay{'s' if len(weak) == 1 else ''} below BPR's "
                   f"{bpr['acc'].iloc[0]:.3f}; across the {len(part)} methods, Spearman $\\rho = {rho:.2f}$ ({_p_text(p)}).")
    if not out:
        return ""
    return ("\\paragraph{Rank is not accuracy.} " + " ".join(out) + " A balanced spectrum is therefore not sufficient "
            "for accuracy in these runs; how the rank is reached matters.")


def _discussion(f: Facts) -> str:
    lines = []
    c = f.claims.set_index("claim")
    held = [k for k in c.index if c.loc[k, "verdict"] == "supported"]
    partly = [k for k in c.index if c.loc[k, "verdict"].startswith(("partly", "mixed"))]
    failed = [k for k in c.index if c.loc[k, "verdict"] == "not supported"]
    open_ = [k for k in c.index if c.loc[k, "verdict"] in ("not measured", "inconclusive")]
    s = []
    if held:
        s.append(f"The records support {_and(held)}")
    if partly:
        s.append(f"support {_and(partly)} only in part")
    if failed:
        s.append(f"contradict {_and(failed)}")
    if open_:
        s.append(f"leave {_and(open_)} open ({_and(c.loc[k, 'verdict'] for k in open_)})")
    lines.append(("; ".join(s) + ". Each paragraph below gives the measurement behind a verdict that differs "
                  "from the paper's.") if s else "")
    for k in c.index:
        if k in failed or k in partly or k in open_:
            lines.append(f"\\paragraph{{{k} ({_esc(c.loc[k, 'verdict'])}).}} {_esc(c.loc[k, 'statement'])} "
                         f"Criterion: {_esc(c.loc[k, 'criterion'])}. Measured: {_esc(c.loc[k, 'measurement'])}.")
    lines.append(_rank_vs_accuracy(f))
    cav = []
    if int(f.table["seeds"].min()) < CI_MIN_SEEDS:
        cav.append(f"\\paragraph{{Seeds.}} With {seeds_phrase(f.table)} per configuration the tables give mean $\\pm$ standard deviation "
                   f"and no confidence intervals (a $t$-interval from fewer than {CI_MIN_SEEDS} seeds is too wide to "
                   "be informative); the significance statements rest on paired per-user tests over the test users, "
                   "which measure the sampling of users, not seed-to-seed variation.")
    rising = rising_runs(f)
    if rising:
        cav.append(f"\\paragraph{{Convergence.}} {metric_name(PRIMARY)} was still rising by more than {100 * RISING:.0f}\\% over the last "
                   f"evaluation step of {_and(rising)}: these rows understate what longer training would give.")
    if f.trials:
        splits = sorted({r["run"].get("eval_split", "test") for r in f.trials})
        if "test" in splits:
            cav.append("\\paragraph{Sensitivity split.} The sensitivity grid is evaluated on the test split; it describes the method and is not "
                       "used to choose any setting.")
    note = _study_note(f.run_paths)
    if note:
        cav.append(f"\\paragraph{{The study's note.}} {note}")
    if cav:
        lines.append("\\subsection*{Caveats}\n" + "\n\n".join(cav))
    return "\n\n".join(x for x in lines if x) + "\n"


def _abstract(f: Facts) -> str:
    c = f.claims
    datasets = _and(_esc(dataset_name(d)) for d in dict.fromkeys(r["run"]["dataset"] for r in f.main_runs))
    s = (f"This build measured {len({r['run']['method'] for r in f.main_runs})} methods on {datasets} "
         f"({len(f.main_runs)} test runs, {seeds_phrase(f.table)} each). ")
    verdicts = "; ".join(f"{r.claim} {_esc(r.verdict)}" for r in c.itertuples())
    s += f"Against the abstract's six claims (Table~\\ref{{tab:claims}}): {verdicts}."
    if f.sig is not None and not f.sig.empty:
        rows = f.sig[f.sig["metric"] == PRIMARY]
        for r in rows.itertuples():
            p = getattr(r, "wilcoxon_p_holm", np.nan)
            s += (f" On {_esc(dataset_name(r.dataset))}/{backbone_name(r.backbone, short=True)}, {f.L(r.method)} is "
                  f"{fmt_pct(r.improvement, tex=True)} in {metric_name(PRIMARY)} against the best baseline, "
                  f"{f.L(r.baseline_method)} ({_p_text(p)}).")
    return s + "\n"


def _provenance(f: Facts) -> str:
    env = [r.get("environment", {}) for r in f.runs]
    commits = sorted({(e.get("git", {}).get("commit") or "?")[:10] for e in env})
    dirty = any(e.get("git", {}).get("dirty") for e in env)
    dates = sorted(e.get("finished", "?")[:10] for e in env)
    packages = env[0].get("packages", {}) if env else {}
    folders = sorted({p.parent.parent.parent.parent.as_posix() for p in f.run_paths if len(p.parts) >= 5})
    where = (f" under \\texttt{{{_esc(folders[0])}/}}" if len(folders) == 1 else "")
    versions = ", ".join(f"{k} {_esc(v)}" for k, v in packages.items() if k in ("python", "torch", "recbole", "numpy",
                                                                                  "scipy", "pandas"))
    when = f"on {dates[0]}" if dates[0] == dates[-1] else f"between {dates[0]} and {dates[-1]}"
    return (f"The {len(f.runs)} run records{where} were written {when} by commit"
            f"{'s' if len(commits) > 1 else ''} \\texttt{{{_esc(', '.join(commits))}}}"
            f"{' (some from a modified working tree)' if dirty else ''} on {_and(_esc(d) for d in sorted({_device(r) for r in f.runs}))}"
            f"{'; ' + versions if versions else ''}.\n")


def write_prose(f: Facts, out: Path, figures: dict[str, str], tables: list[str]) -> list[Path]:
    """<out>/paper/{abstract,results,discussion,provenance}.tex. ``figures``: name -> caption of the
    figures written; ``tables``: names of the tables written."""
    out = Path(out)
    fig = lambda name: f"\\generatedfigure{{{name}}}{{{figures[name]}}}\n" if name in figures else ""  # noqa: E731
    tab = lambda name: f"\\generatedtable{{{name}}}\n" if name in tables else ""  # noqa: E731
    body = ["% Generated by `specbench report` from the run records; do not edit.\n",
            "\\subsection{Methods and data}\n", _methods_paragraph(f),
            "\\IfFileExists{\\results/tables/datasets.tex}{Table~\\ref{tab:datasets} gives the dataset statistics.}{}\n",
            "\\IfFileExists{\\results/tables/datasets.tex}{\\generatedtable{datasets}}{}\n",
            "\\subsection{The claims of the abstract}\n", _claims_paragraph(f), tab("claims"),
            "\\subsection{Accuracy}\n",
            "Table~\\ref{tab:main} gives the test accuracy at the last epoch"
            + (", Table~\\ref{tab:significance} the comparison of ours with the best baseline" if "significance" in tables else "")
            + f". The paragraphs below use {metric_name(PRIMARY)}; the other metrics are in the tables.\n\n",
            *[p + "\n" for p in _accuracy_paragraphs(f)], tab("main"), tab("significance"),
            "\\subsection{Embedding spectrum}\n", _spectrum_paragraph(f), fig("erank"), fig("spectrum")]
    sens = _sensitivity_paragraph(f)
    if sens and "sensitivity" in figures:
        body += ["\\subsection{\\texorpdfstring{Sensitivity to $\\alpha$ and $\\tau$}{Sensitivity to alpha and tau}}\n",
                 "Figure~\\ref{fig:sensitivity} shows the grid. " + sens, fig("sensitivity")]
    if "ablation" in tables:
        body += ["\\subsection{Ablation}\n", _ablation_paragraph(f), tab("ablation")]
    if "tuning" in tables:
        body += ["\\subsection{Model selection}\n",
                 "Table~\\ref{tab:tuning} lists each search: the trials that finished, were pruned or diverged, the "
                 "chosen settings with their validation score and epoch, and any chosen value at the edge of its range.\n",
                 tab("tuning")]
    body += ["\\subsection{Cost}\n",
             "Table~\\ref{tab:efficiency} lists every method; Figure~\\ref{fig:accuracy_time} sets accuracy against "
             "time. " + _cost_paragraph(f),
             tab("efficiency"), fig("accuracy_time")]
    files = {"abstract": _abstract(f), "results": "\n".join(body), "discussion": _discussion(f),
             "provenance": _provenance(f)}
    paths = []
    for name, text in files.items():
        path = out / "paper" / f"{name}.tex"
        atomic_write_text(path, text)
        paths.append(path)
    return paths


__all__ = ["Facts", "write_prose", "rising_runs", "MAIN_METRICS"]
