"""Graph contrastive learning on LightGCN: SimGCL, XSimGCL, and RecBole's SGL and NCL as plugins.

SimGCL (Yu, Yin, Xia, Chen, Cui, Nguyen: "Are Graph Augmentations Necessary? Simple Graph
Contrastive Learning for Recommendation", SIGIR 2022) and XSimGCL (Yu, Xia, Chen, Cui, Hung, Yin:
"XSimGCL: Towards Extremely Simple Graph Contrastive Learning for Recommendation", TKDE 2023).
Both perturb every LightGCN propagation layer's output with sign-aligned uniform noise
(SimGCL's noise-based augmentation e′ = e + Δ′, ‖Δ‖₂ = ε, Δ = Δ̄ ⊙ sign(e), Δ̄ ~ U(0, 1)):
    E⁽ᵏ⁾ ← E⁽ᵏ⁾ + Δ⁽ᵏ⁾,   Δ = ε · sign(E⁽ᵏ⁾) ⊙ normalize_row(U(0, 1)),   so ‖Δ_row‖ = ε,
and the final representation is the mean of layers 1..K (E⁽⁰⁾ skipped, as both papers and their
code do). The contrastive term is InfoNCE over the distinct users and the distinct positive items
of the batch, the batch's other rows as negatives (SimGCL and its code):
    L_cl = mean_i −log( exp(z′_iᵀz″_i / τ) / Σ_j exp(z′_iᵀz″_j / τ) ),   z = row-normalised view.
SimGCL:  L = L_bpr(clean) + λ (L_cl(users) + L_cl(items)), views = two independent noisy passes.
XSimGCL: L = L_bpr(noisy) + λ (L_cl(users) + L_cl(items)), one noisy pass; the views are its final
         representation and its layer l* (XSimGCL's cross-layer contrast).
Both add reg · (‖U_b‖_F + ‖I⁺_b‖_F) / B on the batch's final representations, as the official
PyTorch code (Coder-Yu/SELFRec, util/loss_torch.l2_reg_loss) does. Scoring uses the clean pass.
Neither paper nor its code defines an MF variant (without propagation there is no layer to
perturb nor a layer combination), so both are LightGCN only.

SGL (Wu et al., SIGIR 2021) and NCL (Lin et al., WWW 2022) are RecBole's own classes, loss untouched
but for SGL's L2 term
(values and gradients; the adapters only compute RecBole's propagation by CSR products and its
InfoNCE sums over a batch's distinct users / items, see ``_CSRCache`` and ``nce_sum``):
- ``SGLAdapter`` takes the L2 term of SGL's paper and authors' code (``l2_form: squared``:
  reg·½Σ‖e‖² over the batch's rows; RecBole's reg·Σ‖E_b‖/B is ``l2_form: recbole``), and adds
  ``scoring_embeddings()`` (RecBole's SGL scores with the propagated mean but its ``forward``
  takes the graph, so the spectrum would otherwise read the raw tables). Its
  augmented graphs are rebuilt (by RecBole's code, with its numpy draws) in ``model.train()``,
  which the harness calls every epoch.
- ``NCLAdapter`` runs NCL's E-step itself: ``on_epoch_start`` does what RecBole's NCLTrainer does
  (k-means every ``m_step`` epochs, the prototype term left out for the first ``warm_up_step``
  epochs), and the k-means is ours, in torch (``kmeans``), instead of faiss.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from recbole.model.general_recommender.ncl import NCL
from recbole.model.general_recommender.sgl import SGL
from recbole.utils import InputType

from .backbones import propagate
from .base import EncoderRecommender
from .softmax import _InBatchSoftmax


def perturb(h: torch.Tensor, eps: float, noise: torch.Tensor) -> torch.Tensor:
    """h + ε · sign(h) ⊙ normalize_row(noise): SimGCL's perturbation, noise ~ U(0, 1) drawn by the caller."""
    return h + eps * torch.sign(h) * F.normalize(noise, dim=1)


def info_nce(view1: torch.Tensor, view2: torch.Tensor, temperature: float) -> torch.Tensor:
    """mean_i −log softmax_j(cos(v1_i, v2_j) / τ)[i]: InfoNCE with the other rows as negatives."""
    # SSM's in-batch loss is this very expression (softmax._InBatchSoftmax: one fused autograd step)
    return _InBatchSoftmax.apply(F.normalize(view1, dim=1), F.normalize(view2, dim=1), float(temperature))


def bpr(hu, hi, users, pos, neg) -> torch.Tensor:
    u = hu[users]
    return -F.logsigmoid((u * hi[pos]).sum(1) - (u * hi[neg]).sum(1)).mean()


class _NoisyGCL(EncoderRecommender):
    """Shared by SimGCL and XSimGCL: LightGCN encoder, noisy passes, scoring with the clean pass."""

    input_type = InputType.PAIRWISE
    backbones = ("lightgcn",)  # noise on propagation layers: no MF variant

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.eps = float(config["eps"])
        self.cl_weight = float(config["cl_weight"])
        self.cl_temperature = float(config["cl_temperature"])
        self.reg_weight = float(config["reg_weight"])
        if self.encoder.backbone != "lightgcn" or self.encoder.n_layers < 1:
            raise ValueError(f"{type(self).__name__} perturbs propagation layers: it needs backbone lightgcn "
                             f"and n_layers >= 1, got backbone {config['backbone']!r}, n_layers {config['n_layers']}")
        # U(0, 1) noise of a layer's shape; a test may replace it to inject known noise.
        self.draw_noise = torch.rand_like

    def _noise(self, k, h):
        return perturb(h, self.eps, self.draw_noise(h))

    def _final(self, layers):
        """Mean of layers 1..K (E⁽⁰⁾ left out, as SimGCL/XSimGCL do)."""
        return torch.stack(layers[1:]).mean(0)

    def representations(self, noisy: bool = False):
        """(users, items) final representations of a clean (or one noisy) pass."""
        return self.encoder.split(self._final(self.encoder.layers(self._noise if noisy else None)))

    def scoring_embeddings(self):
        return self.representations()

    def _cl(self, users_a, items_a, users_b, items_b, users, pos):
        u, i = torch.unique(users), torch.unique(pos)
        return (info_nce(users_a[u], users_b[u], self.cl_temperature)
                + info_nce(items_a[i], items_b[i], self.cl_temperature))

    def _reg(self, hu, hi, users, pos):
        return self.reg_weight * (hu[users].norm() + hi[pos].norm()) / len(users)


class SimGCL(_NoisyGCL):
    """SimGCL: BPR on the clean pass + λ · InfoNCE between two independently perturbed passes."""

    def calculate_loss(self, interaction):
        users, pos, neg = interaction[self.USER_ID], interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        hu, hi = self.representations()
        u1, i1 = self.representations(noisy=True)
        u2, i2 = self.representations(noisy=True)
        return (bpr(hu, hi, users, pos, neg) + self._reg(hu, hi, users, pos)
                + self.cl_weight * self._cl(u1, i1, u2, i2, users, pos))


class XSimGCL(_NoisyGCL):
    """XSimGCL: one perturbed pass; BPR on its final representation + λ · InfoNCE(final, layer l*)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.cl_layer = int(config["cl_layer"])
        if not 1 <= self.cl_layer <= self.encoder.n_layers:
            raise ValueError(f"cl_layer must lie in [1, n_layers = {self.encoder.n_layers}], got {self.cl_layer}")

    def calculate_loss(self, interaction):
        users, pos, neg = interaction[self.USER_ID], interaction[self.ITEM_ID], interaction[self.NEG_ITEM_ID]
        layers = self.encoder.layers(self._noise)
        hu, hi = self.encoder.split(self._final(layers))
        cu, ci = self.encoder.split(layers[self.cl_layer])
        return (bpr(hu, hi, users, pos, neg) + self._reg(hu, hi, users, pos)
                + self.cl_weight * self._cl(hu, hi, cu, ci, users, pos))


class _CSRCache:
    """CSR copies of RecBole's (COO) graph tensors, made once per graph: a mixin for the adapters.

    RecBole propagates with torch.sparse.mm on COO tensors, whose backward transposes and coalesces
    the graph on every call. Its graphs are symmetric (D^{-1/2} (A + Aᵀ) D^{-1/2}), so
    ``backbones.propagate`` (CSR, Ãᵀ g = Ã g) gives the same products and gradients at a fraction
    of the CPU time. A cached copy is keyed by the graph object itself, so a graph replaced (SGL's
    views, rebuilt every epoch) is converted again; deepcopy/pickle drop the cache (CSR tensors
    cannot be copied)."""

    def _csr(self, graph: torch.Tensor) -> torch.Tensor:
        if graph.layout == torch.sparse_csr:
            return graph
        cache = self.__dict__.setdefault("_csr_cache", {})
        hit = cache.get(id(graph))
        if hit is None or hit[0] is not graph:
            hit = cache[id(graph)] = (graph, graph.coalesce().to_sparse_csr())
        return hit[1]

    def _forget_csr(self):
        self.__dict__["_csr_cache"] = {}

    def __getstate__(self):
        state = super().__getstate__()
        return {**state, "_csr_cache": {}}


def nce_sum(anchors: torch.Tensor, positives: torch.Tensor, candidates: torch.Tensor, temperature: float,
            counts: torch.Tensor) -> torch.Tensor:
    """Σ_r counts_r · −log( exp(a_rᵀp_r / τ) / Σ_j exp(a_rᵀc_j / τ) ): RecBole's InfoNCE sums (SGL's
    calc_ssl_loss, NCL's ssl_layer_loss and ProtoNCE_loss), written as they are, over the distinct
    rows r of a batch, each weighted by how often it occurs there. Each of those terms depends on
    the row only (its two views, or its embedding and its cluster's centroid), so this is the sum
    over the batch's B rows, with the B x N score matrix shrunk to (distinct rows) x N."""
    pos = torch.exp(torch.sum(anchors * positives, dim=1) / temperature)
    ttl = torch.sum(torch.exp(anchors @ candidates.t() / temperature), dim=1)
    return -(counts.to(anchors.dtype) * torch.log(pos / ttl)).sum()


def _view_nce_sum(view1_all: torch.Tensor, view2_all: torch.Tensor, rows: torch.Tensor, temperature: float):
    """Σ_{b in batch} −log(exp(ẑ1_bᵀẑ2_b / τ) / Σ_{v in all} exp(ẑ1_bᵀẑ2_v / τ)), ẑ row-normalised views."""
    distinct, counts = torch.unique(rows, return_counts=True)
    everyone = F.normalize(view2_all, dim=1)
    return nce_sum(F.normalize(view1_all[distinct], dim=1), everyone[distinct], everyone, temperature, counts)


def _propagated_layers(ego: torch.Tensor, adjacency_per_layer) -> list[torch.Tensor]:
    """[E⁽⁰⁾, Ã₁E⁽⁰⁾, Ã₂Ã₁E⁽⁰⁾, …] for symmetric CSR graphs (``backbones.propagate``)."""
    layers = [ego]
    for adjacency in adjacency_per_layer:
        layers.append(propagate(adjacency, layers[-1]))
    return layers


class SGLAdapter(_CSRCache, SGL):
    """RecBole's SGL (Wu et al., SIGIR 2021), its loss and graphs, plus the representations it scores with.

    Computed faster, with the same values (float tolerance) and the same random views: ``forward``
    is RecBole's (mean of layers 0..K of the graph, or of one graph per layer for RW), its products
    by CSR (``_CSRCache``); ``calc_ssl_loss`` is RecBole's
        (Σ_{u in batch} −log(exp(ẑ′_uᵀẑ″_u/τ) / Σ_{v in U} exp(ẑ′_uᵀẑ″_v/τ)) + the same over items) · ssl_weight
    over the batch's distinct users / items, weighted by their counts (``nce_sum``)."""

    backbones = ("lightgcn",)  # RecBole's LightGCN graph; no ``backbone`` setting

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.l2_form = config["l2_form"] or "recbole"  # a bare RecBole config has no such key: RecBole's form

    def calc_bpr_loss(self, user_emd, item_emd, user_list, pos_item_list, neg_item_list):
        """Σ_b −log σ(ŷ_ui − ŷ_uj) + reg · L2 over the batch's rows of the embedding tables, with L2 by
        ``l2_form``: ``squared`` is the λ2‖Θ‖²₂ of SGL's joint loss (Wu et al., SIGIR 2021) as its authors' code
        computes it (wujcan/SGL-Torch ``l2_loss``: ½Σ‖e‖² summed over the batch's user, positive and
        negative rows); ``recbole`` is RecBole's (Σ of the three blocks' unsquared Frobenius norms / B)."""
        if self.l2_form == "recbole":
            return super().calc_bpr_loss(user_emd, item_emd, user_list, pos_item_list, neg_item_list)
        u = user_emd[user_list]
        l1 = torch.sum(-F.logsigmoid((u * item_emd[pos_item_list]).sum(1) - (u * item_emd[neg_item_list]).sum(1)))
        rows = (self.user_embedding(user_list), self.item_embedding(pos_item_list), self.item_embedding(neg_item_list))
        return l1 + self.reg_weight * sum(r.pow(2).sum() for r in rows) / 2

    def graph_construction(self):
        self._forget_csr()  # the last epoch's views are not needed again
        super().graph_construction()

    def forward(self, graph):
        graphs = graph if isinstance(graph, list) else [graph] * self.n_layers
        ego = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        layers = _propagated_layers(ego, [self._csr(g) for g in graphs])
        user_emd, item_emd = torch.split(torch.stack(layers, dim=1).mean(dim=1), [self.n_users, self.n_items], dim=0)
        return user_emd, item_emd

    def calc_ssl_loss(self, user_list, pos_item_list, user_sub1, user_sub2, item_sub1, item_sub2):
        ssl_user = _view_nce_sum(user_sub1, user_sub2, user_list, self.ssl_tau)
        ssl_item = _view_nce_sum(item_sub1, item_sub2, pos_item_list, self.ssl_tau)
        return (ssl_item + ssl_user) * self.ssl_weight

    def scoring_embeddings(self):
        return self.forward(self.train_graph)


def _nearest(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of each row's nearest centroid (L2), the first one on ties: argmin of torch.cdist, by
    ``min(1).indices`` (the same index, first minimum included; ~3x faster than argmin on a CPU)."""
    return torch.cdist(x, centroids).min(1).indices


def kmeans(x: torch.Tensor, k: int, iters: int = 25, generator: torch.Generator | None = None):
    """Lloyd's k-means with faiss.Kmeans' defaults (ours, in torch): k distinct random rows as the
    first centroids, ``iters`` rounds of assign-to-nearest (L2) / move-to-mean, an empty cluster
    re-seeded by splitting the largest one (centroid · (1 ± 1/1024)). Returns (centroids k x d,
    assignment of each row). k is capped at the number of rows."""
    n = x.shape[0]
    k = min(int(k), n)
    order = torch.randperm(n, generator=generator)[:k].to(x.device)
    centroids = x[order].clone()
    for _ in range(iters):
        assign = _nearest(x, centroids)
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        filled = counts > 0
        centroids = torch.where(filled.unsqueeze(1), sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype), centroids)
        for empty in torch.nonzero(~filled).flatten().tolist():
            big = int(torch.argmax(counts))
            centroids[empty] = centroids[big] * (1 + 1 / 1024)
            centroids[big] = centroids[big] * (1 - 1 / 1024)
            counts[empty] = counts[big] // 2
            counts[big] -= counts[empty]
    return centroids, _nearest(x, centroids)


class NCLAdapter(_CSRCache, NCL):
    """RecBole's NCL (Lin et al., WWW 2022), loss unchanged, trained as RecBole's NCLTrainer does:
    the E-step (k-means on the raw user and item tables) before every ``m_step``-th epoch, and the
    prototype term dropped while epoch index < ``warm_up_step`` (0-based, as RecBole counts).
    The k-means is ``kmeans`` above (torch, on the model's device) instead of faiss.

    Computed faster, with the same values (float tolerance): ``forward`` is RecBole's, its products
    by CSR (``_CSRCache``); ``ssl_layer_loss`` (structural term, ssl_reg (L_S(U) + α L_S(I))) and
    ``ProtoNCE_loss`` (prototype term, proto_reg (L_P(U) + L_P(I))) are RecBole's sums over the
    batch, over its distinct users / items weighted by their counts (``nce_sum``)."""

    backbones = ("lightgcn",)  # RecBole's LightGCN graph; no ``backbone`` setting

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.m_step = int(config["m_step"])
        self.warm_up_step = int(config["warm_up_step"])
        self.kmeans_iters = int(config["kmeans_iters"])
        self.epoch_index = 0  # RecBole's 0-based epoch_idx of the epoch being trained

    def on_epoch_start(self, epoch: int):
        self.epoch_index = epoch - 1
        if self.epoch_index % self.m_step == 0:
            self.e_step()

    def run_kmeans(self, x):
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)
        centroids, assign = kmeans(x, self.k, iters=self.kmeans_iters)
        return F.normalize(centroids, p=2, dim=1), assign

    def calculate_loss(self, interaction):
        if self.user_centroids is None:  # resumed from a checkpoint between two E-steps
            self.e_step()
        losses = super().calculate_loss(interaction)
        return losses[:-1] if self.epoch_index < self.warm_up_step else losses

    def forward(self):
        ego = self.get_ego_embeddings()
        adjacency = self._csr(self.norm_adj_mat)
        embeddings_list = _propagated_layers(ego, [adjacency] * max(self.n_layers, self.hyper_layers * 2))
        lightgcn_all_embeddings = torch.stack(embeddings_list[: self.n_layers + 1], dim=1).mean(dim=1)
        user_all_embeddings, item_all_embeddings = torch.split(lightgcn_all_embeddings, [self.n_users, self.n_items])
        return user_all_embeddings, item_all_embeddings, embeddings_list

    def ssl_layer_loss(self, current_embedding, previous_embedding, user, item):
        current_users, current_items = torch.split(current_embedding, [self.n_users, self.n_items])
        previous_users, previous_items = torch.split(previous_embedding, [self.n_users, self.n_items])
        ssl_loss_user = _view_nce_sum(current_users, previous_users, user, self.ssl_temp)
        ssl_loss_item = _view_nce_sum(current_items, previous_items, item, self.ssl_temp)
        return self.ssl_reg * (ssl_loss_user + self.alpha * ssl_loss_item)

    def ProtoNCE_loss(self, node_embedding, user, item):  # noqa: N802  (RecBole's name)
        users_all, items_all = torch.split(node_embedding, [self.n_users, self.n_items])

        def term(table, rows, centroids, assign):
            distinct, counts = torch.unique(rows, return_counts=True)
            return nce_sum(F.normalize(table[distinct]), centroids[assign[distinct]], centroids, self.ssl_temp, counts)

        return self.proto_reg * (term(users_all, user, self.user_centroids, self.user_2cluster)
                                 + term(items_all, item, self.item_centroids, self.item_2cluster))

    def scoring_embeddings(self):
        users, items, _ = self.forward()
        return users, items
