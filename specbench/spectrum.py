"""Spectrum diagnostics of user/item embeddings.

Effective rank follows the DirectSpec reference code (directspec_mf.py; Roy & Vetterli 2007):
p_k = σ_k / Σ_j σ_j over the singular values of the stacked [E_U; E_I], erank = exp(−Σ p_k log p_k),
which lies in [1, d].
"""

from __future__ import annotations

import torch


def effective_rank(singular_values: torch.Tensor) -> float:
    s = singular_values.double().clamp_min(0)
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def model_embeddings(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The user and item representations a model scores with (padding rows dropped).

    A model may define ``scoring_embeddings()``; otherwise a no-argument ``forward()`` that
    returns (users, items) (LightGCN-style) or ``user_embedding``/``item_embedding`` tables (MF).
    """
    if hasattr(model, "scoring_embeddings"):
        users, items = model.scoring_embeddings()
    elif hasattr(model, "user_embedding") and hasattr(model, "item_embedding") and not _forward_takes_no_args(model):
        users, items = model.user_embedding.weight, model.item_embedding.weight
    else:
        users, items = model.forward()
    return users[1:], items[1:]  # RecBole's id 0 is padding


def _forward_takes_no_args(model) -> bool:
    import inspect
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return not params


@torch.no_grad()
def spectrum_record(model) -> dict:
    """Singular values and effective rank of the scoring embeddings, for the run JSON."""
    users, items = (t.detach().float() for t in model_embeddings(model))
    joint = torch.linalg.svdvals(torch.cat([users, items]))
    return {
        "singular_values": [round(float(x), 6) for x in joint.cpu()],
        "erank": effective_rank(joint),
        "erank_users": effective_rank(torch.linalg.svdvals(users)),
        "erank_items": effective_rank(torch.linalg.svdvals(items)),
    }
