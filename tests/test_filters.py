"""The training-free graph filters (models/filters.py) against dense transcriptions of their papers'
formulas on a tiny matrix (numpy, full SVD), and end to end through the harness."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.special import expit

from specbench.run import run
from specbench_models.filters import homophily_ratio
from tests.helpers import FakeDataset, build_model

N_USERS, N_ITEMS = 14, 11


@pytest.fixture(scope="module")
def tiny() -> np.ndarray:
    """A random binary user x item matrix; the last item has no training interaction (test-only)."""
    rng = np.random.default_rng(3)
    r = (rng.random((N_USERS, N_ITEMS)) < 0.35).astype(float)
    r[:, -1] = 0.0
    r[np.arange(N_USERS), rng.integers(0, N_ITEMS - 1, N_USERS)] = 1.0  # every user has a training item
    return r


def build(model: str, r: np.ndarray, **settings):
    """``model`` on the matrix ``r`` (users x items without padding: RecBole ids u + 1, i + 1)."""
    return build_model(model, FakeDataset.from_matrix(r), **settings)


def model_scores(model, n_users: int) -> np.ndarray:
    """full_sort_predict for every real user, padding column dropped; predict agrees on sampled pairs."""
    from recbole.data.interaction import Interaction
    users = torch.arange(1, n_users + 1)
    full = model.full_sort_predict(Interaction({"user_id": users})).view(n_users, -1).double().numpy()
    pick_u, pick_i = torch.tensor([1, 3, 3, n_users]), torch.tensor([2, 1, 5, 4])
    pairs = model.predict(Interaction({"user_id": pick_u, "item_id": pick_i})).double().numpy()
    np.testing.assert_allclose(pairs, full[pick_u - 1, pick_i], rtol=1e-6)
    return full[:, 1:]


# ---- dense transcriptions, written from the papers' equations ----

def inv_power(d, p):
    d = np.asarray(d, dtype=float)
    return np.array([x ** -p if x > 0 else 0.0 for x in d])


def dense_pieces(r, k):
    """R̃ = D_U^-½ R D_I^-½: the item filter R̃ᵀR̃ and the ideal low-pass D_I^-½ V_k V_kᵀ D_I^½ (full SVD)."""
    du, di = inv_power(r.sum(1), 0.5), inv_power(r.sum(0), 0.5)
    rn = np.diag(du) @ r @ np.diag(di)
    _, _, vt = np.linalg.svd(rn)
    vk = vt[:k].T
    ideal = np.diag(di) @ vk @ vk.T @ np.diag(np.sqrt(r.sum(0)))
    return rn.T @ rn, ideal


def taylor_step(a, h, order):
    """The one-step propagator of a fixed-step solver on dy/dt = y A: I + hA (Euler), Σ_{j≤4} (hA)^j / j! (RK4)."""
    out, term = np.eye(len(a)), np.eye(len(a))
    for j in range(1, order + 1):
        term = term @ (h * a) / j
        out = out + term
    return out


def solve_points(y0, a, t_end, steps, solver):
    step = taylor_step(a, t_end / steps, 1 if solver == "euler" else 4)
    points, y = [], y0
    for _ in range(steps):
        y = y @ step
        points.append(y)
    return points


@pytest.mark.parametrize("solver", ["gram", "lowrank"])
def test_gfcf_equals_its_formula(tiny, solver):
    k, alpha = 4, 0.7
    p, ideal = dense_pieces(tiny, k)
    expected = tiny @ (p + alpha * ideal)  # Shen et al.: the GF-CF filter on the raw training rows
    got = model_scores(build("GFCF", tiny, k=k, alpha=alpha, svd_solver=solver), N_USERS)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert np.all(got[:, -1] == 0)  # an item without training interactions gets no score, not NaN


@pytest.mark.parametrize("settings", [
    # BSPM-EM: two Euler blurring steps, RK4 sharpening in two steps, time points averaged
    dict(merge="early", t_point_combination=True, solver_blr="euler", T_b=1.0, K_b=2, solver_idl="euler",
         T_idl=1.0, K_idl=1, solver_shr="rk4", T_s=2.5, K_s=2, idl_beta=0.2),
    # BSPM-LM: RK4 everywhere, ideal process added after sharpening
    dict(merge="late", t_point_combination=False, solver_blr="rk4", T_b=0.8, K_b=1, solver_idl="rk4",
         T_idl=1.5, K_idl=2, solver_shr="euler", T_s=1.2, K_s=3, idl_beta=0.3),
])
def test_bspm_equals_its_processes(tiny, settings):
    k = 4
    p, ideal = dense_pieces(tiny, k)
    eye = np.eye(N_ITEMS)
    blurred = solve_points(tiny, p - eye, settings["T_b"], settings["K_b"], settings["solver_blr"])
    idl = solve_points(tiny, ideal - eye, settings["T_idl"], settings["K_idl"], settings["solver_idl"])[-1]
    beta = settings["idl_beta"]
    start = blurred[-1] + beta * idl if settings["merge"] == "early" else blurred[-1]
    sharpened = solve_points(start, -p, settings["T_s"], settings["K_s"], settings["solver_shr"])
    out = np.mean(blurred + sharpened, axis=0) if settings["t_point_combination"] else sharpened[-1]
    expected = out + beta * idl if settings["merge"] == "late" else out
    got = model_scores(build("BSPM", tiny, k=k, **settings), N_USERS)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_bspm_with_one_unit_euler_step_and_no_sharpening_time_is_gfcf(tiny):
    # One Euler step of size 1 turns the blurring and ideal processes into GF-CF's two filters (the
    # official BSPM_TORCH computes them so): sharpening over a vanishing time leaves GF-CF's scores.
    gfcf = model_scores(build("GFCF", tiny, k=4, alpha=0.3), N_USERS)
    bspm = model_scores(build("BSPM", tiny, k=4, idl_beta=0.3, T_s=1e-9), N_USERS)
    np.testing.assert_allclose(bspm, gfcf, rtol=1e-4, atol=1e-5)


def homophily_by_loops(r):
    """The official definition, row by row: among the pairs of u's items, the share also co-interacted
    by another user (u's own column removed before counting)."""
    out = []
    for u in range(r.shape[0]):
        items = np.flatnonzero(r[u])
        if len(items) <= 1:
            out.append(0.0)
            continue
        others = r[:, items].T.copy()
        others[:, u] = 0
        connect = others @ others.T
        off_diagonal = np.count_nonzero(connect) - np.count_nonzero(np.diag(connect))
        out.append(off_diagonal / (len(items) * (len(items) - 1)))
    return np.array(out)


def test_homophily_ratio_by_hand():
    r = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 1], [0, 0, 1]], dtype=float))
    # user 0: its pair {0, 1} is also user 1's -> 1; user 1: of {0,1}, {0,2}, {1,2} only {0,1} is
    # shared (with user 0) -> 1/3; user 2 has one item -> 0. Items: 0 and 1 share users {0, 1} with
    # each other -> 1 (the other user's second item: 1, resp. 0); item 2's users {1, 2} share no other item -> 0.
    np.testing.assert_allclose(homophily_ratio(r), [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(homophily_ratio(r.T.tocsr()), [1.0, 1.0, 0.0])


@pytest.mark.parametrize("solver", ["gram", "lowrank"])
def test_sgfcf_equals_the_official_formula(tiny, solver):
    k, beta1, beta2, alpha, eps, gamma = 5, 0.7, 1.6, 1.5, 0.4, 1.3
    du, di = inv_power(tiny.sum(1) + alpha, eps), inv_power(tiny.sum(0) + alpha, eps)
    rn = du[:, None] * tiny * di[None, :]                                     # G²N
    u, s, vt = np.linalg.svd(rn)
    value = s[:k] / s.max()
    h_user, h_item = homophily_by_loops(tiny), homophily_by_loops(tiny.T)
    assert np.ptp(h_user) > 0 and np.ptp(h_item) > 0  # the fixture exercises the IGF mapping
    w = lambda h: beta1 + (beta2 - beta1) * (h - h.min()) / (h.max() - h.min())  # noqa: E731
    low = (u[:, :k] * value ** w(h_user)[:, None]) @ (vt[:k].T * value ** w(h_item)[:, None]).T
    high = rn @ rn.T @ rn
    expected = expit(low / low.sum(1, keepdims=True) + gamma * high / high.sum(1, keepdims=True))
    got = model_scores(build("SGFCF", tiny, k=k, beta_1=beta1, beta_2=beta2, alpha=alpha, eps=eps,
                             gamma=gamma, svd_solver=solver), N_USERS)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_sgfcf_without_igf_weights_each_side_by_sigma_to_beta(tiny):
    # sgfcf_wo_igf.py: one exponent β for every user and item, i.e. the low part U diag(σ̂^2β) Vᵀ.
    k, beta, gamma = 5, 1.3, 0.5
    rn = np.diag(inv_power(tiny.sum(1), 0.5)) @ tiny @ np.diag(inv_power(tiny.sum(0), 0.5))
    u, s, vt = np.linalg.svd(rn)
    low = u[:, :k] @ np.diag((s[:k] / s[0]) ** (2 * beta)) @ vt[:k]
    high = rn @ rn.T @ rn
    expected = expit(low / low.sum(1, keepdims=True) + gamma * high / high.sum(1, keepdims=True))
    got = model_scores(build("SGFCF", tiny, k=k, beta_1=beta, beta_2=beta, gamma=gamma), N_USERS)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_more_singular_vectors_than_the_data_has_is_named(tiny):
    with pytest.raises(ValueError, match=r"k = 40 singular vectors .* 14 users x 11 items.*k <= 11"):
        build("GFCF", tiny, k=40)


# ---- end to end: the harness evaluates them once, and they beat popularity ----

SMALL = {"GFCF": {"k": 32}, "BSPM": {"k": 32}, "SGFCF": {"k": 32}}


@pytest.mark.parametrize("model", sorted(SMALL))
def test_filter_runs_once_through_the_harness_and_beats_popularity(model, tmp_path, spec_for, popularity_metrics):
    record = run(spec_for(model, **SMALL[model]), tmp_path / "runs" / f"{model}.json")
    assert [h["epoch"] for h in record["history"]] == [0] and record["epochs"] == []
    assert record["final"]["spectrum"] == {} and record["timing"]["setup_seconds"] > 0
    metrics = record["final"]["metrics"]
    assert metrics["ndcg@20"] > popularity_metrics["ndcg@20"], (metrics["ndcg@20"], popularity_metrics["ndcg@20"])
