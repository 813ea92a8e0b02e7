"""Shared encoders for plugin models: MF (identity) and LightGCN propagation.

LightGCN (He et al., SIGIR 2020), as the DirectSpec reference code uses it: [H_U; H_I] = S E with
S = Σ_{k=0..K} Ã^k, Ã = D^{-1/2} A D^{-1/2}, A = [[0, R], [Rᵀ, 0]]. The sum is computed by K
sparse products; no dense (|U|+|I|)² matrix is ever formed. Methods never re-implement this.

Methods that need the layers themselves (SimGCL's per-layer noise, XSimGCL's cross-layer
contrast, AFDGCF's per-layer correlation penalty, a mean instead of a sum over layers) call
``Encoder.layers(hook)``: the list [E⁽⁰⁾, …, E⁽ᴷ⁾] with E⁽ᵏ⁾ = hook(k, Ã E⁽ᵏ⁻¹⁾), so a change made
to one layer's output is what the next layer propagates.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

BACKBONES = ("mf", "lightgcn")
# torch marks CSR tensors "beta" with a warning on first use; the products used here are stable.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state", category=UserWarning)
INITS = ("glorot", "xavier_uniform", "normal", "xavier_normal")


def normalized_adjacency(interactions: sp.spmatrix, n_users: int, n_items: int) -> torch.Tensor:
    """Ã = D^{-1/2} A D^{-1/2} of the user-item bipartite graph as a sparse COO tensor (binary R)."""
    r = sp.csr_matrix(interactions, shape=(n_users, n_items), dtype=np.float32)
    r.data[:] = 1.0  # the csr constructor summed duplicate rows: count each pair once
    a = sp.bmat([[None, r], [r.T, None]], format="coo", dtype=np.float32)
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(deg)
    nz = deg > 0
    inv_sqrt[nz] = deg[nz] ** -0.5
    values = inv_sqrt[a.row] * a.data * inv_sqrt[a.col]
    idx = torch.as_tensor(np.vstack([a.row, a.col]), dtype=torch.long)
    return torch.sparse_coo_tensor(idx, torch.as_tensor(values, dtype=torch.float32), a.shape,
                                   check_invariants=False).coalesce()  # indices from scipy: valid


class _SymmetricSpMM(torch.autograd.Function):
    """y = Ã x for a symmetric sparse Ã (CSR); the gradient w.r.t. x is Ãᵀ g = Ã g.

    torch's own sparse backward transposes and coalesces Ã on every call (a host sync per layer
    per step on CUDA, and twice the CPU time); symmetry makes both unnecessary.
    """

    @staticmethod
    def forward(ctx, adjacency, x):
        ctx.adjacency = adjacency
        return adjacency @ x

    @staticmethod
    def backward(ctx, grad):
        return None, ctx.adjacency @ grad


def propagate(adjacency: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Ã x for the symmetric normalised adjacency (sparse CSR), differentiable in x."""
    return _SymmetricSpMM.apply(adjacency, x)


def glorot_uniform_(weight: torch.Tensor) -> torch.Tensor:
    """U(±sqrt(6 / (rows + cols))) over the whole table, as the reference initialises each table."""
    bound = math.sqrt(6.0 / (weight.shape[0] + weight.shape[1]))
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


class Encoder(nn.Module):
    """User and item representations from free embeddings, through MF or LightGCN.

    ``init``: ``glorot`` (the DirectSpec reference; LightGCN initialises one joint table) or
    ``xavier_uniform`` (each table on its own: RecBole's xavier_uniform_initialization, SELFRec,
    the SSM and AFDGCF code) or ``normal`` (N(0, 0.1²), LightGCN-PyTorch) or ``xavier_normal``
    (RecBole's default).
    """

    def __init__(self, n_users: int, n_items: int, dim: int, interactions: sp.spmatrix, backbone: str = "mf",
                 n_layers: int = 3, init: str = "glorot"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        self.n_users, self.n_items, self.backbone, self.n_layers = n_users, n_items, backbone, int(n_layers)
        self.user_embedding = nn.Embedding(n_users, dim)
        self.item_embedding = nn.Embedding(n_items, dim)
        self._init(init)
        if backbone == "lightgcn":
            self.register_buffer("adjacency", normalized_adjacency(interactions, n_users, n_items), persistent=False)
        self._csr = None  # (the COO buffer it was made from, its CSR copy): CSR products are ~3x faster

    def adjacency_csr(self) -> torch.Tensor:
        """Ã in CSR on the buffer's device, remade when .to() replaced the (COO) buffer."""
        if self._csr is None or self._csr[0] is not self.adjacency:
            self._csr = (self.adjacency, self.adjacency.to_sparse_csr())
        return self._csr[1]

    def __getstate__(self):
        # copy.deepcopy and pickle cannot copy CSR tensors; the cache is rebuilt on first use.
        return {**super().__getstate__(), "_csr": None}

    def _init(self, init: str):
        u, i = self.user_embedding.weight, self.item_embedding.weight
        if init == "glorot":
            if self.backbone == "lightgcn":
                joint = glorot_uniform_(torch.empty(u.shape[0] + i.shape[0], u.shape[1]))
                with torch.no_grad():
                    u.copy_(joint[: u.shape[0]]), i.copy_(joint[u.shape[0]:])
            else:
                glorot_uniform_(u), glorot_uniform_(i)
        elif init == "xavier_uniform":
            nn.init.xavier_uniform_(u), nn.init.xavier_uniform_(i)
        elif init == "normal":
            nn.init.normal_(u, std=0.1), nn.init.normal_(i, std=0.1)
        elif init == "xavier_normal":
            nn.init.xavier_normal_(u), nn.init.xavier_normal_(i)
        else:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")

    def layers(self, hook=None) -> list[torch.Tensor]:
        """Per-layer representations of all nodes, users then items: [E⁽⁰⁾, E⁽¹⁾, …, E⁽ᴷ⁾].

        E⁽⁰⁾ = [E_U; E_I]; E⁽ᵏ⁾ = hook(k, Ã E⁽ᵏ⁻¹⁾) for k = 1..K (hook: identity by default). What
        ``hook`` returns is both layer k and the input of layer k + 1 (SimGCL perturbs each layer's
        output this way). MF has no propagation: [E⁽⁰⁾] only, and ``hook`` is never called.
        """
        e = torch.cat([self.user_embedding.weight, self.item_embedding.weight])
        out = [e]
        if self.backbone == "lightgcn":
            for k in range(1, self.n_layers + 1):
                e = propagate(self.adjacency_csr(), e)
                if hook is not None:
                    e = hook(k, e)
                out.append(e)
        return out

    def split(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(users, items) rows of a stacked node matrix."""
        return e[: self.n_users], e[self.n_users:]

    def forward(self, hook=None) -> tuple[torch.Tensor, torch.Tensor]:
        """All users' and all items' representations (H_U, H_I) = S E, split; Σ_k E⁽ᵏ⁾ on LightGCN."""
        layers = self.layers(hook)
        acc = layers[0]
        for h in layers[1:]:
            acc = acc + h
        return self.split(acc)

    def encode(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Representations of a batch; MF avoids materialising every row."""
        if self.backbone == "mf":
            return self.user_embedding(users), self.item_embedding(items)
        hu, hi = self.forward()
        return hu[users], hi[items]


class InnerProductScores:
    """``predict`` and ``full_sort_predict`` as inner products of ``scoring_embeddings()``, the raw
    (users, items) representations every embedding model here scores with (a mixin placed before
    GeneralRecommender). In evaluation (eval mode, no autograd) they are computed once and reused
    across user blocks until a parameter changes: LightGCN would otherwise propagate once per block.
    """

    def _scoring(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training or torch.is_grad_enabled():
            return self.scoring_embeddings()
        key = tuple((id(p), p._version) for p in self.parameters())
        cache = getattr(self, "_scoring_cache", None)
        if cache is None or cache[0] != key:
            cache = self._scoring_cache = (key, self.scoring_embeddings())
        return cache[1]

    def predict(self, interaction):
        hu, hi = self._scoring()
        return (hu[interaction[self.USER_ID]] * hi[interaction[self.ITEM_ID]]).sum(1)

    def full_sort_predict(self, interaction):
        hu, hi = self._scoring()
        return (hu[interaction[self.USER_ID]] @ hi.t()).view(-1)
