"""Training-free spectral graph filters for collaborative filtering: GF-CF, BSPM and SGFCF.

All three score a user u from its binary training row r_u through filters of the normalised
interaction matrix R̃ = D_U^-ε R D_I^-ε (ε = 1/2 for GF-CF and BSPM); nothing is trained. The
model is fitted in __init__ (degrees, a truncated SVD of R̃) and scores blocks of users in
full_sort_predict. The item-item filter R̃ᵀR̃ is never formed: r R̃ᵀR̃ is computed as (r R̃ᵀ) R̃,
two sparse-dense products per block of users, so memory stays O(nnz + (|U| + |I|) k + block).

- GF-CF: Shen et al., "How Powerful is Graph Convolution for Recommendation?", CIKM 2021
  (arXiv 2108.07567), the GF-CF filter s_u = r_u (R̃ᵀR̃ + α D_I^-½ V_k V_kᵀ D_I^½): the linear
  filter plus α times the ideal low-pass filter, V_k the top-k right singular vectors of R̃
  (official code: yshenaw/GF_CF, Table3&4/model.py, class GF_CF).
- BSPM: Choi et al., "Blurring-Sharpening Process Models for Collaborative Filtering", SIGIR 2023
  (arXiv 2211.09324; official code jeongwhanchoi/BSPM, bspm/model.py, class BSPM): blurring
  dr/dt = r(R̃ᵀR̃ − I) and the ideal low-pass process dr/dt = r(D_I^-½ V_k V_kᵀ D_I^½ − I) from
  r(0) = r_u, then sharpening dr/dt = −r R̃ᵀR̃, merged early (EM: sharpen blur + β·ideal) or late
  (LM: sharpen blur, then add β·ideal); fixed-step Euler or RK4 (no torchdiffeq), optionally
  averaging the solver's time points.
- SGFCF: Peng, Liu, Sugiyama, Mine, "How Powerful is Graph Filtering for Recommendation",
  KDD 2024 (arXiv 2406.08827; official code tanatosuu/sgfcf, sgfcf.py): generalised graph
  normalisation (G²N) D = (d + α)^-ε, individualised graph filter (IGF) on the top-k singular
  values σ̂ = σ/σ_max of R̃:
  low_u = Σ_k U_uk σ̂_k^β_u σ̂_k^β_i V_ik, β_u (β_i) mapped linearly onto [β1, β2] from the
  homophily ratio of the user (item); s_u = sigmoid(low_u / Σ low_u + γ · h_u / Σ h_u) with the
  non-low-frequency term h_u = r̃_u R̃ᵀR̃.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType

# "auto" SVD on the CPU: exact top-k eigenpairs of the smaller Gram matrix up to this side (1.1 GB float64).
GRAM_MAX_SIDE = 12_000


# ---------------------------------------------------------------- pieces shared by the three methods

def binary_training_matrix(dataset) -> sp.csr_matrix:
    """The training matrix (RecBole's padding row/column 0 included), duplicates counted once."""
    r = dataset.inter_matrix(form="csr").astype(np.float64)
    r.sum_duplicates()
    r.data[:] = 1.0
    r.eliminate_zeros()
    return r


def degree_power(degrees: np.ndarray, eps: float, alpha: float = 0.0) -> np.ndarray:
    """(d + α)^-ε, with 0 where d + α = 0 (a padding row or an item seen only in test)."""
    base = np.asarray(degrees, dtype=np.float64).ravel() + alpha
    out = np.zeros_like(base)
    out[base > 0] = base[base > 0] ** -eps
    return out


def normalise(r: sp.csr_matrix, eps: float = 0.5, alpha: float = 0.0):
    """R̃ = D_U R D_I with D = (d + α)^-ε (SGFCF's G²N; ε = ½, α = 0 is GF-CF's symmetric one)."""
    du = degree_power(r.sum(1), eps, alpha)
    di = degree_power(r.sum(0), eps, alpha)
    return (sp.diags(du) @ r @ sp.diags(di)).tocsr(), du, di


def top_singular(rn: sp.csr_matrix, k: int, solver: str = "auto", device="cpu", oversample: int = 200,
                 niter: int = 30):
    """The top-k singular triplets (U, σ, V) of R̃ as float64 numpy arrays, σ descending.

    ``gram``: exact, from the top-k eigenpairs of the smaller of R̃R̃ᵀ / R̃ᵀR̃ (dense, that side
    squared; LAPACK on the CPU). ``lowrank``: torch.svd_lowrank on ``device`` (randomised,
    q = k + oversample, niter power iterations: SGFCF's official call), float32. ``auto``: gram on
    the CPU when the smaller side is at most GRAM_MAX_SIDE, else lowrank.
    """
    import scipy.linalg
    n, m = rn.shape  # RecBole's padding row and column 0 included: the rank is at most min(n, m) - 1
    if not 1 <= k <= min(n, m) - 1:
        raise ValueError(f"k = {k} singular vectors asked for, but the training matrix has {n - 1} users x "
                         f"{m - 1} items: use 1 <= k <= {min(n, m) - 1}")
    device = torch.device(device)
    if solver == "auto":
        solver = "gram" if device.type == "cpu" and min(n, m) <= GRAM_MAX_SIDE else "lowrank"
    if solver == "gram":
        users_side = n <= m
        gram = (rn @ rn.T if users_side else rn.T @ rn).toarray()
        evals, evecs = scipy.linalg.eigh(gram, subset_by_index=[len(gram) - k, len(gram) - 1], driver="evr")
        evals, left = evals[::-1], evecs[:, ::-1]
        s = np.sqrt(np.clip(evals, 0.0, None))
        inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
        other = (rn.T @ left if users_side else rn @ left) * inv  # the other side: R̃ᵀU σ⁻¹ (or R̃V σ⁻¹)
        return (left, s, other) if users_side else (other, s, left)
    if solver == "lowrank":
        a = _sparse(rn).to(device)
        u, s, v = torch.svd_lowrank(a, q=min(k + oversample, n, m), niter=niter)
        return tuple(x.double().cpu().numpy() for x in (u[:, :k], s[:k], v[:, :k]))
    raise ValueError(f"svd_solver must be one of auto, gram, lowrank; got {solver!r}")


def homophily_ratio(r: sp.csr_matrix, block: int = 2048) -> np.ndarray:
    """SGFCF's homophily ratio (IGF), per row u: the share of ordered pairs of u's columns (a ≠ b) that some other
    row also has both of, i.e. #{a ≠ b in N(u): C_ab ≥ 2} / (n_u (n_u − 1)) with C = RᵀR; 0 if n_u ≤ 1."""
    r = r.astype(np.int32)
    co = (r.T @ r).tocsr()
    co.setdiag(0)
    co.data = (co.data >= 2).astype(np.int32)
    co.eliminate_zeros()
    n_u = np.asarray(r.sum(1)).ravel().astype(np.float64)
    pairs = np.zeros(r.shape[0])
    for start in range(0, r.shape[0], block):
        rows = r[start:start + block]
        pairs[start:start + block] = np.asarray((rows @ co).multiply(rows).sum(1)).ravel()
    return np.divide(pairs, n_u * (n_u - 1), out=np.zeros_like(pairs), where=n_u > 1)


def integrate(f, y0: torch.Tensor, t_end: float, steps: int, method: str) -> list[torch.Tensor]:
    """Fixed-step solution of dy/dt = f(y) on [0, t_end]: y at t_1..t_K (K = steps).

    For the linear ODEs here every explicit 4-stage 4th-order Runge-Kutta method (classic, or the
    3/8 rule torchdiffeq's "rk4" uses) gives the same step, y (I + hA + h²A²/2 + h³A³/6 + h⁴A⁴/24).
    """
    h, y, out = t_end / steps, y0, []
    for _ in range(steps):
        if method == "euler":
            y = y + h * f(y)
        elif method == "rk4":
            k1 = f(y)
            k2 = f(y + 0.5 * h * k1)
            k3 = f(y + 0.5 * h * k2)
            k4 = f(y + h * k3)
            y = y + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        else:
            raise ValueError(f"ODE solver must be euler or rk4, got {method!r}")
        out.append(y)
    return out


def _sparse(matrix: sp.spmatrix) -> torch.Tensor:
    coo = matrix.tocoo()
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=True).coalesce()


class _SpectralFilter(GeneralRecommender):
    """Shared plumbing: training rows as CSR buffers, the linear filter r ↦ (r R̃ᵀ) R̃, scoring API."""

    input_type = InputType.POINTWISE
    backbones = ("filter",)  # no backbone: the training-free filters are a group of their own

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.r = binary_training_matrix(dataset)

    def _keep_rows(self, name: str, matrix: sp.csr_matrix) -> None:
        """Keep a CSR matrix as three buffers, to cut dense blocks of rows out of on any device."""
        matrix = matrix.tocsr()
        self.register_buffer(f"{name}_indptr", torch.from_numpy(matrix.indptr.astype(np.int64)))
        self.register_buffer(f"{name}_indices", torch.from_numpy(matrix.indices.astype(np.int64)))
        self.register_buffer(f"{name}_data", torch.from_numpy(matrix.data.astype(np.float32)))

    def _rows(self, name: str, users: torch.Tensor) -> torch.Tensor:
        """Dense rows ``users`` (b x |I|) of a matrix kept with _keep_rows."""
        indptr, indices, data = (getattr(self, f"{name}_{p}") for p in ("indptr", "indices", "data"))
        users = users.long()
        starts, counts = indptr[users], indptr[users + 1] - indptr[users]
        row = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
        offsets = torch.cumsum(counts, 0) - counts
        pos = torch.arange(int(counts.sum()), device=users.device) - offsets[row] + starts[row]
        out = torch.zeros(len(users), self.n_items, device=users.device)
        out[row, indices[pos]] = data[pos]
        return out

    def _keep_filter(self, rn: sp.csr_matrix) -> None:
        self.register_buffer("rn", _sparse(rn))      # R̃   (|U| x |I|)
        self.register_buffer("rn_t", _sparse(rn.T))  # R̃ᵀ  (|I| x |U|)

    def linear_filter(self, x: torch.Tensor) -> torch.Tensor:
        """x R̃ᵀR̃ for a block of rows x, as (x R̃ᵀ) R̃ (no |I| x |I| matrix)."""
        t = torch.sparse.mm(self.rn, x.t().contiguous())          # R̃ xᵀ        (|U| x b)
        return torch.sparse.mm(self.rn_t, t).t()                   # (R̃ᵀ R̃ xᵀ)ᵀ  (b x |I|)

    def scores(self, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scoring_embeddings(self):
        return None  # a filter, not an embedding model: no spectrum to diagnose

    def calculate_loss(self, interaction):
        raise RuntimeError(f"{type(self).__name__} is training-free: it is fitted in __init__ and never trained")

    @torch.no_grad()
    def predict(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        unique, inverse = torch.unique(users, return_inverse=True)
        return self.scores(unique)[inverse, items]

    @torch.no_grad()
    def full_sort_predict(self, interaction):
        return self.scores(interaction[self.USER_ID]).reshape(-1)


class _IdealLowPass(_SpectralFilter):
    """GF-CF's ideal low-pass filter x ↦ x D_I^-½ V_k V_kᵀ D_I^½ (V_k: top-k right singular vectors of R̃)."""

    def _fit_ideal(self, rn: sp.csr_matrix, di_inv_sqrt: np.ndarray, k: int, solver: str) -> None:
        _, _, v = top_singular(rn, k, solver, self.device)
        di_sqrt = np.divide(1.0, di_inv_sqrt, out=np.zeros_like(di_inv_sqrt), where=di_inv_sqrt > 0)
        self.register_buffer("ideal_in", torch.from_numpy(di_inv_sqrt[:, None] * v).float())       # D_I^-½ V_k
        self.register_buffer("ideal_out", torch.from_numpy((di_sqrt[:, None] * v).T.copy()).float())  # V_kᵀ D_I^½

    def ideal_filter(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.ideal_in) @ self.ideal_out


# ---------------------------------------------------------------------------------------- methods

class GFCF(_IdealLowPass):
    """GF-CF (Shen et al., CIKM 2021): s_u = r_u R̃ᵀR̃ + α r_u D_I^-½ V_k V_kᵀ D_I^½,
    R̃ = D_U^-½ R D_I^-½. α = 0 skips the SVD (the official setting on Amazon-book)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.alpha = float(config["alpha"])
        rn, _, di = normalise(self.r)
        self._keep_rows("r", self.r)
        self._keep_filter(rn)
        if self.alpha > 0:
            self._fit_ideal(rn, di, int(config["k"]), config["svd_solver"])

    def scores(self, users):
        x = self._rows("r", users)
        out = self.linear_filter(x)
        if self.alpha > 0:
            out = out + self.alpha * self.ideal_filter(x)
        return out


class BSPM(_IdealLowPass):
    """BSPM (Choi et al., SIGIR 2023), both merges (BSPM-EM and BSPM-LM):

    blur  b(t): db/dt = b (R̃ᵀR̃ − I),                     b(0) = r_u, t ∈ [0, T_b], K_b steps
    ideal i(t): di/dt = i (D_I^-½ V_k V_kᵀ D_I^½ − I),      i(0) = r_u, t ∈ [0, T_idl], K_idl steps
    sharp s(t): ds/dt = −s R̃ᵀR̃,  t ∈ [0, T_s], K_s steps, s(0) = b(T_b) + β i(T_idl) (EM, early merge)
                or s(0) = b(T_b) (LM, late merge: β i(T_idl) is added to the result).
    Result: s(T_s), or with t_point_combination the mean of b(t_1..t_Kb) and s(t_1..t_Ks).
    With one Euler step of size 1 the blur and ideal processes are GF-CF's two filters.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.idl_beta = float(config["idl_beta"])
        self.merge = config["merge"]
        self.t_point_combination = bool(config["t_point_combination"])
        self.blur = (float(config["T_b"]), int(config["K_b"]), config["solver_blr"])
        self.idl = (float(config["T_idl"]), int(config["K_idl"]), config["solver_idl"])
        self.sharpen = (float(config["T_s"]), int(config["K_s"]), config["solver_shr"])
        rn, _, di = normalise(self.r)
        self._keep_rows("r", self.r)
        self._keep_filter(rn)
        if self.idl_beta > 0:
            self._fit_ideal(rn, di, int(config["k"]), config["svd_solver"])

    def scores(self, users):
        x = self._rows("r", users)
        blurred = integrate(lambda y: self.linear_filter(y) - y, x, *self.blur)
        ideal = integrate(lambda y: self.ideal_filter(y) - y, x, *self.idl)[-1] if self.idl_beta > 0 else 0.0
        start = blurred[-1] + self.idl_beta * ideal if self.merge == "early" else blurred[-1]
        sharpened = integrate(lambda y: -self.linear_filter(y), start, *self.sharpen)
        out = torch.stack(blurred + sharpened).mean(0) if self.t_point_combination else sharpened[-1]
        return out + self.idl_beta * ideal if self.merge == "late" else out


class SGFCF(_SpectralFilter):
    """SGFCF (Peng et al., KDD 2024; as coded in tanatosuu/sgfcf sgfcf.py):

    R̃ = (D_U + α)^-ε R (D_I + α)^-ε (G²N); top-k SVD R̃ ≈ U diag(σ) Vᵀ, σ̂ = σ / σ_1;
    low(u, i) = Σ_k U_uk σ̂_k^β_u σ̂_k^β_i V_ik, with β_u = β1 + (β2 − β1)(h_u − h_min)/(h_max − h_min)
    from the homophily ratio h (likewise β_i over items; IGF); high_u = r̃_u R̃ᵀR̃;
    s_u = sigmoid(low_u / Σ_i low_ui + γ high_u / Σ_i high_ui).
    β1 = β2 = β is SGFCF without IGF (sgfcf_wo_igf.py, weight σ̂^β on each side).
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.gamma = float(config["gamma"])
        beta1, beta2 = float(config["beta_1"]), float(config["beta_2"])
        rn, _, _ = normalise(self.r, eps=float(config["eps"]), alpha=float(config["alpha"]))
        u, s, v = top_singular(rn, int(config["k"]), config["svd_solver"], self.device)
        s = s / s[0]
        if beta1 == beta2:  # no IGF: one exponent for everyone, no homophily ratios needed
            beta_u, beta_i = np.full(self.r.shape[0], beta1), np.full(self.r.shape[1], beta1)
        else:
            beta_u = individual_exponents(homophily_ratio(self.r), beta1, beta2)
            beta_i = individual_exponents(homophily_ratio(self.r.T.tocsr()), beta1, beta2)
        self.register_buffer("left", torch.from_numpy(u * s[None, :] ** beta_u[:, None]).float())    # U σ̂^β_u
        self.register_buffer("right", torch.from_numpy(v * s[None, :] ** beta_i[:, None]).float())   # V σ̂^β_i
        self._keep_rows("rn", rn)
        self._keep_filter(rn)

    def scores(self, users):
        low = self.left[users.long()] @ self.right.t()
        high = self.linear_filter(self._rows("rn", users))
        return torch.sigmoid(_row_normalised(low) + self.gamma * _row_normalised(high))


def individual_exponents(ratio: np.ndarray, beta1: float, beta2: float) -> np.ndarray:
    """IGF: the homophily ratios of the real rows (RecBole's padding row 0 left out of min/max) mapped
    linearly onto [β1, β2]; all β1 when every ratio is equal (the official code divides by zero there)."""
    real = ratio[1:]
    lo, hi = real.min(), real.max()
    if hi == lo:
        return np.full_like(ratio, beta1)
    return beta1 + (beta2 - beta1) * (ratio - lo) / (hi - lo)


def _row_normalised(x: torch.Tensor) -> torch.Tensor:
    """x / Σ_j x_j per row, leaving rows that sum to 0 (a user without training items) as they are."""
    total = x.sum(1, keepdim=True)
    return x / torch.where(total == 0, torch.ones_like(total), total)
