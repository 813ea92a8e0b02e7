"""DirectSpec and DirectSpec+ (Peng, Sugiyama, Liu, Mine: "Balancing Embedding Spectrum for
Recommendation", arXiv 2406.12032), on the MF and LightGCN backbones.

One training step, per batch of B users and one positive item each (the reference samples
users uniformly, train_sampler: users):
  1. H_U, H_I from the backbone; Ĥ = row-normalised batch representations (B x d).
  2. Spectrum balancing, users and items separately:
       DirectSpec  (linear kernel):  H̃ = Ĥ − α ĤĤᵀĤ
       DirectSpec+ (softmax kernel): H̃ = Ĥ − α softmax_row(T ⊙ ĤĤᵀ) Ĥ, with T = τ everywhere, or
                   adaptive: T_ab = τ0 if a and b share a training neighbour, else τ1.
  3. Optional rescale (shrink_norm = c > 0): h̃ ← h̃ · c‖h̃‖.
  4. Loss: −mean log σ(h̃_uᵀ h̃_i) (positives only), plus reg · Σ(‖h̃_u‖² + ‖h̃_i‖²) / B.
Scoring uses the raw representations (no steps 1–3). The adaptive form's co-interaction is
computed per batch from the sparse training matrix (see backbones.CoInteraction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType

from backbones import CoInteraction, Encoder


def balance(h: torch.Tensor, alpha: float, kernel: str, temperature=None) -> torch.Tensor:
    """H̃ = Ĥ − α K(Ĥ) Ĥ for row-normalised Ĥ (paper Eq. for DirectSpec / DirectSpec+).

    ``temperature`` is a scalar τ or a B x B tensor T of per-pair multipliers (softmax kernel only).
    """
    if alpha == 0:
        return h
    gram = h @ h.t()
    weights = gram if kernel == "linear" else torch.softmax(temperature * gram, dim=1)
    return h - alpha * (weights @ h)


class _DirectSpec(GeneralRecommender):
    input_type = InputType.POINTWISE
    kernel = "softmax"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.alpha = float(config["alpha"])
        self.tau = float(config["tau"])
        self.tau0 = config["tau0"]
        self.tau1 = config["tau1"]
        self.shrink_norm = float(config["shrink_norm"] or 0.0)
        self.reg = float(config["reg"] or 0.0)
        interactions = dataset.inter_matrix(form="csr").astype("float32")
        self.encoder = Encoder(self.n_users, self.n_items, int(config["embedding_size"]), interactions,
                               backbone=config["backbone"], n_layers=int(config["n_layers"]), init=config["init"])
        self.adaptive = self.kernel == "softmax" and self.tau0 is not None and self.tau1 is not None
        self.co_interaction = CoInteraction(interactions, self.device) if self.adaptive else None

    def scoring_embeddings(self):
        return self.encoder()

    def _temperature(self, pairs_fn, ids):
        if not self.adaptive:
            return self.tau
        shared = pairs_fn(ids)
        return torch.where(shared, float(self.tau0), float(self.tau1))

    def balanced(self, users, items):
        hu, hi = self.encoder.encode(users, items)
        hu, hi = F.normalize(hu, dim=1), F.normalize(hi, dim=1)
        hu = balance(hu, self.alpha, self.kernel, self._temperature(
            self.co_interaction.user_pairs if self.adaptive else None, users))
        hi = balance(hi, self.alpha, self.kernel, self._temperature(
            self.co_interaction.item_pairs if self.adaptive else None, items))
        if self.shrink_norm > 0:
            hu = hu * (self.shrink_norm * hu.norm(dim=1, keepdim=True))
            hi = hi * (self.shrink_norm * hi.norm(dim=1, keepdim=True))
        return hu, hi

    def calculate_loss(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        hu, hi = self.balanced(users, items)
        loss = -F.logsigmoid((hu * hi).sum(1)).mean()
        if self.reg > 0:
            loss = loss + self.reg * (hu.pow(2).sum() + hi.pow(2).sum()) / len(users)
        return loss

    def predict(self, interaction):
        hu, hi = self.encoder.encode(interaction[self.USER_ID], interaction[self.ITEM_ID])
        return (hu * hi).sum(1)

    def full_sort_predict(self, interaction):
        users = interaction[self.USER_ID]
        hu, hi = self.encoder()
        return (hu[users] @ hi.t()).view(-1)


class DirectSpecPlus(_DirectSpec):
    """DirectSpec+: softmax-weighted balancing with a single τ or the adaptive τ0/τ1 form."""
    kernel = "softmax"


class DirectSpec(_DirectSpec):
    """Plain DirectSpec: the linear-kernel all-pass filter H̃ = Ĥ − α ĤĤᵀĤ (no reference file; ablation)."""
    kernel = "linear"
