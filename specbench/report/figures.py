"""Figures in one seaborn style, each written as PDF and PNG."""

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

from specbench.atomic_io import atomic_write_bytes  # noqa: E402
from specbench.report.records import history_frame  # noqa: E402
from specbench.report.tables import BACKBONE_NAMES  # noqa: E402

STYLE = {"style": "whitegrid", "context": "paper", "font_scale": 1.2}


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


def _panels(keys, width=5.0, height=3.8):
    cols = min(len(keys), 3)
    rows = -(-len(keys) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def _model_label(backbone, label):
    return f"{BACKBONE_NAMES.get(backbone, backbone)} · {label}"


def _by_final_erank(runs: list[dict]) -> list[str]:
    """Method labels ordered from the most collapsed (lowest mean final effective rank) to the most
    balanced, so every legend reads as the collapse story; methods without embeddings last."""
    df = pd.DataFrame([{"label": r["run"].get("label", r["run"]["method"]),
                        "erank": r["final"]["spectrum"].get("erank", np.nan)} for r in runs])
    return list(df.groupby("label", sort=False)["erank"].mean().sort_values(na_position="last").index)


def _palette(labels: list[str]) -> dict:
    """One colour per method label, the same in every panel and figure of a report."""
    colours = sns.color_palette("tab10" if len(labels) <= 10 else "tab20", len(labels))
    return dict(zip(labels, colours))


def _legend_below(fig, axes, order=None):
    """One legend for all panels, below them (in ``order`` when given), clear of the x-axis labels."""
    handles = {}
    for ax in axes:
        if ax.get_legend():
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
            ax.get_legend().remove()
    labels = [x for x in order if x in handles] if order else list(handles)
    ncol = min(4, len(labels)) or 1
    rows = -(-len(labels) // ncol)
    fig.legend([handles[x] for x in labels], labels, loc="upper center", ncol=ncol,
               bbox_to_anchor=(0.5, 0.0), frameon=False, title=None)
    return rows


def erank_figure(runs: list[dict], stem: Path) -> list[Path]:
    """Effective rank of [E_U; E_I] against epoch, per (dataset, backbone), one line per method (band: seeds)."""
    sns.set_theme(**STYLE)
    df = history_frame(runs)
    df = df[df["erank"].notna()]
    order = [label for label in _by_final_erank(runs) if label in set(df["label"])]
    palette = _palette(order)
    keys = list(dict.fromkeys(zip(df["dataset"], df["backbone"])))
    fig, axes = _panels(keys)
    for ax, (ds, bb) in zip(axes, keys):
        part = df[(df["dataset"] == ds) & (df["backbone"] == bb)]
        sns.lineplot(data=part, x="epoch", y="erank", hue="label", hue_order=[x for x in order if x in set(part["label"])],
                     palette=palette, errorbar="sd", marker="o", ax=ax)
        dim = max(len(r["final"]["spectrum"].get("singular_values", [])) for r in runs if r["run"]["dataset"] == ds)
        ax.axhline(dim, color="grey", ls=":", lw=1)
        ax.set(title=f"{ds} · {BACKBONE_NAMES.get(bb, bb)}", xlabel="epoch", ylabel=f"effective rank (max {dim})",
               ylim=(0, dim * 1.05))
    _legend_below(fig, axes, order)
    fig.suptitle("Effective rank of the embeddings during training (legend: lowest to highest final rank)", y=1.01)
    fig.tight_layout()
    return save(fig, stem)


def spectrum_figure(runs: list[dict], stem: Path) -> list[Path]:
    """Normalised singular values σ_k/σ_1 of [E_U; E_I] at the end of training (mean over seeds)."""
    sns.set_theme(**STYLE)
    rows = []
    for r in runs:
        if not r["final"]["spectrum"]:
            continue  # a model that scores without embeddings (training-free filters)
        s = np.asarray(r["final"]["spectrum"]["singular_values"], dtype=float)
        for k, v in enumerate(s / s[0] if s[0] > 0 else s, start=1):
            rows.append({"dataset": r["run"]["dataset"], "backbone": r["run"]["backbone"],
                         "label": r["run"].get("label", r["run"]["method"]), "k": k, "sigma": v})
    df = pd.DataFrame(rows)
    order = [label for label in _by_final_erank(runs) if label in set(df["label"])]
    palette = _palette(order)
    keys = list(dict.fromkeys(zip(df["dataset"], df["backbone"])))
    fig, axes = _panels(keys)
    for ax, (ds, bb) in zip(axes, keys):
        part = df[(df["dataset"] == ds) & (df["backbone"] == bb)]
        sns.lineplot(data=part, x="k", y="sigma", hue="label", hue_order=[x for x in order if x in set(part["label"])],
                     palette=palette, errorbar=None, ax=ax)
        ax.set_yscale("log")
        ax.set(title=f"{ds} · {BACKBONE_NAMES.get(bb, bb)}", xlabel="index k", ylabel="σ_k / σ_1")
    _legend_below(fig, axes, order)
    fig.suptitle("Singular-value spectrum at the end of training (flatter = more balanced)", y=1.01)
    fig.tight_layout()
    return save(fig, stem)


def accuracy_time_figure(runs: list[dict], stem: Path, metric: str = "ndcg@20") -> list[Path]:
    """Final test accuracy against the time to build and train the model, one point per run (a
    training-free filter's time is its fit)."""
    sns.set_theme(**STYLE)
    df = pd.DataFrame([{"dataset": r["run"]["dataset"], "model": _model_label(r["run"]["backbone"],
                        r["run"].get("label", r["run"]["method"])), "seconds": r["timing"]["train_seconds"] + r["timing"].get("setup_seconds", 0.0),
                        metric: r["final"]["metrics"][metric]} for r in runs])
    datasets = list(dict.fromkeys(df["dataset"]))
    fig, axes = _panels(datasets)
    for ax, ds in zip(axes, datasets):
        sns.scatterplot(data=df[df["dataset"] == ds], x="seconds", y=metric, hue="model", style="model", s=70, ax=ax)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))  # 1, 2, 5, 10, 20, ... seconds
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        ax.set(title=ds, xlabel="build + training time (s, log)", ylabel=metric)
    _legend_below(fig, axes)
    fig.suptitle("Accuracy against build + training time", y=1.01)
    fig.tight_layout()
    return save(fig, stem)


def sensitivity_figure(trials: list[dict], stem: Path, x: str = "alpha", y: str = "tau",
                       metric: str = "ndcg@20") -> list[Path]:
    """Best-epoch accuracy and effective rank over a two-setting grid (mean over the other settings)."""
    sns.set_theme(**STYLE)
    rows = []
    for r in trials:
        s = r.get("settings", {})
        if x not in s or y not in s:
            continue
        trained = [h for h in r["history"] if h["epoch"] > 0] or r["history"]  # training-free: epoch 0
        best = max(trained, key=lambda h: h["metrics"][metric])
        rows.append({"group": f"{r['run']['dataset']} · {_model_label(r['run']['backbone'], r['run'].get('label', r['run']['method']))}",
                     x: s[x], y: s[y], metric: best["metrics"][metric], "erank": best["spectrum"].get("erank", float("nan"))})
    df = pd.DataFrame(rows)
    groups = list(dict.fromkeys(df["group"])) if len(df) else []
    fig, axes = plt.subplots(max(1, len(groups)), 2, figsize=(10, 3.8 * max(1, len(groups))), squeeze=False)
    for row, group in zip(axes, groups):
        part = df[df["group"] == group]
        for ax, value, cmap in ((row[0], metric, "viridis"), (row[1], "erank", "magma")):
            grid = part.pivot_table(index=y, columns=x, values=value, aggfunc="mean").sort_index(ascending=False)
            sns.heatmap(grid, annot=True, fmt=".3g" if value == metric else ".1f", cmap=cmap, ax=ax,
                        cbar_kws={"label": value})
            ax.set(title=f"{group}: {value}", xlabel=x, ylabel=y)
    if not groups:
        axes[0, 0].text(0.5, 0.5, f"no runs vary {x} and {y}", ha="center", va="center")
    split = {r["run"].get("eval_split", "test") for r in trials} or {"test"}
    fig.suptitle(f"Sensitivity to {x} and {y} ({'/'.join(sorted(split))} split, best epoch)", y=1.01)
    fig.tight_layout()
    return save(fig, stem)
