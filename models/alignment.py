"""Negative-free alignment objectives, on the MF and LightGCN backbones (``backbone`` setting).

Every method here learns from batches of observed (user, item) pairs only — no sampled negatives —
and scores with the raw backbone representations, e_uᵀ e_i (MF) or (SE)_uᵀ (SE)_i (LightGCN).
Below, h are the batch representations from ``backbones.Encoder``, ĥ = h / ‖h‖ (row-normalised),
B the batch size, and (u_b, i_b) the b-th pair of the batch.

PositivesOnly — the complete-collapse reference of Peng et al. ("Balancing Embedding Spectrum for
    Recommendation", arXiv 2406.12032, claim T1): the loss of the DirectSpec reference code with
    α = 0 and without its row normalisation,  L = −1/B Σ_b log σ(h_uᵀ h_i)  on the raw h
    (``normalize: true`` scores ĥ instead: DirectSpec with α = 0 exactly). Nothing opposes alignment,
    and the L2 penalty (weight_decay λ) sets the rank: while scores are small, the mean gradient
    grows the k-th singular direction of the training matrix R at rate ≈ σ_k(R) / (2|R|) (pairs
    sampling) and L2 shrinks every direction at rate λ, so λ between the top two rates leaves one
    direction (erank → 1). Without L2 the logistic loss saturates and the initial noise stays.

DirectAU — Wang et al., "Towards Representation Alignment and Uniformity in Collaborative
    Filtering" (KDD 2022; THUwangcy/DirectAU): alignment and uniformity on the hypersphere
    (Wang & Isola, ICML 2020) and their sum, the DirectAU objective:
      l_align   = 1/B Σ_b ‖ĥ_u − ĥ_i‖²
      l_uniform(X) = log  2/(B(B−1)) Σ_{a<b} exp(−t ‖x̂_a − x̂_b‖²)      (t = 2)
      L = l_align + γ (l_uniform(users of the batch) + l_uniform(items of the batch)) / 2
    As in the official code, uniformity runs over the batch rows as they come: a user (item) that
    appears twice in a batch adds a pair at distance 0.

MAWU — Park et al., "Toward a Better Understanding of Loss Functions for Collaborative Filtering"
    (CIKM 2023; psm1206/MAWU): margin-aware alignment and weighted uniformity,
      θ_ui = arccos(ĥ_uᵀ ĥ_i),  δ_ui = 1 − σ(m_u + m_i)   (m_u, m_i ∈ [0, 1] learned per user / item)
      l_MA = −1/B Σ_b cos(min(θ_ui + δ_ui, π))
      L = l_MA + γ1 l_uniform(users) + γ2 l_uniform(items)
    with l_uniform in the official code's form by default (``uniformity_mean: cells``): the log of the
    mean over all B² cells of a lower-triangular matrix of exp(−t d²), the B(B+1)/2 zeroed cells at
    d² = 2; ``uniformity_mean: pairs`` is the paper's mean over distinct pairs.
    The margin form (angular margin 1 − σ(m_u + m_i), clipping of cos to ±(1 − 1e-7) and of the angle
    to [0, π], projection of m onto [0, 1]) is the official code's.

NonContrastiveCL — nCL of Chen et al., "Towards Mitigating Dimensional Collapse of Representations in
    Collaborative Filtering" (WSDM 2024, arXiv 2312.17468; no official code): alignment (DirectAU's
    l_align) plus compactness, built on the coding rate of MCR² (Yu et al., NeurIPS 2020; Ma et al.,
    TPAMI 2007), on the batch users and the batch items separately. For n unit rows Z (n x d):
      R(Z, ε)       = ½ log det(I_d + d/(n ε²) ZᵀZ)                            (coding rate: expansion)
      R_c(Z, ε | Π) = Σ_k tr(Π_k)/(2n) log det(I_d + d/(tr(Π_k) ε²) Zᵀ Π_k Z)    (rate within clusters)
      L = l_align + γ Σ_{Z ∈ {Ĥ_U, Ĥ_I}} (R_c(Z, ε | Π) − R(Z, ε))
    With n_clusters = 0 (the default) compactness is the expansion term −R alone. With K > 0,
    Π_k = diag(1[row in cluster k]) from spherical k-means of the (detached) batch rows: how the paper
    obtains memberships was not available to us, and a learned softmax head fails here (at uniform
    memberships R_c = R, the two terms cancel, and no gradient leaves that point).
    The class is not called NCL: that name is RecBole's built-in NCL, another method (Lin et al.,
    WWW 2022, neighbourhood-enriched contrastive learning), and names must be unique.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from recbole.utils import InputType
from torch import nn
from torch.autograd.function import once_differentiable

from .base import EncoderRecommender


# ---- loss terms (pure functions of batch representations) ----

def alignment(hu: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """l_align: mean squared distance of matched, row-normalised pairs."""
    return (F.normalize(hu, dim=1) - F.normalize(hi, dim=1)).pow(2).sum(1).mean()


class _PairwiseGaussianLogMean(torch.autograd.Function):
    """log( 1/(n(n−1)) Σ_{a≠b} exp(2t (x_aᵀx_b − 1)) ) for n ≥ 2 unit rows x (n x d), with its gradient.

    For unit rows ‖x_a − x_b‖² = 2 − 2 x_aᵀx_b, so this is l_uniform's log-mean of exp(−t‖x_a − x_b‖²):
    the Gram matrix is symmetric, and the mean over ordered pairs a ≠ b is the mean over pairs a < b.
    Forward: one product x xᵀ (E = exp(2t(x xᵀ − 1)), its diagonal zeroed) and a sum S; backward:
    ∂/∂x_a = (1/S) Σ_{b≠a} 2t (E_ab + E_ba) x_b = (4t/S) (E x)_a, one more product. torch.pdist's
    backward (and autograd through the elementwise chain on the B² matrix) costs several times that
    on a CPU. Not twice differentiable (nothing here needs it).
    """

    @staticmethod
    def forward(ctx, x, t, cells=False):
        n = x.shape[0]
        e = torch.mm(x * (2.0 * t), x.t()).sub_(2.0 * t).exp_()  # exp(2t x_aᵀx_b − 2t) = exp(−t‖x_a − x_b‖²)
        e.diagonal().zero_()                                                         # pairs a ≠ b only
        s = e.sum()
        # cells: the official MAWU code's mean over all n² cells of a lower-triangular matrix, whose
        # n(n+1)/2 zeroed cells count as distance² 2: log((s/2 + n(n+1)/2·e^{−2t}) / n²).
        pad = n * (n + 1) * math.exp(-2.0 * t) if cells else 0.0        # 2·(n(n+1)/2)·e^{−2t}
        ctx.save_for_backward(x, e, s + pad)
        ctx.t = t
        return (s + pad).div(2 * n * n).log() if cells else s.div(n * (n - 1)).log()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, e, s = ctx.saved_tensors
        return (e @ x).mul_(grad * (4.0 * ctx.t) / s), None, None


def uniformity(h: torch.Tensor, t: float = 2.0, cells: bool = False) -> torch.Tensor:
    """l_uniform: log of the mean of exp(−t‖x̂_a − x̂_b‖²) over the B(B−1)/2 pairs a < b of rows.

    Computed from the Gram matrix of the x̂ (‖x̂_a − x̂_b‖² = 2 − 2 x̂_aᵀx̂_b, see
    ``_PairwiseGaussianLogMean``): the value and gradient of torch.pdist's form, several times faster.
    A batch of one row has no pair: 0 (the last batch of an epoch can be that small).
    ``cells``: the official MAWU code's form (see ``_PairwiseGaussianLogMean``): the same direction
    of gradient, scaled by S / (S + n(n+1)e^{−2t}) (S the sum over a ≠ b): about ½ for spread rows,
    → 1 as they concentrate."""
    if len(h) < 2:
        return h.sum() * 0.0
    return _PairwiseGaussianLogMean.apply(F.normalize(h, dim=1), float(t), bool(cells))


def margin_alignment(hu: torch.Tensor, hi: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """l_MA: −mean cos(θ_ui + 1 − σ(margin)), θ_ui the angle of the pair, the sum clipped to [0, π]."""
    cos = (F.normalize(hu, dim=1) * F.normalize(hi, dim=1)).sum(1).clamp(-1 + 1e-7, 1 - 1e-7)
    angle = torch.arccos(cos) + (1 - torch.sigmoid(margin.view(-1)))
    return -torch.cos(angle.clamp(0.0, math.pi)).mean()


def _logdet_spd(m: torch.Tensor) -> torch.Tensor:
    """log det of symmetric positive-definite matrices (..., d, d), through a Cholesky factor."""
    return 2 * torch.linalg.cholesky(m).diagonal(dim1=-2, dim2=-1).log().sum(-1)


def coding_rate(z: torch.Tensor, eps: float) -> torch.Tensor:
    """R(Z, ε) = ½ log det(I + d/(n ε²) ZᵀZ) for the n rows of Z (n x d)."""
    n, d = z.shape
    return 0.5 * _logdet_spd(torch.eye(d, dtype=z.dtype, device=z.device) + (d / (n * eps ** 2)) * (z.t() @ z))


def cluster_coding_rate(z: torch.Tensor, membership: torch.Tensor, eps: float) -> torch.Tensor:
    """R_c(Z, ε | Π) = Σ_k tr(Π_k)/(2n) log det(I + d/(tr(Π_k) ε²) Zᵀ Π_k Z); membership is n x K."""
    n, d = z.shape
    size = membership.sum(0).clamp_min(1e-8)                       # tr(Π_k), K
    cov = (membership.t().unsqueeze(2) * z).transpose(1, 2) @ z    # Zᵀ Π_k Z, K x d x d
    eye = torch.eye(d, dtype=z.dtype, device=z.device)
    logdet = _logdet_spd(eye + (d / (size * eps ** 2)).view(-1, 1, 1) * cov)
    return (size / (2 * n) * logdet).sum()


@torch.no_grad()
def spherical_kmeans(z: torch.Tensor, k: int, iters: int = 10) -> torch.Tensor:
    """Hard memberships (n x k, one-hot) of unit rows z by Lloyd's iterations on cosine similarity.

    Farthest-point start: one row drawn with torch's generator, then each next centre the row least
    similar to the centres so far (repeated rows, common in a batch, never start two clusters).
    """
    centres = z[torch.randint(len(z), (1,), device=z.device)]
    for _ in range(1, k):
        centres = torch.cat([centres, z[(z @ centres.t()).max(1).values.argmin()].unsqueeze(0)])
    for _ in range(iters):
        onehot = F.one_hot((z @ centres.t()).argmax(1), k).to(z.dtype)
        sums = onehot.t() @ z
        centres = torch.where(onehot.sum(0).unsqueeze(1) > 0, F.normalize(sums, dim=1), centres)
    return F.one_hot((z @ centres.t()).argmax(1), k).to(z.dtype)


# ---- models ----

class _Aligned(EncoderRecommender):
    """A backbone (``Encoder``) trained on observed pairs; scores are raw inner products."""
    input_type = InputType.POINTWISE

    def batch_loss(self, users, items, hu, hi) -> torch.Tensor:
        raise NotImplementedError

    def calculate_loss(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        hu, hi = self.encoder.encode(users, items)
        return self.batch_loss(users, items, hu, hi)


class PositivesOnly(_Aligned):
    """Positives-only training, −mean log σ(h_uᵀh_i): the collapse case (T1).

    ``normalize: true`` scores the row-normalised ĥ instead: exactly DirectSpec with α = 0.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.normalize = bool(config["normalize"])

    def batch_loss(self, users, items, hu, hi):
        if self.normalize:
            hu, hi = F.normalize(hu, dim=1), F.normalize(hi, dim=1)
        return -F.logsigmoid((hu * hi).sum(1)).mean()


class DirectAU(_Aligned):
    """DirectAU (Wang et al., KDD 2022): l_align + γ (l_uniform(U) + l_uniform(I)) / 2."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.gamma, self.t = float(config["gamma"]), float(config["uniformity_t"])

    def batch_loss(self, users, items, hu, hi):
        return alignment(hu, hi) + self.gamma * (uniformity(hu, self.t) + uniformity(hi, self.t)) / 2


class MAWU(_Aligned):
    """MAWU (Park et al., CIKM 2023): l_MA with learned margins + γ1 l_uniform(U) + γ2 l_uniform(I)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.gamma1, self.gamma2 = float(config["gamma1"]), float(config["gamma2"])
        self.t = float(config["uniformity_t"])
        self.cells = config["uniformity_mean"] == "cells"
        self.user_margin = nn.Embedding(self.n_users, 1)
        self.item_margin = nn.Embedding(self.n_items, 1)
        nn.init.xavier_normal_(self.user_margin.weight), nn.init.xavier_normal_(self.item_margin.weight)
        self._project_margins()

    @torch.no_grad()
    def _project_margins(self):
        self.user_margin.weight.clamp_(0.0, 1.0)
        self.item_margin.weight.clamp_(0.0, 1.0)

    def batch_loss(self, users, items, hu, hi):
        self._project_margins()  # projected gradient: margins live in [0, 1]
        margin = self.user_margin(users) + self.item_margin(items)
        return (margin_alignment(hu, hi, margin)
                + self.gamma1 * uniformity(hu, self.t, self.cells) + self.gamma2 * uniformity(hi, self.t, self.cells))


class NonContrastiveCL(_Aligned):
    """nCL (Chen et al., WSDM 2024): l_align + γ Σ_sides (R_c(Z, ε | Π) − R(Z, ε)) on normalised batch rows."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.gamma, self.eps, self.n_clusters = float(config["gamma"]), float(config["eps"]), int(config["n_clusters"])

    def compactness(self, h: torch.Tensor) -> torch.Tensor:
        z = F.normalize(h, dim=1)
        loss = -coding_rate(z, self.eps)
        if self.n_clusters > 0:
            loss = loss + cluster_coding_rate(z, spherical_kmeans(z.detach(), self.n_clusters), self.eps)
        return loss

    def batch_loss(self, users, items, hu, hi):
        return alignment(hu, hi) + self.gamma * (self.compactness(hu) + self.compactness(hi))
