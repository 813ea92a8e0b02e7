"""DirectSpec and DirectSpec+ (Peng, Sugiyama, Liu, Mine: "Balancing Embedding Spectrum for
Recommendation", arXiv 2406.12032), on the MF and LightGCN backbones.

The reference code is tanatosuu/directspec (21e0ebe): directspec_mf.py, directspec_mf_adaptive.py,
directspec_gcn.py, directspec_gcn_adaptive.py. One training step on B users, each with one
training item (the harness's ``train_sampler: users``; the loss has no negatives):

1. H_U, H_I = the backbone's rows for the batch (MF: the embeddings; LightGCN: S E with
   S = Σ_{k≤K} Ã^k, computed sparsely by backbones.Encoder).
2. Ĥ = each row divided by its L2 norm (B x d, users and items separately).
3. Spectrum balancing, users and items separately (duplicates in the batch and the diagonal
   take part, as in the reference):
     DirectSpec  (linear kernel, the abstracts' all-pass filter):  H̃ = Ĥ − α ĤĤᵀĤ
     DirectSpec+ (softmax kernel):  H̃ = Ĥ − α softmax_row(T ⊙ ĤĤᵀ) Ĥ,
       T = τ everywhere, or (adaptive) T_ab = τ0 if a, b co-interact in training, else τ1.
4. Rescale when shrink_norm = c > 0: h̃ ← h̃ · (c ‖h̃‖).
5. Loss = −(1/B) Σ log σ(h̃_uᵀ h̃_i) + reg · Σ (‖h̃_u‖² + ‖h̃_i‖²) / B
   (only directspec_gcn.py has the reg term; set reg: 0 for the other three scripts).
Scoring uses the raw rows of step 1 (no steps 2–4): MF e_uᵀe_i; LightGCN (SE)_uᵀ(SE)_i, which
ranks items as the reference's σ((SE)_uᵀ(SE)_i) does (σ is increasing; only ties where σ rounds
to 1.0 in float32, scores above ~17, differ).

The adaptive form's mask comes from _cointeraction.CoInteraction (B x B per batch, never dense
|U|² or |I|²). ``sparse_grad`` gives the MF tables sparse gradients, so a step touches only the
batch's rows instead of zeroing and updating whole tables; the SGD update is the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from recbole.utils import InputType

from ._cointeraction import CoInteraction
from .base import EncoderRecommender


def balance(h: torch.Tensor, alpha: float, kernel: str, temperature=None) -> torch.Tensor:
    """H̃ = Ĥ − α K(Ĥ) Ĥ for row-normalised Ĥ: K = ĤĤᵀ (linear) or softmax_row(T ⊙ ĤĤᵀ).

    ``h`` is B x d, or a stack of them (users and items balanced at once, each on its own);
    ``temperature`` is a scalar τ or a (stack of) B x B tensor(s) T of per-pair multipliers.
    """
    if alpha == 0:
        return h
    gram = h @ h.transpose(-1, -2)
    weights = gram if kernel == "linear" else torch.softmax(temperature * gram, dim=-1)
    return h - alpha * (weights @ h)


def shrink(h: torch.Tensor, c: float) -> torch.Tensor:
    """h̃ ← h̃ · (c ‖h̃‖) per row; c = 0 leaves h̃ as it is (the reference's shrink_norm)."""
    return h * (c * h.norm(dim=-1, keepdim=True)) if c > 0 else h


def positives_loss(hu: torch.Tensor, hi: torch.Tensor, reg: float = 0.0) -> torch.Tensor:
    """−mean log σ(h_uᵀ h_i), plus reg · Σ(‖h_u‖² + ‖h_i‖²) / B when reg > 0."""
    loss = -F.logsigmoid((hu * hi).sum(1)).mean()
    if reg > 0:
        loss = loss + reg * (hu.pow(2).sum() + hi.pow(2).sum()) / hu.shape[0]
    return loss


class _DirectSpec(EncoderRecommender):
    """Steps 1–5 above for a batch; scores with the raw rows of step 1 (EncoderRecommender's
    ``scoring_embeddings``: no normalising, balancing or shrinking, as the reference)."""
    input_type = InputType.POINTWISE
    kernel = "softmax"

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.alpha = float(config["alpha"])
        self.tau = float(config["tau"])
        self.tau0, self.tau1 = config["tau0"], config["tau1"]
        self.shrink_norm = float(config["shrink_norm"] or 0.0)
        self.reg = float(config["reg"] or 0.0)
        if (self.tau0 is None) != (self.tau1 is None):
            raise ValueError(f"set both tau0 and tau1 for the adaptive form, or neither (got tau0={self.tau0}, "
                             f"tau1={self.tau1})")
        self.adaptive = self.tau0 is not None
        if self.adaptive and self.kernel != "softmax":
            raise ValueError(f"tau0/tau1 weigh the softmax kernel of DirectSpecPlus; {type(self).__name__} "
                             "uses the linear kernel: leave them unset")
        self.co_interaction = None
        if self.adaptive:
            self.co_interaction = CoInteraction(dataset.inter_matrix(form="csr").astype("float32"))
        if self._sparse_grad(config):
            self.encoder.user_embedding.sparse = self.encoder.item_embedding.sparse = True

    def _sparse_grad(self, config) -> bool:
        """``sparse_grad``: true/false, or auto = MF on CPU with plain SGD (no weight decay or clipping)."""
        wanted = config["sparse_grad"]
        if wanted != "auto":
            return bool(wanted) and config["backbone"] == "mf"
        plain_sgd = (str(config["learner"]).lower() == "sgd" and not config["weight_decay"]
                     and not config["clip_grad_norm"])
        return config["backbone"] == "mf" and torch.device(self.device).type == "cpu" and plain_sgd

    def _temperature(self, users, items, h):
        """τ, or T stacked for users and items (2 x B x B): τ0 where a pair co-interacts, else τ1."""
        if not self.adaptive:
            return self.tau
        shared = torch.stack([self.co_interaction.user_pairs(users), self.co_interaction.item_pairs(items)])
        # filled on the device from Python scalars: no host-to-device copy per step
        return h.new_full(shared.shape, float(self.tau1)).masked_fill_(shared, float(self.tau0))

    def balanced(self, users, items):
        """Steps 1–4 for a batch: (h̃_u, h̃_i), B x d each (computed as one 2 x B x d stack)."""
        h = F.normalize(torch.stack(self.encoder.encode(users, items)), dim=-1)
        h = shrink(balance(h, self.alpha, self.kernel, self._temperature(users, items, h)), self.shrink_norm)
        return h[0], h[1]

    def calculate_loss(self, interaction):
        return positives_loss(*self.balanced(interaction[self.USER_ID], interaction[self.ITEM_ID]), self.reg)


class DirectSpecPlus(_DirectSpec):
    """DirectSpec+: softmax-weighted balancing with a single τ or the adaptive τ0/τ1 form."""
    kernel = "softmax"


class DirectSpec(_DirectSpec):
    """Plain DirectSpec: the linear-kernel all-pass filter H̃ = Ĥ − α ĤĤᵀĤ (no reference file; ablation)."""
    kernel = "linear"
