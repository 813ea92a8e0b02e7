"""The negative-free alignment family (models/alignment.py): PositivesOnly, DirectAU, MAWU, nCL.

Each loss is checked against the paper's formula written again here with numpy and explicit loops
on a tiny real batch, the subtle parts (MAWU's margins, nCL's coding rates) also against values
computed by hand, and every model is trained for a few epochs on the 150-user MovieLens sample.
"""

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from specbench_models import alignment as family
from tests.helpers import build_model, make_spec, read_split

USERS = [3, 7, 7, 12, 40, 3]    # RecBole ids; users 7 and 3 repeat, as they do in real batches
ITEMS = [5, 9, 9, 2, 77, 130]


# ---- transcriptions of the papers' formulas (float64, loops) ----

def unit(x):
    return x / np.sqrt((x ** 2).sum(axis=1, keepdims=True))


def np_alignment(u, i):
    """DirectAU l_align: mean over pairs of ||u_b/|u_b| - i_b/|i_b|||^2."""
    u, i = unit(u), unit(i)
    return sum(((u[b] - i[b]) ** 2).sum() for b in range(len(u))) / len(u)


def np_uniformity(x, t=2.0):
    """l_uniform: log of the average of exp(-t ||x_a - x_b||^2) over pairs a < b (Wang & Isola)."""
    x = unit(x)
    terms = [math.exp(-t * ((x[a] - x[b]) ** 2).sum()) for a in range(len(x)) for b in range(a + 1, len(x))]
    return math.log(sum(terms) / len(terms))


def np_uniformity_cells(x, t=2.0):
    """MAWU's official l_uniform (psm1206/MAWU uniformity_dot), transcribed: the cosine matrix with its
    diagonal and upper triangle set to 0 (torch.tril(., -1)), then exp(-t (2 - 2 cos)) averaged over
    all B^2 cells, then the log."""
    x = unit(x)
    cos = np.tril(x @ x.T, -1)
    return math.log(np.exp(-t * (2 - 2 * cos)).mean())


def np_margin_alignment(u, i, mu, mi):
    """MAWU l_MA: -mean cos(theta_ui + 1 - sigmoid(m_u + m_i)), theta from the clipped cosine, sum clipped to [0, pi]."""
    u, i = unit(u), unit(i)
    total = 0.0
    for b in range(len(u)):
        cos = min(max(float(u[b] @ i[b]), -1 + 1e-7), 1 - 1e-7)
        angle = math.acos(cos) + 1 - 1 / (1 + math.exp(-(mu[b] + mi[b])))
        total += -math.cos(min(max(angle, 0.0), math.pi))
    return total / len(u)


def np_rate(z, eps):
    """R(Z, eps) = 1/2 log det(I + d/(n eps^2) Z^T Z), Z with unit rows (n x d)."""
    n, d = z.shape
    return 0.5 * np.linalg.slogdet(np.eye(d) + d / (n * eps ** 2) * z.T @ z)[1]


def np_cluster_rate(z, groups, eps):
    """R_c(Z, eps | Pi) for hard clusters, computed on each cluster's own rows:
    sum_k n_k/(2n) log det(I + d/(n_k eps^2) Z_k^T Z_k)."""
    n, d = z.shape
    total = 0.0
    for g in groups:
        zk = z[g]
        total += len(g) / (2 * n) * np.linalg.slogdet(np.eye(d) + d / (len(g) * eps ** 2) * zk.T @ zk)[1]
    return total


# ---- models built on the real subsample ----

@pytest.fixture(scope="module")
def build(ml100k_small, tmp_path_factory):
    def make(model, backbone="mf", **params):
        return build_model(model, ml100k_small, backbone=backbone, work_dir=tmp_path_factory.mktemp("work"), **params)
    return make


def batch(model, users=USERS, items=ITEMS):
    from recbole.data.interaction import Interaction
    return Interaction({model.USER_ID: torch.tensor(users), model.ITEM_ID: torch.tensor(items)})


def representations(model, users=USERS, items=ITEMS):
    hu, hi = model.encoder.encode(torch.tensor(users), torch.tensor(items))
    return hu.detach().double().numpy(), hi.detach().double().numpy()


def loss_of(model, users=USERS, items=ITEMS):
    return float(model.calculate_loss(batch(model, users, items)).detach())


# ---- losses against the formulas ----

@pytest.mark.parametrize("backbone", ["mf", "lightgcn"])
def test_positives_only_loss_is_the_logistic_loss_on_raw_scores(build, backbone):
    model = build("PositivesOnly", backbone)
    u, i = representations(model)
    expected = np.mean([math.log(1 + math.exp(-float(u[b] @ i[b]))) for b in range(len(u))])
    assert loss_of(model) == pytest.approx(expected, rel=1e-5)
    normalised = build("PositivesOnly", backbone, normalize=True)  # DirectSpec with alpha = 0
    u, i = unit(u), unit(i)
    expected = np.mean([math.log(1 + math.exp(-float(u[b] @ i[b]))) for b in range(len(u))])
    assert loss_of(normalised) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("backbone", ["mf", "lightgcn"])
def test_directau_loss_is_alignment_plus_half_gamma_times_both_uniformities(build, backbone):
    model = build("DirectAU", backbone, gamma=0.7)
    u, i = representations(model)
    expected = np_alignment(u, i) + 0.7 * (np_uniformity(u) + np_uniformity(i)) / 2
    assert loss_of(model) == pytest.approx(expected, rel=1e-5)


def test_uniformity_by_hand():
    uniformity = family.uniformity
    e1, e2 = [1.0, 0.0, 0.0], [0.0, 3.0, 0.0]    # unnormalised on purpose
    # one pair of orthogonal unit vectors: ||x - y||^2 = 2, log exp(-2 * 2) = -4
    assert float(uniformity(torch.tensor([e1, e2]))) == pytest.approx(-4.0, abs=1e-6)
    # a repeated row is a pair at distance 0: log((1 + 2 exp(-4)) / 3)
    assert float(uniformity(torch.tensor([e1, e1, e2]))) == pytest.approx(math.log((1 + 2 * math.exp(-4)) / 3), abs=1e-6)
    assert float(uniformity(torch.tensor([e1]))) == 0.0   # no pair at all


def test_mawu_loss_is_margin_alignment_plus_weighted_uniformities(build):
    model = build("MAWU", gamma1=0.9, gamma2=0.2)
    with torch.no_grad():   # margins of every user and item of the batch, inside [0, 1]
        model.user_margin.weight[torch.tensor(USERS)] = torch.tensor([[0.3], [0.8], [0.8], [0.0], [1.0], [0.3]])
        model.item_margin.weight[torch.tensor(ITEMS)] = torch.tensor([[0.5], [0.1], [0.1], [0.9], [0.2], [0.6]])
    mu = model.user_margin.weight[torch.tensor(USERS), 0].double().tolist()
    mi = model.item_margin.weight[torch.tensor(ITEMS), 0].double().tolist()
    u, i = representations(model)
    expected = np_margin_alignment(u, i, mu, mi) + 0.9 * np_uniformity_cells(u) + 0.2 * np_uniformity_cells(i)
    assert loss_of(model) == pytest.approx(expected, rel=1e-5)  # the default: the official code's uniformity
    # The weights are per side: swapping them changes the loss by (0.9 - 0.2)(U_items - U_users).
    swapped = expected + 0.7 * (np_uniformity_cells(i) - np_uniformity_cells(u))
    model.gamma1, model.gamma2 = 0.2, 0.9
    assert loss_of(model) == pytest.approx(swapped, rel=1e-5)
    model.cells = False  # uniformity_mean: pairs, the paper's mean over distinct pairs
    pairs = np_margin_alignment(u, i, mu, mi) + 0.2 * np_uniformity(u) + 0.9 * np_uniformity(i)
    assert loss_of(model) == pytest.approx(pairs, rel=1e-5)


@pytest.mark.parametrize("n, t", [(2, 2.0), (7, 2.0), (300, 1.0)])
def test_cells_uniformity_equals_the_official_form_in_value_and_gradient(n, t):
    # the official uniformity_dot, written out in torch (float64) and differentiated by autograd
    gen = torch.Generator().manual_seed(n)
    a = torch.randn(n, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    got = family.uniformity(a, t, cells=True)
    x = F.normalize(b, dim=1)
    want = torch.exp(-t * (2 - 2 * torch.tril(x @ x.t(), diagonal=-1))).mean().log()
    got.backward(), want.backward()
    assert float(got.detach()) == pytest.approx(float(want.detach()), abs=1e-12)
    assert float(got.detach()) == pytest.approx(np_uniformity_cells(a.detach().numpy(), t), abs=1e-12)
    assert torch.allclose(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_mawu_margins_by_hand_and_their_projection(build):
    margin_alignment = family.margin_alignment
    e1 = torch.tensor([[1.0, 0.0]])
    # aligned pair, m_u + m_i = 0: angle 0 + (1 - sigmoid(0)) = 0.5, loss -cos(0.5) (cos clipped to 1 - 1e-7)
    assert float(margin_alignment(e1, e1, torch.zeros(1))) == pytest.approx(-math.cos(0.5), abs=1e-3)
    # opposite pair: angle pi + 0.5 is clipped to pi, loss -cos(pi) = 1
    assert float(margin_alignment(e1, -e1, torch.zeros(1))) == pytest.approx(1.0, abs=1e-6)
    # margins outside [0, 1] are projected before use: 5 -> 1 and -3 -> 0, so delta = 1 - sigmoid(1);
    # a one-pair batch (an epoch's last batch can be one row) has no uniformity pair and adds 0
    model = build("MAWU", gamma1=0.5, gamma2=0.5)
    u0, i0 = USERS[:1], ITEMS[:1]
    with torch.no_grad():
        model.user_margin.weight[u0[0]] = 5.0
        model.item_margin.weight[i0[0]] = -3.0
    u, i = representations(model, u0, i0)
    assert loss_of(model, u0, i0) == pytest.approx(np_margin_alignment(u, i, [1.0], [0.0]), rel=1e-5)
    assert float(model.user_margin.weight[u0[0]].detach()) == 1.0 and float(model.item_margin.weight[i0[0]].detach()) == 0.0


def test_coding_rates_by_hand_and_against_a_direct_computation():
    cluster_coding_rate, coding_rate = family.cluster_coding_rate, family.coding_rate
    # Z = I_4 (n = d = 4), eps = 1: R = 1/2 log det(2 I) = 2 log 2; clusters {0,1}, {2,3}: each
    # 2/8 * log det(I + 2 diag(1, 1, 0, 0)) = 1/4 * 2 log 3, so R_c = log 3.
    z = torch.eye(4, dtype=torch.float64)
    assert float(coding_rate(z, 1.0)) == pytest.approx(2 * math.log(2), abs=1e-12)
    pi = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.float64)
    assert float(cluster_coding_rate(z, pi, 1.0)) == pytest.approx(math.log(3), abs=1e-12)
    # Random unit rows with repeats, three hard clusters: against numpy on each cluster's own rows.
    g = torch.Generator().manual_seed(1)
    z = torch.nn.functional.normalize(torch.randn(9, 5, generator=g, dtype=torch.float64), dim=1)
    z[4] = z[3]
    groups = [[0, 3, 4, 8], [1, 2], [5, 6, 7]]
    pi = torch.zeros(9, 3, dtype=torch.float64)
    for k, rows in enumerate(groups):
        pi[rows, k] = 1.0
    assert float(coding_rate(z, 0.5)) == pytest.approx(np_rate(z.numpy(), 0.5), rel=1e-10)
    assert float(cluster_coding_rate(z, pi, 0.5)) == pytest.approx(np_cluster_rate(z.numpy(), groups, 0.5), rel=1e-10)
    # Soft memberships: the weighted form, term by term with loops.
    w = torch.softmax(torch.randn(9, 3, generator=g, dtype=torch.float64), dim=1)
    expected = 0.0
    for k in range(3):
        size = float(w[:, k].sum())
        cov = sum(float(w[r, k]) * np.outer(z[r].numpy(), z[r].numpy()) for r in range(9))
        expected += size / 18 * np.linalg.slogdet(np.eye(5) + 5 / (size * 0.25) * cov)[1]
    assert float(cluster_coding_rate(z, w, 0.5)) == pytest.approx(expected, rel=1e-10)


def test_spherical_kmeans_separates_clear_groups_despite_repeated_rows():
    spherical_kmeans = family.spherical_kmeans
    g = torch.Generator().manual_seed(3)
    a = torch.nn.functional.normalize(torch.tensor([1.0, 0, 0]) + 0.05 * torch.randn(5, 3, generator=g), dim=1)
    b = torch.nn.functional.normalize(torch.tensor([0, 1.0, 0]) + 0.05 * torch.randn(4, 3, generator=g), dim=1)
    z = torch.cat([a[:1].repeat(3, 1), a, b])          # the first row three more times
    for seed in range(5):
        torch.manual_seed(seed)
        labels = spherical_kmeans(z, 2).argmax(1)
        assert len(set(labels[:8].tolist())) == 1 and len(set(labels[8:].tolist())) == 1
        assert labels[0] != labels[-1]


@pytest.mark.parametrize("n_clusters", [0, 2])
def test_ncl_loss_is_alignment_plus_gamma_times_compactness(build, n_clusters):
    model = build("NonContrastiveCL", gamma=0.03, eps=0.5, n_clusters=n_clusters)
    # Distinct batch users (items) alternate between two orthogonal directions, so the clusters are known.
    side = {"users": {row: k % 2 for k, row in enumerate(dict.fromkeys(USERS))},
            "items": {row: k % 2 for k, row in enumerate(dict.fromkeys(ITEMS))}}
    if n_clusters:
        with torch.no_grad():
            for table, name in ((model.encoder.user_embedding, "users"), (model.encoder.item_embedding, "items")):
                for row, k in side[name].items():
                    table.weight[row] = 0.05 * table.weight[row]
                    table.weight[row, k] += 1.0
    u, i = representations(model)
    expected = np_alignment(u, i)
    for z, ids, name in ((unit(u), USERS, "users"), (unit(i), ITEMS, "items")):
        compact = -np_rate(z, 0.5)
        if n_clusters:
            groups = [[p for p, row in enumerate(ids) if side[name][row] == k] for k in (0, 1)]
            compact += np_cluster_rate(z, groups, 0.5)
        expected += 0.03 * compact
    assert loss_of(model) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("backbone", ["mf", "lightgcn"])
@pytest.mark.parametrize("model_name,params", [
    ("PositivesOnly", {}), ("PositivesOnly", {"normalize": True}), ("DirectAU", {}), ("MAWU", {}),
    ("NonContrastiveCL", {}), ("NonContrastiveCL", {"n_clusters": 3})])
def test_gradients_are_finite_at_repeats_and_perfect_alignment(build, backbone, model_name, params):
    model = build(model_name, backbone, **params)
    if backbone == "mf":  # a pair with identical user and item vectors: arccos and pdist at their edges
        with torch.no_grad():
            model.encoder.item_embedding.weight[ITEMS[0]] = model.encoder.user_embedding.weight[USERS[0]]
    loss = model.calculate_loss(batch(model))
    loss.backward()
    assert math.isfinite(float(loss.detach()))
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


# ---- training on the real subsample ----
# Settings: Adam steps of 0.02 (0.003-0.01 for nCL) move the unit directions these losses act on by
# a useful angle within a few epochs of ~24 steps; weight decay 1e-4 (DirectAU's and MAWU's grids)
# or 1e-3 keeps the raw norms, which the scores use but the losses ignore, from drifting. DirectAU
# gamma 0.3 and MAWU gamma 0.1 per side: MAWU's margin alignment pulls about half as hard as
# ||u - i||^2 and its uniformity weights are not halved, so 0.3 / 2 / 2 = 0.075 is the same balance;
# at 0.075-0.08 MF-MAWU collapsed after epoch 4 (erank 11 by epoch 10), 0.1 stayed stable.
# Measured over seeds 0/1/2, ndcg@20 (popularity: 0.208): DirectAU MF 0.319-0.328, LightGCN 0.307-0.311;
# MAWU MF 0.286-0.301, LightGCN 0.274-0.279; nCL MF 0.251-0.256, LightGCN 0.238-0.246;
# PositivesOnly MF 0.196-0.205, LightGCN 0.217-0.218 at erank 1.0-1.1.
TRAINED = {
    ("DirectAU", "mf"): dict(epochs=4, learning_rate=0.02, weight_decay=1e-4, gamma=0.3),
    ("DirectAU", "lightgcn"): dict(epochs=4, learning_rate=0.02, weight_decay=1e-4, gamma=0.3),
    ("MAWU", "mf"): dict(epochs=4, learning_rate=0.02, weight_decay=1e-4, gamma1=0.1, gamma2=0.1),
    ("MAWU", "lightgcn"): dict(epochs=4, learning_rate=0.02, weight_decay=1e-4, gamma1=0.1, gamma2=0.1),
    ("NonContrastiveCL", "mf"): dict(epochs=24, train_batch_size=1024, learning_rate=0.003, weight_decay=1e-3),
    ("NonContrastiveCL", "lightgcn"): dict(epochs=6, train_batch_size=1024, learning_rate=0.01, weight_decay=1e-3),
    # lambda = 1.5e-3 lies between sigma_2(R)/(2|R|) and sigma_1(R)/(2|R|) (checked below)
    ("PositivesOnly", "mf"): dict(epochs=8, learning_rate=30.0, weight_decay=1.5e-3, train_sampler="pairs"),
    ("PositivesOnly", "lightgcn"): dict(epochs=8, learning_rate=30.0, weight_decay=1.5e-3, train_sampler="pairs"),
}


@pytest.fixture(scope="module")
def trained(ml100k_small, tmp_path_factory):
    from specbench.run import run
    cache = {}

    def get(model, backbone, **params):
        key = (model, backbone, tuple(sorted(params.items())))
        if key not in cache:
            settings = {**TRAINED.get((model, backbone), {}), **params}
            spec = make_spec(ml100k_small, model, backbone=backbone, eval_at_start=False, **settings)
            spec["params"]["eval_step"] = spec["params"]["epochs"]
            cache[key] = run(spec, tmp_path_factory.mktemp("runs") / "runs" / f"{model}-{backbone}.json")
        return cache[key]
    return get


@pytest.mark.parametrize("backbone", ["mf", "lightgcn"])
@pytest.mark.parametrize("model", ["DirectAU", "MAWU", "NonContrastiveCL"])
def test_trains_and_beats_popularity(trained, popularity_metrics, model, backbone):
    record = trained(model, backbone)
    assert all(math.isfinite(e["loss"]) for e in record["epochs"])
    assert record["final"]["metrics"]["ndcg@20"] > popularity_metrics["ndcg@20"]
    assert record["final"]["spectrum"]["erank"] > 3.0   # uniformity / expansion keeps several directions


@pytest.mark.parametrize("backbone", ["mf", "lightgcn"])
def test_positives_only_collapses_to_one_direction(trained, popularity_metrics, ml100k_small, backbone):
    # The rank-setting L2 weight lies between the growth rates of the top two singular directions.
    train = read_split(ml100k_small, "ml100k_small", "train")
    users, items = (train.iloc[:, c].astype("category").cat.codes.to_numpy() for c in (0, 1))
    r = np.zeros((users.max() + 1, items.max() + 1))
    r[users, items] = 1.0
    s = np.linalg.svd(r, compute_uv=False)
    lam = TRAINED[("PositivesOnly", backbone)]["weight_decay"]
    assert s[1] / (2 * r.sum()) < lam < s[0] / (2 * r.sum())

    record = trained("PositivesOnly", backbone)
    erank = record["final"]["spectrum"]["erank"]
    assert erank < 1.5
    assert trained("DirectAU", backbone)["final"]["spectrum"]["erank"] > 5 * erank
    # BPR (negative sampling; RecBole's BPR on MF, its LightGCN on LightGCN), trained past popularity.
    bpr = trained(*(("BPR", "mf") if backbone == "mf" else ("LightGCN", "lightgcn")), epochs=4, learning_rate=0.01)
    assert bpr["final"]["metrics"]["ndcg@20"] > popularity_metrics["ndcg@20"]
    assert bpr["final"]["spectrum"]["erank"] > 20 * erank
    # One direction means one global item order for every user: a popularity-like ranking.
    assert abs(record["final"]["metrics"]["ndcg@20"] - popularity_metrics["ndcg@20"]) < 0.03
    # Without L2 the same loss saturates and leaves the initial noise in place: no collapse (MF;
    # LightGCN's propagation alone already concentrates the spectrum, erank about 18).
    if backbone == "mf":
        assert trained("PositivesOnly", backbone, weight_decay=0.0)["final"]["spectrum"]["erank"] > 20 * erank


# ---- the Gram-matrix uniformity against torch.pdist's form (value and gradient) ----

def pdist_uniformity(h, t):
    """l_uniform as it was first written: torch.pdist over the B(B-1)/2 pairs a < b of unit rows."""
    return torch.pdist(torch.nn.functional.normalize(h, dim=1)).pow(2).mul(-t).exp().mean().log()


def rows_with_repeats(n, d, seed):
    """n random rows (d columns), some of them repeated and some rescaled copies (one direction twice)."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=gen, dtype=torch.float64)
    if n >= 4:
        idx = torch.randint(n, (n // 3,), generator=gen)
        h[torch.randperm(n, generator=gen)[: n // 3]] = h[idx]            # repeated rows (distance 0)
        h[n - 1] = 3.0 * h[0]                                             # same direction, another norm
    return h


@pytest.mark.parametrize("n", [2, 3, 5, 64, 257, 1024])
@pytest.mark.parametrize("t", [2.0, 0.5])
def test_uniformity_equals_the_pdist_form_in_value_and_gradient(n, t):
    h = rows_with_repeats(n, 16, seed=n)
    # float64: exact up to rounding
    a, b = h.clone().requires_grad_(True), h.clone().requires_grad_(True)
    got, want = family.uniformity(a, t), pdist_uniformity(b, t)
    got.backward(), want.backward()
    assert got.item() == pytest.approx(want.item(), abs=1e-10)
    assert torch.allclose(a.grad, b.grad, rtol=1e-7, atol=1e-12), (a.grad - b.grad).abs().max()
    # float32 (what training runs) against the float64 reference
    c = h.float().requires_grad_(True)
    got32 = family.uniformity(c, t)
    got32.backward()
    assert got32.item() == pytest.approx(want.item(), abs=1e-5)
    assert torch.allclose(c.grad.double(), b.grad, rtol=1e-3, atol=1e-6), (c.grad.double() - b.grad).abs().max()


def test_uniformity_gradient_weights_each_pair_like_the_loop_formula():
    # the loop formula of np_uniformity, differentiated by autograd term by term (float64)
    h = rows_with_repeats(9, 5, seed=3)
    a, b = h.clone().requires_grad_(True), h.clone().requires_grad_(True)
    family.uniformity(a, 2.0).backward()
    x = b / b.norm(dim=1, keepdim=True)
    terms = [torch.exp(-2.0 * ((x[i] - x[j]) ** 2).sum()) for i in range(9) for j in range(i + 1, 9)]
    (sum(terms) / len(terms)).log().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-12)
    assert float(family.uniformity(h, 2.0)) == pytest.approx(np_uniformity(h.numpy()), abs=1e-12)


@pytest.mark.parametrize("model_name, params", [("DirectAU", {"gamma": 0.7}),
                                                ("MAWU", {"gamma1": 0.9, "gamma2": 0.2, "uniformity_mean": "pairs"})])
def test_directau_and_mawu_losses_use_the_pdist_uniformity(build, model_name, params):
    # a real batch of 300 rows with repeated users and items: the model's loss and gradients equal
    # the same loss with the pdist uniformity swapped in
    gen = torch.Generator().manual_seed(1)
    model = build(model_name, backbone="lightgcn", **params)
    assert sys.modules[type(model).__module__] is family  # the swap below reaches the model's loss
    users = torch.randint(1, model.n_users, (300,), generator=gen)
    items = torch.randint(1, model.n_items, (300,), generator=gen)
    inter = batch(model, users.tolist(), items.tolist())
    loss = model.calculate_loss(inter)
    loss.backward()
    got = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    original = family.uniformity
    try:
        family.uniformity = lambda h, t, cells=False: pdist_uniformity(h, t)
        want = model.calculate_loss(inter)
    finally:
        family.uniformity = original
    want.backward()
    assert loss.item() == pytest.approx(want.item(), abs=1e-5)
    for g, p in zip(got, model.parameters()):
        assert torch.allclose(g, p.grad, rtol=1e-3, atol=1e-7), (g - p.grad).abs().max()
