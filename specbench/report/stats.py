"""Statistics for the comparison tables: seed-level confidence intervals, paired per-user tests, Holm."""

from __future__ import annotations

import numpy as np
from scipy import stats


def seed_ci(values, level: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean over seeds ((nan, nan) with one seed)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def paired_tests(a, b) -> dict:
    """Two-sided paired t-test and Wilcoxon signed-rank test of per-user values a vs b."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired tests need aligned users, got {a.shape} and {b.shape}")
    diff = a - b
    if not np.any(diff):
        return {"t_p": 1.0, "wilcoxon_p": 1.0, "users": len(a)}
    return {"t_p": float(stats.ttest_rel(a, b).pvalue), "wilcoxon_p": float(stats.wilcoxon(a, b).pvalue),
            "users": len(a)}


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, (m - rank) * p[idx])
        adjusted[idx] = min(1.0, running)
    return adjusted
