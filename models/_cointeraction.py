"""Which pairs of a training batch share a neighbour: the mask of DirectSpec+'s τ0/τ1 form.

Adaptive DirectSpec+ (Peng et al., arXiv 2406.12032; directspec_*_adaptive.py) weighs the pair
(a, b) of a batch with τ0 when a and b co-interact and with τ1 otherwise: for users,
(R Rᵀ)_ab > 0 (they share a training item); for items, (Rᵀ R)_ab > 0 (they share a user). A row
without training neighbours does not co-interact even with itself (its diagonal gets τ1, as in
the reference). The reference precomputes dense |U|x|U| and |I|x|I| matrices; here only the
B x B block of the batch is formed, from the sparse R, by one of two equivalent paths:

- ``sparse`` (default on CPU): scipy's product R_b R_bᵀ of the batch rows R_b (sparse B x |I|).
- ``dense`` (default on CUDA): a B x (|I| + 1) 0/1 matrix filled by one scatter from each row's
  neighbours padded to the largest degree (padding hits the extra column, which is dropped),
  then one matmul. Every shape is fixed when the table is built, so no step reads a size back
  from the GPU (no host synchronisation); the cost is B x max-degree indices and B x |I| floats.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

PATHS = ("auto", "sparse", "dense")


class Neighbours:
    """The rows of one binary incidence matrix (users -> items, or items -> users)."""

    def __init__(self, matrix: sp.spmatrix):
        m = sp.csr_matrix(matrix, dtype=np.float32)
        m.sum_duplicates()
        m.data[:] = 1.0
        self.csr, self.n_cols = m, m.shape[1]
        degree = np.diff(m.indptr)
        self.max_degree = int(degree.max()) if len(degree) else 0
        self.indptr = torch.as_tensor(m.indptr, dtype=torch.long)
        # One sentinel past the end: padded positions read it and land in the dropped column.
        self.indices = torch.as_tensor(np.append(m.indices, self.n_cols), dtype=torch.long)
        self.offsets = torch.arange(self.max_degree, dtype=torch.long)

    def to(self, device) -> "Neighbours":
        self.indptr, self.indices, self.offsets = (t.to(device) for t in (self.indptr, self.indices, self.offsets))
        return self

    def shares_sparse(self, ids: torch.Tensor) -> torch.Tensor:
        """B x B bool, (R_b R_bᵀ) > 0 by a sparse product on the host."""
        rows = self.csr[ids.detach().cpu().numpy()]
        return torch.from_numpy((rows @ rows.T).toarray() > 0).to(ids.device)

    def shares_dense(self, ids: torch.Tensor) -> torch.Tensor:
        """B x B bool, (M Mᵀ) > 0 with M the dense 0/1 batch rows; sync-free on CUDA."""
        if ids.device != self.indptr.device:
            self.to(ids.device)
        start = self.indptr[ids]
        degree = self.indptr[ids + 1] - start
        position = start.unsqueeze(1) + self.offsets
        position = torch.where(self.offsets < degree.unsqueeze(1), position, len(self.indices) - 1)
        member = torch.zeros(len(ids), self.n_cols + 1, device=ids.device)
        member.scatter_(1, self.indices[position], 1.0)
        member = member[:, : self.n_cols]
        return (member @ member.t()) > 0

    def shares(self, ids: torch.Tensor, path: str = "auto") -> torch.Tensor:
        if path == "auto":
            path = "dense" if ids.device.type == "cuda" else "sparse"
        return self.shares_dense(ids) if path == "dense" else self.shares_sparse(ids)


class CoInteraction:
    """Per-batch co-interaction masks of users and of items, from the training matrix R (|U| x |I|)."""

    def __init__(self, interactions: sp.spmatrix, path: str = "auto"):
        if path not in PATHS:
            raise ValueError(f"co-interaction path must be one of {PATHS}, got {path!r}")
        r = sp.csr_matrix(interactions)
        self.path = path
        self.users = Neighbours(r)
        self.items = Neighbours(r.T)

    def to(self, device) -> "CoInteraction":
        self.users.to(device), self.items.to(device)
        return self

    def user_pairs(self, users: torch.Tensor) -> torch.Tensor:
        """B x B bool: users a and b share at least one training item."""
        return self.users.shares(users, self.path)

    def item_pairs(self, items: torch.Tensor) -> torch.Tensor:
        """B x B bool: items a and b share at least one training user."""
        return self.items.shares(items, self.path)
