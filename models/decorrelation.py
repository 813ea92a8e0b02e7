"""AFDGCF: adaptive feature de-correlation on LightGCN (Wu, Wang, Shen, Qin, Chen, Xiong: "AFDGCF:
Adaptive Feature De-correlation Graph Collaborative Filtering for Recommendations", SIGIR 2024,
arXiv 2403.17416; official code U-rara/AFDGCF, models/afd_lightgcn.py).

Per propagation layer l = 1..K and per side (users, items), the over-correlation of the layer's
representation matrix H⁽ˡ⁾ (all rows) is
    C(H) = ‖ triu₁( corr(H) ) ‖_F,   corr(H)_ab = Pearson correlation of feature columns a and b,
the norm of the strictly upper-triangular part. The layers are weighted adaptively, the weights
inversely proportional to their correlation and normalised to sum to one, with no gradient
through the weights (the official code builds them with torch.tensor):
    w_l = (1 / C_l) / Σ_m (1 / C_m),   L_AFD = Σ_l w_l C_l      (for users and for items)
    L = L_BPR + reg · ½ (‖e_u‖² + ‖e_i‖² + ‖e_j‖²) / B + α (L_AFD(users) + L_AFD(items))
with BPR on LightGCN's mean of layers 0..K and the L2 term on the batch's free embeddings
(RecBole's EmbLoss with require_pow, as the official LightGCN yaml sets). The penalty acts on
propagation layers only, so the paper and its code define no MF variant: LightGCN only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.utils import InputType

from .base import EncoderRecommender


def correlation_norm(h: torch.Tensor) -> torch.Tensor:
    """‖strict upper triangle of the d x d column-correlation matrix of h (n x d)‖_F."""
    return torch.corrcoef(h.t()).triu(diagonal=1).norm()


def adaptive_penalty(layers: list[torch.Tensor]) -> torch.Tensor:
    """Σ_l w_l C(H⁽ˡ⁾) with w ∝ 1 / C(H⁽ˡ⁾) (detached), Σ w = 1."""
    c = torch.stack([correlation_norm(h) for h in layers])
    inv = 1.0 / c.detach()
    return (inv / inv.sum() * c).sum()


class AFDGCF(EncoderRecommender):
    """LightGCN + BPR with AFDGCF's adaptive, layer-wise feature de-correlation penalty."""

    input_type = InputType.PAIRWISE
    backbones = ("lightgcn",)  # a penalty on propagation layers: no MF variant

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.alpha = float(config["alpha"])
        self.reg_weight = float(config["reg_weight"])
        if self.encoder.backbone != "lightgcn" or self.encoder.n_layers < 1:
            raise ValueError(f"AFDGCF penalises propagation layers: it needs backbone lightgcn and n_layers >= 1, "
                             f"got backbone {config['backbone']!r}, n_layers {config['n_layers']}")

    def scoring_embeddings(self):
        return self.encoder.split(torch.stack(self.encoder.layers()).mean(0))

    def calculate_loss(self, interaction):
        users, pos, neg = interaction[self.USER_ID], interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        layers = self.encoder.layers()
        hu, hi = self.encoder.split(torch.stack(layers).mean(0))
        u = hu[users]
        bpr = -F.logsigmoid((u * hi[pos]).sum(1) - (u * hi[neg]).sum(1)).mean()
        ego = (self.encoder.user_embedding(users), self.encoder.item_embedding(pos), self.encoder.item_embedding(neg))
        reg = sum(e.pow(2).sum() for e in ego) / (2 * len(users))
        per_side = [self.encoder.split(h) for h in layers[1:]]
        penalty = adaptive_penalty([s[0] for s in per_side]) + adaptive_penalty([s[1] for s in per_side])
        return bpr + self.reg_weight * reg + self.alpha * penalty
