"""SSM: sampled softmax loss with cosine scores (Wu, Wang, Gao, Chen, Fu, Qiu: "On the
Effectiveness of Sampled Softmax Loss for Item Recommendation", ACM TOIS 2024, arXiv 2201.02327),
on the MF and LightGCN backbones.

For a batch of (user u, positive item i) pairs with cosine scores s(u, j) = ĥ_uᵀĥ_j (row-normalised
representations) and temperature τ, the SSM loss is
    L = mean_(u,i) −log( exp(s(u, i)/τ) / (exp(s(u, i)/τ) + Σ_{j ∈ N_u} exp(s(u, j)/τ)) )
        + reg · ½ (‖e_u‖² + ‖e_i‖² + Σ_{j ∈ N_u} ‖e_j‖²) / B        (e: the free embeddings, E⁽⁰⁾)
Negatives N_u (setting ``neg_samples``):
  0   in-batch: the other positives of the batch (the official code's default, neg_dist = 0);
      a popular item appearing twice in a batch counts as a negative of the other row, as there.
  N   N items per row drawn uniformly among the items the user has not interacted with.
The official code (wujcan/SSM-TensorFlow) sums over the batch; the mean here differs by the
factor B in both terms, which Adam ignores. Scoring uses raw dot products (flag_l2_norm = [1, 0]).
On LightGCN the code averages layers 0..K where the shared encoder sums them: cosine scores and
per-user rankings are unchanged by that constant factor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from recbole.utils import InputType

from .base import EncoderRecommender


class _InBatchSoftmax(torch.autograd.Function):
    """mean_b −log softmax_j(u_bᵀp_j / τ)[b] for rows u, p (B x d; unit rows in ``ssm_loss``), with its gradient.

    Row b of the logits is the batch's positives, its own on the diagonal. Forward: one product
    u pᵀ, each row's log-sum-exp from its max (one exp over the B² logits, kept as the softmax P);
    backward: with G = (P − I) / (B τ), ∂/∂u = G p and ∂/∂p = Gᵀ u, two more products. That is
    autograd's log_softmax -> diagonal -> mean without its B² temporaries (about half the CPU time
    at B = 2048). Not twice differentiable (nothing here needs it).
    """

    @staticmethod
    def forward(ctx, u, p, temperature):
        logits = torch.mm(u, p.t()).mul_(1.0 / temperature)
        logits.sub_(logits.amax(dim=1, keepdim=True))              # l_bj − max_j l_bj
        own = logits.diagonal().clone()                           # l_bb − max_j l_bj
        prob = logits.exp_()
        total = prob.sum(dim=1, keepdim=True)
        loss = (total.log().squeeze(1) - own).mean()              # −log softmax[b, b], averaged
        prob.div_(total)                                          # the softmax P
        ctx.save_for_backward(u, p, prob)
        ctx.temperature = temperature
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        u, p, prob = ctx.saved_tensors
        scale = grad / (len(u) * ctx.temperature)
        return (prob @ p - p).mul_(scale), (prob.t() @ u - u).mul_(scale), None


def ssm_loss(users: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None,
             temperature: float) -> torch.Tensor:
    """Mean sampled softmax cross-entropy of cosine scores; negatives (B x N x d) or None for in-batch."""
    u, p = F.normalize(users, dim=1), F.normalize(positives, dim=1)
    if negatives is None:  # row b: the batch's positives, its own on the diagonal (``_InBatchSoftmax``)
        return _InBatchSoftmax.apply(u, p, float(temperature))
    n = F.normalize(negatives, dim=-1)
    logits = torch.cat([(u * p).sum(1, keepdim=True), torch.einsum("bd,bnd->bn", u, n)], dim=1)
    return -torch.log_softmax(logits / temperature, dim=1)[:, 0].mean()


class SSM(EncoderRecommender):
    """Sampled softmax (cosine, temperature τ) with in-batch or uniform negatives, on MF or LightGCN."""

    input_type = InputType.PAIRWISE  # the harness adds negatives only when neg_samples > 0

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.temperature = float(config["temperature"])
        self.reg_weight = float(config["reg_weight"])
        self.neg_samples = int(config["neg_samples"] or 0)

    def calculate_loss(self, interaction):
        users, pos = interaction[self.USER_ID], interaction[self.ITEM_ID]
        hu, hi = self.encoder()
        ego = [self.encoder.user_embedding(users), self.encoder.item_embedding(pos)]
        negatives = None
        if self.neg_samples > 0:
            neg = interaction[self.NEG_ITEM_ID].view(len(users), -1)
            negatives = hi[neg]
            ego.append(self.encoder.item_embedding(neg))
        loss = ssm_loss(hu[users], hi[pos], negatives, self.temperature)
        reg = sum(e.pow(2).sum() for e in ego) / 2
        return loss + self.reg_weight * reg / len(users)
