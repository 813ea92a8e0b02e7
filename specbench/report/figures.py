"""Figures in one seaborn style, written as PDF and PNG."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
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


def erank_figure(runs: list[dict], stem: Path) -> list[Path]:
    """Effective rank of the embeddings against epoch, one line per (backbone, method), band over seeds."""
    sns.set_theme(**STYLE)
    df = history_frame(runs)
    df["model"] = [f"{BACKBONE_NAMES.get(b, b)} · {m}" for b, m in zip(df["backbone"], df["label"])]
    datasets = list(dict.fromkeys(df["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        sns.lineplot(data=df[df["dataset"] == ds], x="epoch", y="erank", hue="model", errorbar="sd",
                     marker="o", ax=ax)
        dim = max((len(r["final"]["spectrum"]["singular_values"]) for r in runs if r["run"]["dataset"] == ds))
        ax.axhline(dim, color="grey", ls=":", lw=1)
        ax.set(title=ds, xlabel="epoch", ylabel=f"effective rank (max {dim})", ylim=(0, dim * 1.05))
        ax.legend(title=None, fontsize=9)
    fig.suptitle("Effective rank of [E_U; E_I] during training", y=1.02)
    fig.tight_layout()
    return save(fig, stem)
