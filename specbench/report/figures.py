"""Figures in one style, each written as PDF and PNG.

Every method keeps one colour and marker in every figure (style.Styles); ours is red, thicker and
drawn on top. Legends sit to the right of the panels, outside them. Accuracy is the test metric at
the last epoch of each run (runs train for the epochs chosen on validation): no figure selects an
epoch on test. Titles name the panel only; what a figure shows is said in its caption (report/*.rst,
the paper).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from specbench.atomic_io import atomic_write_bytes  # noqa: E402
from specbench.report.records import embedding_dim, history_frame  # noqa: E402
from specbench.report.style import (BACKBONE_NAMES, Styles, backbone_name, dataset_name,  # noqa: E402
                                    display_labels, metric_name)

STYLE = {"style": "whitegrid", "context": "paper", "font_scale": 1.2}
SPECTRUM_FLOOR = 1e-3  # σ_k/σ_1 below this leaves the spectrum plot (marked ▼ at the axis)
FILL = {"mf": True, "lightgcn": False, "filter": True}  # marker filled / open per backbone (accuracy_time)


def save(fig, stem: Path) -> list[Path]:
    paths = []
    for suffix, kwargs in ((".png", {"dpi": 150}), (".pdf", {})):
        buf = io.BytesIO()
        fig.savefig(buf, format=suffix[1:], bbox_inches="tight", **kwargs)
        path = Path(stem).with_suffix(suffix)
        atomic_write_bytes(path, buf.getvalue())
        paths.append(path)
    plt.close(fig)
    return paths


def _backbone_order(backbones) -> list[str]:
    order = {b: i for i, b in enumerate(BACKBONE_NAMES)}
    return sorted(dict.fromkeys(backbones), key=lambda b: order.get(b, len(order)))


def _grid(keys: list[tuple[str, str]], width=4.6, height=3.4):
    """Panels for (dataset, backbone) keys: one row per backbone, one column per dataset (one row
    of backbones when there is a single dataset). Returns fig and {key: ax}."""
    datasets = list(dict.fromkeys(d for d, _ in keys))
    backbones = _backbone_order(b for _, b in keys)
    if len(datasets) == 1:
        pos = {(datasets[0], b): (0, j) for j, b in enumerate(backbones)}
        shape = (1, len(backbones))
    else:
        pos = {(d, b): (i, j) for i, b in enumerate(backbones) for j, d in enumerate(datasets)}
        shape = (len(backbones), len(datasets))
    if shape[1] >= 3:  # the paper grid: smaller panels, so that the text stays legible at \linewidth
        width, height = 3.7, 2.9
    fig, axes = plt.subplots(*shape, figsize=(width * shape[1], height * shape[0]), squeeze=False)
    used = {pos[k] for k in keys}
    for i in range(shape[0]):
        for j in range(shape[1]):
            if (i, j) not in used:
                axes[i, j].set_visible(False)
    return fig, {k: axes[pos[k]] for k in keys}


def _legend_right(fig, methods, styles: Styles, labels: dict, title=None, extra=()):
    """One legend for the whole figure, right of the panels (one column up to 16 entries), or below a
    grid of three or more columns."""
    handles = [Line2D([], [], label=labels[m] + (" (ours)" if styles.is_ours(m) else ""), **styles.line(m))
               for m in methods]
    handles += list(extra)
    columns = max(ax.get_subplotspec().get_geometry()[1] for ax in fig.axes)
    if columns >= 3:  # a wide grid: the legend goes below it, in rows, and leaves the panels their width
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False,
                   ncol=min(5, len(handles)), title=title.replace("\n", " ") if title else None, fontsize="medium",
                   title_fontsize="medium", handlelength=2.6)
        return
    ncol = 1 if len(handles) <= 16 else 2
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, ncol=ncol,
               title=title, fontsize="medium", title_fontsize="medium", handlelength=2.6, borderaxespad=0.2)


def _order_by_final_erank(runs: list[dict]) -> list[str]:
    """Method keys from the most collapsed (lowest mean final effective rank) to the most balanced."""
    df = pd.DataFrame([{"method": r["run"]["method"], "erank": r["final"]["spectrum"].get("erank", np.nan)}
                       for r in runs])
    return list(df.groupby("method", sort=False)["erank"].mean().sort_values(na_position="last").index)


def _styles(runs, ours) -> Styles:
    return Styles([r["run"]["method"] for r in runs], ours)


def erank_figure(runs: list[dict], stem: Path, ours=()) -> list[Path]:
    """Effective rank of [E_U; E_I] at every evaluation epoch, per (dataset, backbone), one line per
    method (mean over seeds, band: ± std). Each run trains for its own number of epochs (chosen on
    validation), so a line ends at that run's last epoch."""
    sns.set_theme(**STYLE)
    styles, labels = _styles(runs, ours), display_labels(runs)
    df = history_frame(runs)
    df = df[df["erank"].notna()]
    order = [m for m in _order_by_final_erank(runs) if m in set(df["method"])]
    keys = list(dict.fromkeys(zip(df["dataset"], df["backbone"])))
    fig, axes = _grid(keys)
    for (ds, bb), ax in axes.items():
        part = df[(df["dataset"] == ds) & (df["backbone"] == bb)]
        for m in order:
            g = part[part["method"] == m].groupby("epoch")["erank"]
            if not len(g):
                continue
            mean, std = g.mean(), g.std(ddof=1)
            ax.plot(mean.index, mean.values, **styles.line(m))
            if std.notna().any():
                ax.fill_between(mean.index, (mean - std).values, (mean + std).values, color=styles.colour[m],
                                alpha=0.15, lw=0, zorder=1)
        dim = max(embedding_dim(r) or 0 for r in runs if (r["run"]["dataset"], r["run"]["backbone"]) == (ds, bb))
        ax.axhline(dim, color="grey", ls=":", lw=1, zorder=0)
        ax.text(0.99, dim, f"d = {dim}", transform=ax.get_yaxis_transform(), ha="right", va="bottom",
                fontsize="small", color="grey")
        epochs = sorted(set(part["epoch"]))
        if len(epochs) <= 11:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        ax.set(title=f"{dataset_name(ds)} · {backbone_name(bb)}", xlabel="epoch", ylabel="effective rank",
               ylim=(0, dim * 1.08))
    _legend_right(fig, order, styles, labels, title="lowest to highest\nfinal effective rank")
    fig.tight_layout()
    return save(fig, stem)


def spectrum_figure(runs: list[dict], stem: Path, ours=(), floor: float = SPECTRUM_FLOOR) -> list[Path]:
    """Normalised singular values σ_k/σ_1 of [E_U; E_I] at the last epoch (mean over seeds), log scale
    down to ``floor``; a curve that falls below it is cut there and marked ▼ at the axis."""
    sns.set_theme(**STYLE)
    styles, labels = _styles(runs, ours), display_labels(runs)
    rows = []
    for r in runs:
        if not r["final"]["spectrum"]:
            continue  # a model that scores without embeddings (training-free filters)
        s = np.asarray(r["final"]["spectrum"]["singular_values"], dtype=float)
        for k, v in enumerate(s / s[0] if s[0] > 0 else s, start=1):
            rows.append({"dataset": r["run"]["dataset"], "backbone": r["run"]["backbone"],
                         "method": r["run"]["method"], "k": k, "sigma": v})
    df = pd.DataFrame(rows)
    order = [m for m in _order_by_final_erank(runs) if m in set(df["method"])]
    keys = list(dict.fromkeys(zip(df["dataset"], df["backbone"])))
    fig, axes = _grid(keys)
    for (ds, bb), ax in axes.items():
        part = df[(df["dataset"] == ds) & (df["backbone"] == bb)]
        for i, m in enumerate(order):
            curve = part[part["method"] == m].groupby("k")["sigma"].mean()
            if curve.empty:
                continue
            shown = curve[curve >= floor]
            step = max(1, len(curve) // 8)  # ~8 markers a curve, staggered so that they do not pile up
            ax.plot(shown.index, shown.values, markevery=(1 + (3 * i) % step, step), **styles.line(m))
            below = curve[curve < floor]
            if len(below):
                kw = styles.line(m)
                ax.plot([below.index[0]], [floor], marker="v", color=kw["color"], ms=kw["ms"] + 2, ls="none",
                        clip_on=False, zorder=kw["zorder"] + 1)
        ax.set_yscale("log")
        ax.set_ylim(floor, 1.3)
        ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
        ax.set(title=f"{dataset_name(ds)} · {backbone_name(bb)}", xlabel="singular value index k",
               ylabel=r"$\sigma_k / \sigma_1$ (log scale)")
    extra = [Line2D([], [], color="grey", marker="v", ls="none", ms=7,
                    label=f"falls below {floor:g}\n(cut at the axis)")]
    _legend_right(fig, order, styles, labels, title="lowest to highest\nfinal effective rank", extra=extra)
    fig.tight_layout()
    return save(fig, stem)


def accuracy_time_figure(runs: list[dict], stem: Path, metric: str = "ndcg@20", ours=()) -> list[Path]:
    """Test accuracy at the last epoch against build + training time, one point per (method, backbone):
    mean over seeds, vertical bar ± std. Filled markers: MF (and the training-free filters, whose time
    is their fit); open markers: LightGCN."""
    sns.set_theme(**STYLE)
    styles, labels = _styles(runs, ours), display_labels(runs)
    df = pd.DataFrame([{"dataset": r["run"]["dataset"], "backbone": r["run"]["backbone"], "method": r["run"]["method"],
                        "seconds": r["timing"]["train_seconds"] + r["timing"].get("setup_seconds", 0.0),
                        "value": r["final"]["metrics"][metric]} for r in runs])
    points = df.groupby(["dataset", "backbone", "method"], sort=False).agg(
        seconds=("seconds", "mean"), value=("value", "mean"), std=("value", "std")).reset_index()
    datasets = list(dict.fromkeys(points["dataset"]))
    wide = len(datasets) >= 3  # the paper grid: smaller panels, legend below
    fig, axes = plt.subplots(1, len(datasets), figsize=((3.9 if wide else 5.6) * len(datasets), 3.4 if wide else 4.4),
                             squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        part = points[points["dataset"] == ds]
        for p in part.itertuples():
            filled = FILL.get(p.backbone, True)
            if not pd.isna(p.std):
                ax.errorbar(p.seconds, p.value, yerr=p.std, fmt="none", ecolor=styles.colour[p.method], lw=1,
                            zorder=2)
            ax.scatter([p.seconds], [p.value], **styles.point(p.method, filled))
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))  # 1, 2, 5, 10, 20, ... seconds
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        ax.set(title=dataset_name(ds), xlabel="build + training time (s, log scale)",
               ylabel=f"{metric_name(metric)} (test, last epoch)")
    methods = list(dict.fromkeys(points.sort_values("value", ascending=False)["method"]))
    present = _backbone_order(points["backbone"])
    key = []
    for fill_value, names in ((True, [b for b in present if FILL.get(b, True)]),
                              (False, [b for b in present if not FILL.get(b, True)])):
        if names:
            key.append(Line2D([], [], marker="o", ls="none", ms=7, color="grey",
                              markerfacecolor="grey" if fill_value else "white",
                              label=("filled: " if fill_value else "open: ") + ", ".join(backbone_name(b, True) for b in names)))
    handles = [Line2D([], [], ls="none", label=labels[m] + (" (ours)" if styles.is_ours(m) else ""),
                      marker=styles.marker[m], color=styles.colour[m], ms=11 if styles.is_ours(m) else 7)
               for m in methods]
    where = (dict(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=5) if wide else
             dict(loc="center left", bbox_to_anchor=(1.0, 0.5), ncol=1 if len(handles) + len(key) <= 18 else 2))
    fig.legend(handles=handles + key, frameon=False, fontsize="medium", title="highest to lowest accuracy",
               title_fontsize="medium", **where)
    fig.tight_layout()
    return save(fig, stem)


def sensitivity_points(trials: list[dict], x: str = "alpha", y: str = "tau", metric: str = "ndcg@20") -> pd.DataFrame:
    """One row per sweep run (or tuning trial) that sets both ``x`` and ``y``: the metric and the
    effective rank at its last epoch (no epoch selection), the epoch, the split."""
    rows = []
    for r in trials:
        s = r.get("settings", {})
        if x not in s or y not in s or s[x] is None or s[y] is None:
            continue
        last = r["final"]
        rows.append({"dataset": r["run"]["dataset"], "backbone": r["run"]["backbone"], "method": r["run"]["method"],
                     "label": r["run"].get("label", r["run"]["method"]), "seed": r["run"].get("seed"),
                     "split": r["run"].get("eval_split", "test"), "epoch": last["epoch"], x: s[x], y: s[y],
                     metric: last["metrics"].get(metric, np.nan), "erank": last["spectrum"].get("erank", np.nan),
                     "dim": embedding_dim(r)})
    return pd.DataFrame(rows)


def sensitivity_figure(trials: list[dict], stem: Path, x: str = "alpha", y: str = "tau",
                       metric: str = "ndcg@20") -> list[Path]:
    """Last-epoch accuracy and effective rank over a two-setting grid (mean over seeds and any other
    setting), one row of two heat maps per (dataset, backbone, method)."""
    sns.set_theme(**STYLE)
    df = sensitivity_points(trials, x, y, metric)
    greek = {"alpha": "α", "tau": "τ", "beta": "β", "gamma": "γ", "tau0": "τ₀", "tau1": "τ₁"}
    groups = list(dict.fromkeys(zip(df["dataset"], df["backbone"], df["label"]))) if len(df) else []
    fig, axes = plt.subplots(max(1, len(groups)), 2, figsize=(10, 3.9 * max(1, len(groups))), squeeze=False)
    for row, (ds, bb, label) in zip(axes, groups):
        part = df[(df["dataset"] == ds) & (df["backbone"] == bb) & (df["label"] == label)]
        dim = part["dim"].dropna().max()
        split = "/".join(sorted(set(part["split"])))
        epochs = sorted(set(part["epoch"]))
        at = f"epoch {epochs[0]}" if len(epochs) == 1 else "last epoch"
        group = f"{dataset_name(ds)} · {backbone_name(bb)} · {label}"
        for ax, value, cmap, fmt, title in (
                (row[0], metric, "viridis", ".3f", f"{metric_name(metric)} ({split}, {at})"),
                (row[1], "erank", "magma", ".1f", f"effective rank (of d = {dim:.0f})" if pd.notna(dim) else "effective rank")):
            grid = part.pivot_table(index=y, columns=x, values=value, aggfunc="mean").sort_index(ascending=False)
            sns.heatmap(grid, annot=True, fmt=fmt, cmap=cmap, ax=ax, linewidths=0.5, linecolor="white",
                        annot_kws={"fontsize": "small"})
            ax.set(title=f"{group}\n{title}", xlabel=greek.get(x, x), ylabel=greek.get(y, y))
            ax.set_xticklabels([f"{float(t.get_text()):g}" for t in ax.get_xticklabels()])
            ax.set_yticklabels([f"{float(t.get_text()):g}" for t in ax.get_yticklabels()], rotation=0)
    if not groups:
        axes[0, 0].text(0.5, 0.5, f"no runs vary {x} and {y}", ha="center", va="center")
        axes[0, 0].set_axis_off()
        axes[0, 1].set_axis_off()
    fig.tight_layout()
    return save(fig, stem)
