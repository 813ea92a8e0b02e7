"""Spectrum diagnostics of user/item embeddings, recorded at every evaluation.

- Effective rank as in the DirectSpec reference code (directspec_mf.py; Roy & Vetterli 2007):
  p_k = σ_k / Σ_j σ_j, erank = exp(−Σ p_k log p_k) ∈ [1, d].
- Stable rank ‖H‖_F² / ‖H‖_2² = Σσ_k² / σ_1² (Rudelson & Vershynin 2007).
- Information abundance ‖σ‖₁ / ‖σ‖_∞ (Guo et al., "On the embedding collapse when scaling up
  recommendation models", 2023).
- Alignment E‖ĥ_u − ĥ_i‖² over training pairs and uniformity log E exp(−2‖ĥ_a − ĥ_b‖²) over
  pairs of users (of items), on row-normalised embeddings (Wang & Isola, ICML 2020; as DirectAU).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

MAX_PAIRS = 20_000  # training pairs for alignment
MAX_ROWS = 2_048    # rows per side for uniformity (all pairs among them)


def effective_rank(singular_values: torch.Tensor) -> float:
    s = singular_values.double().clamp_min(0)
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def stable_rank(singular_values: torch.Tensor) -> float:
    s = singular_values.double()
    return float((s ** 2).sum() / s.max() ** 2)


def information_abundance(singular_values: torch.Tensor) -> float:
    s = singular_values.double().abs()
    return float(s.sum() / s.max())


def alignment(users: torch.Tensor, items: torch.Tensor) -> float:
    """Mean squared distance of matched, row-normalised pairs (lower = better aligned)."""
    return float((F.normalize(users, dim=1) - F.normalize(items, dim=1)).pow(2).sum(1).mean())


def uniformity(rows: torch.Tensor) -> float:
    """log mean exp(−2 ‖x − y‖²) over distinct pairs of row-normalised rows (lower = more uniform)."""
    x = F.normalize(rows.double(), dim=1)
    d2 = torch.pdist(x).pow(2)
    return float(torch.logsumexp(-2 * d2, 0) - torch.log(torch.tensor(float(len(d2)), dtype=torch.float64)))


def model_embeddings(model) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The user and item representations a model scores with (RecBole's padding row 0 dropped).

    A model may define ``scoring_embeddings()`` (returning None when it scores without embeddings,
    as the training-free graph filters do); otherwise a no-argument ``forward()`` that
    returns (users, items) (LightGCN-style) or ``user_embedding``/``item_embedding`` tables (MF).
    """
    if hasattr(model, "scoring_embeddings"):
        pair = model.scoring_embeddings()
        if pair is None:
            return None
        users, items = pair
    elif hasattr(model, "user_embedding") and hasattr(model, "item_embedding") and not _forward_takes_no_args(model):
        users, items = model.user_embedding.weight, model.item_embedding.weight
    else:
        pair = model.forward()
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            return None  # e.g. RecBole's Pop: no embeddings to diagnose
        users, items = pair
    return users[1:], items[1:]


def _forward_takes_no_args(model) -> bool:
    import inspect
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return not params


def _rounded(t: torch.Tensor) -> list[float]:
    return [float(f"{x:.6g}") for x in t.cpu().tolist()]


def _subset(n: int, k: int, device) -> torch.Tensor:
    """A fixed pseudo-random subset of range(n) (the same at every evaluation)."""
    if n <= k:
        return torch.arange(n, device=device)
    g = torch.Generator().manual_seed(0)
    return torch.randperm(n, generator=g)[:k].sort().values.to(device)


@torch.no_grad()
def spectrum_record(model, train_pairs: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Every diagnostic of the scoring embeddings, for the run JSON (``seconds`` is its own cost).

    ``train_pairs`` are (user, item) ids in RecBole's numbering (padding included) for alignment.
    A model that scores without embeddings gets an empty record.
    """
    t0 = time.perf_counter()
    embeddings = model_embeddings(model)
    if embeddings is None:
        return {}
    users, items = (t.detach().float() for t in embeddings)
    sv = {
        "joint": torch.linalg.svdvals(torch.cat([users, items])),
        "users": torch.linalg.svdvals(users), "items": torch.linalg.svdvals(items),
        "users_normalized": torch.linalg.svdvals(F.normalize(users, dim=1)),
        "items_normalized": torch.linalg.svdvals(F.normalize(items, dim=1)),
    }
    record = {"singular_values": _rounded(sv["joint"]), "erank": effective_rank(sv["joint"])}
    for side in ("users", "items", "users_normalized", "items_normalized"):
        record[f"singular_values_{side}"] = _rounded(sv[side])
        record[f"erank_{side}"] = effective_rank(sv[side])
    for side in ("users", "items"):
        record[f"stable_rank_{side}"] = stable_rank(sv[side])
        record[f"info_abundance_{side}"] = information_abundance(sv[side])
        rows = users if side == "users" else items
        record[f"uniformity_{side}"] = uniformity(rows[_subset(len(rows), MAX_ROWS, rows.device)])
    if train_pairs is not None:
        u, i = train_pairs
        pick = _subset(len(u), MAX_PAIRS, u.device)
        record["alignment"] = alignment(users[u[pick] - 1], items[i[pick] - 1])
    record["seconds"] = time.perf_counter() - t0
    return record
