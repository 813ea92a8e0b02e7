"""SimGCL, XSimGCL (models/contrastive.py) against the papers' formulas written out again here, and
RecBole's SGL and NCL run through our harness by their adapters."""

import numpy as np
import pytest
import torch

from specbench_models import contrastive
from specbench.run import run
from tests.helpers import TINY_PAIRS, batch, leaf_tables, tiny_adjacency, tiny_graph, tiny_model


# The tiny graph of tests/helpers.py: users 1..3, items 1..5 in RecBole ids (0 is padding).
PAIRS = TINY_PAIRS
N_USERS, N_ITEMS = tiny_graph().num("user_id"), tiny_graph().num("item_id")  # 4, 6: padding included


def nce(a, b, tau):
    """InfoNCE written term by term: mean_i −log(exp(a_i·b_i/τ) / Σ_j exp(a_i·b_j/τ)), unit rows."""
    a = a / a.norm(dim=1, keepdim=True)
    b = b / b.norm(dim=1, keepdim=True)
    terms = []
    for i in range(len(a)):
        top = torch.exp(a[i] @ b[i] / tau)
        bottom = sum(torch.exp(a[i] @ b[j] / tau) for j in range(len(b)))
        terms.append(-torch.log(top / bottom))
    return sum(terms) / len(terms)


def bpr_terms(hu, hi, users, pos, neg):
    terms = [-torch.log(torch.sigmoid(hu[u] @ hi[p] - hu[u] @ hi[n])) for u, p, n in zip(users, pos, neg)]
    return sum(terms) / len(users)


def noisy_layer(h, eps, noise):
    """SimGCL's perturbation: h + ε · sign(h) ⊙ (noise / ‖noise‖ per row)."""
    return h + eps * torch.sign(h) * noise / noise.norm(dim=1, keepdim=True)


def inject(model, noises):
    queue = list(noises)
    model.draw_noise = lambda h: queue.pop(0).to(h.dtype)
    return queue


USERS, POS, NEG = [1, 3, 1, 2], [2, 4, 5, 3], [3, 2, 4, 1]


def check_grads(model, e):
    w = torch.cat([model.encoder.user_embedding.weight.grad, model.encoder.item_embedding.weight.grad])
    assert torch.isfinite(w).all()
    assert torch.allclose(w.double(), e.grad, atol=1e-5), (w.double() - e.grad).abs().max()


def test_noise_is_sign_aligned_with_norm_eps():
    perturb = contrastive.perturb
    h = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 3.0, -0.1]])
    noise = torch.rand(2, 3)
    delta = perturb(h, 0.3, noise) - h
    assert torch.allclose(delta.norm(dim=1), torch.full((2,), 0.3))
    assert torch.all(delta * torch.sign(h) >= 0)


def test_simgcl_loss_is_the_paper_formula():
    model = tiny_model("SimGCL", n_layers=2, eps=0.1, cl_weight=0.5, cl_temperature=0.2, reg_weight=0.01)
    gen = torch.Generator().manual_seed(1)
    noises = [torch.rand(N_USERS + N_ITEMS, 4, generator=gen, dtype=torch.float64) for _ in range(4)]
    inject(model, noises)
    loss = model.calculate_loss(batch(USERS, POS, NEG))
    loss.backward()

    a, e = tiny_adjacency(), leaf_tables(model)
    clean = [a @ e, a @ a @ e]
    final = (clean[0] + clean[1]) / 2  # mean of layers 1..K
    views = []
    for n1, n2 in (noises[:2], noises[2:]):
        h1 = noisy_layer(a @ e, 0.1, n1)
        h2 = noisy_layer(a @ h1, 0.1, n2)
        views.append((h1 + h2) / 2)
    hu, hi = final[:N_USERS], final[N_USERS:]
    want = bpr_terms(hu, hi, USERS, POS, NEG)
    want = want + 0.01 * (hu[USERS].pow(2).sum().sqrt() + hi[POS].pow(2).sum().sqrt()) / len(USERS)
    users, items = sorted(set(USERS)), sorted(set(POS))
    cl = (nce(views[0][users], views[1][users], 0.2)
          + nce(views[0][[N_USERS + i for i in items]], views[1][[N_USERS + i for i in items]], 0.2))
    want = want + 0.5 * cl
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    check_grads(model, e)
    # scoring: the clean mean of layers 1..K
    scores = model.full_sort_predict(batch([2], [1], [1])).double()
    assert torch.allclose(scores, (hu[2] @ hi.t()).detach(), atol=1e-6)


def test_xsimgcl_loss_is_the_paper_formula():
    model = tiny_model("XSimGCL", n_layers=3, cl_layer=2, eps=0.2, cl_weight=0.2, cl_temperature=0.15,
                       reg_weight=0.01)
    gen = torch.Generator().manual_seed(2)
    noises = [torch.rand(N_USERS + N_ITEMS, 4, generator=gen, dtype=torch.float64) for _ in range(3)]
    inject(model, noises)
    loss = model.calculate_loss(batch(USERS, POS, NEG))
    loss.backward()

    a, e = tiny_adjacency(), leaf_tables(model)
    layers, h = [], e
    for n in noises:
        h = noisy_layer(a @ h, 0.2, n)
        layers.append(h)
    final = sum(layers) / 3
    contrast = layers[1]  # l* = 2
    hu, hi = final[:N_USERS], final[N_USERS:]
    want = bpr_terms(hu, hi, USERS, POS, NEG)  # on the perturbed pass
    want = want + 0.01 * (hu[USERS].pow(2).sum().sqrt() + hi[POS].pow(2).sum().sqrt()) / len(USERS)
    users, items = sorted(set(USERS)), [N_USERS + i for i in sorted(set(POS))]
    want = want + 0.2 * (nce(final[users], contrast[users], 0.15) + nce(final[items], contrast[items], 0.15))
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    check_grads(model, e)


@pytest.mark.parametrize("name", ["SimGCL", "XSimGCL"])
def test_noise_methods_need_propagation_layers(name):
    with pytest.raises(ValueError, match="needs backbone lightgcn"):
        tiny_model(name, backbone="mf")
    if name == "XSimGCL":
        with pytest.raises(ValueError, match="cl_layer must lie in"):
            tiny_model(name, n_layers=2, cl_layer=3)


def train(spec_for, tmp_path, model, backbone="lightgcn", **params):
    return run(spec_for(model, backbone=backbone, eval_at_start=False, **params), tmp_path / "runs" / f"{model}.json")


# Settings for a few seconds on the 150-user subsample (24 steps an epoch at batch 512): a learning
# rate above the papers' 1e-3, and λ small enough for BPR to move within ~200 steps (the official
# λ needs the thousands of steps an epoch has on Yelp2018).
@pytest.mark.parametrize("model", ["SimGCL", "XSimGCL"])
def test_trains_and_beats_popularity(spec_for, tmp_path, popularity_metrics, model):
    record = train(spec_for, tmp_path, model, epochs=8, eval_step=8, learning_rate=0.02, cl_weight=0.05)
    assert all(np.isfinite(e["loss"]) for e in record["epochs"])
    assert record["final"]["metrics"]["ndcg@20"] > popularity_metrics["ndcg@20"]
    assert record["final"]["spectrum"]["erank"] > 1


def test_sgl_adapter_rebuilds_views_in_train_and_scores_with_the_propagated_mean():
    model = tiny_model("SGLAdapter", n_layers=2)
    model.train()
    first = model.sub_graph1
    model.train()
    assert model.sub_graph1 is not first  # new augmented graphs every epoch
    users, items = model.scoring_embeddings()
    scores = model.full_sort_predict(batch([1, 3], [1, 1], [1, 1])).view(2, -1)
    assert torch.allclose(scores, users[[1, 3]] @ items.t())
    # mean of layers 0..2 of the full (not augmented) graph, by hand
    a = tiny_adjacency()
    e = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double()
    mean = (e + a @ e + a @ a @ e) / 3
    assert torch.allclose(torch.cat([users, items]).double(), mean, atol=1e-5)


def normalized_without(dropped):
    """Ã of the tiny graph with some (user, item) edges dropped (an edge-dropout view), by hand."""
    n = N_USERS + N_ITEMS
    a = torch.zeros(n, n, dtype=torch.float64)
    for u, i in PAIRS:
        if (u, i) not in dropped:
            a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    deg = a.sum(1)
    inv = torch.where(deg > 0, 1 / deg.clamp_min(1).sqrt(), torch.zeros_like(deg))
    return inv[:, None] * a * inv[None, :]


@pytest.mark.parametrize("l2_form", ["squared", "recbole"])
def test_sgl_loss_is_the_paper_formula(l2_form):
    # SGL (Wu et al., SIGIR 2021), its joint loss: L = Σ_b BPR + λ1 (L_ssl(users) + L_ssl(items)) + λ2 L2, where
    # L_ssl(users) = Σ_{u in batch} −log(exp(s(z′_u, z″_u)/τ) / Σ_{v in U} exp(s(z′_u, z″_v)/τ)), all users as
    # negatives. L2 over the batch's free embeddings: ``squared`` the paper's ‖Θ‖² as SGL-Torch's l2_loss
    # computes it (½ the sum of squares of every user, positive and negative row of the batch), ``recbole``
    # RecBole's (the three blocks' unsquared norms / B).
    model = tiny_model("SGLAdapter", n_layers=2, ssl_weight=0.1, ssl_tau=0.2, reg_weight=0.01, l2_form=l2_form)
    views = [normalized_without({(1, 5)}), normalized_without({(3, 4), (2, 2)})]
    model.sub_graph1, model.sub_graph2 = (v.float().to_sparse() for v in views)
    loss = model.calculate_loss(batch(USERS, POS, NEG))
    loss.backward()
    e = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double().requires_grad_(True)
    mean = lambda a: (e + a @ e + a @ a @ e) / 3  # noqa: E731  (LightGCN mean of layers 0..2)
    full, z1, z2 = mean(tiny_adjacency()), mean(views[0]), mean(views[1])
    hu, hi = full[:N_USERS], full[N_USERS:]
    bpr = sum(-torch.log(torch.sigmoid(hu[u] @ hi[p] - hu[u] @ hi[n])) for u, p, n in zip(USERS, POS, NEG))

    def ssl(rows, everyone):
        a = z1 / z1.norm(dim=1, keepdim=True)
        b = z2 / z2.norm(dim=1, keepdim=True)
        return sum(-torch.log(torch.exp(a[r] @ b[r] / 0.2) / sum(torch.exp(a[r] @ b[v] / 0.2) for v in everyone))
                   for r in rows)

    users, items = range(N_USERS), [N_USERS + i for i in range(N_ITEMS)]
    if l2_form == "squared":  # row by row, a user or item counted as often as the batch holds it
        rows = [e[u] for u in USERS] + [e[N_USERS + i] for i in POS] + [e[N_USERS + i] for i in NEG]
        l2 = sum((r * r).sum() for r in rows) / 2
    else:
        l2 = (e[USERS].norm() + e[[N_USERS + i for i in POS]].norm() + e[[N_USERS + i for i in NEG]].norm()) / 4
    want = bpr + 0.1 * (ssl(USERS, users) + ssl([N_USERS + i for i in POS], items)) + 0.01 * l2
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    grad = torch.cat([model.user_embedding.weight.grad, model.item_embedding.weight.grad]).double()
    assert torch.isfinite(grad).all() and torch.allclose(grad, e.grad, atol=1e-5)


def test_sgl_trains_through_the_harness_and_beats_popularity(spec_for, tmp_path, popularity_metrics):
    record = train(spec_for, tmp_path, "SGLAdapter", epochs=6, eval_step=6, learning_rate=0.01, n_layers=2,
                   ssl_weight=0.01)
    assert all(np.isfinite(e["loss"]) for e in record["epochs"])
    assert record["final"]["metrics"]["ndcg@20"] > popularity_metrics["ndcg@20"]


def test_kmeans_recovers_separated_blobs_and_caps_k():
    kmeans = contrastive.kmeans
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(20, 2, generator=gen) for c in centres])
    truth = torch.arange(3).repeat_interleave(20)
    found, assign = None, None
    for seed in range(5):  # Lloyd's from random starts can merge two blobs; one of five starts must not
        centroids, assign = kmeans(x, 3, generator=torch.Generator().manual_seed(seed))
        if len(set(zip(truth.tolist(), assign.tolist()))) == 3:
            found = centroids
            break
    assert found is not None
    for c in range(3):
        members = x[assign == assign[truth == c][0]]
        assert torch.allclose(found[assign[truth == c][0]], members.mean(0), atol=1e-5)
    # more clusters than rows: capped; duplicate rows leave empty clusters, which are split, never NaN
    dup = torch.tensor([[1.0, 1.0]] * 4 + [[2.0, 2.0]])
    centroids, assign = kmeans(dup, 10)
    assert centroids.shape == (5, 2) and torch.isfinite(centroids).all() and assign.shape == (5,)


def test_ncl_adapter_runs_recbole_ncl_trainer_schedule():
    from recbole.model.general_recommender.ncl import NCL
    model = tiny_model("NCLAdapter", num_clusters=2, m_step=2, warm_up_step=1, n_layers=2)
    calls = []
    real_e_step = model.e_step
    model.e_step = lambda: calls.append(model.epoch_index) or real_e_step()
    for epoch in range(1, 6):
        model.on_epoch_start(epoch)
    assert calls == [0, 2, 4]  # RecBole's NCLTrainer: epoch_idx % m_step == 0 (0-based)
    assert model.user_centroids.shape == (2, 4) and model.item_2cluster.shape == (N_ITEMS,)
    inter = batch(USERS, POS, NEG)
    model.on_epoch_start(1)  # epoch_idx 0 < warm_up_step: the prototype term is left out
    warm = model.calculate_loss(inter)
    reference = NCL.calculate_loss(model, inter)
    assert len(warm) == 2 and all(torch.equal(a, b) for a, b in zip(warm, reference[:2]))
    model.on_epoch_start(2)
    full = model.calculate_loss(inter)
    reference = NCL.calculate_loss(model, inter)
    assert len(full) == 3 and all(torch.equal(a, b) for a, b in zip(full, reference))
    assert full[2].item() > 0


def test_ncl_loss_is_the_paper_formula_with_our_clusters():
    # NCL (Lin et al., WWW 2022), its structure and prototype terms as RecBole sums them:
    # BPR (mean) + reg · RecBole's l2 term
    # + ssl_reg (L_S(users) + α L_S(items)) + proto_reg (L_P(users) + L_P(items)), with
    # L_S(users) = Σ_{u in batch} −log(exp(ẑ_u⁽²ᴴ⁾·ẑ_u⁽⁰⁾/τ) / Σ_{v in U} exp(ẑ_u⁽²ᴴ⁾·ẑ_v⁽⁰⁾/τ)) and
    # L_P(users) = Σ_{u in batch} −log(exp(ê_u·c_u/τ) / Σ_k exp(ê_u·c_k/τ)), c = unit k-means centroids.
    model = tiny_model("NCLAdapter", n_layers=2, hyper_layers=1, num_clusters=2, warm_up_step=0, ssl_temp=0.5,
                       ssl_reg=0.3, proto_reg=0.2, alpha=0.7, reg_weight=0.01)
    model.on_epoch_start(1)  # E-step with our k-means
    loss = sum(model.calculate_loss(batch(USERS, POS, NEG)))
    loss.backward()
    e = torch.cat([model.user_embedding.weight, model.item_embedding.weight]).detach().double().requires_grad_(True)
    a = tiny_adjacency()
    layers = [e, a @ e, a @ a @ e]
    final = sum(layers) / 3
    hu, hi = final[:N_USERS], final[N_USERS:]
    bpr = sum(-torch.log(torch.sigmoid(hu[u] @ hi[p] - hu[u] @ hi[n])) for u, p, n in zip(USERS, POS, NEG)) / 4
    item = [N_USERS + i for i in POS]
    l2 = (e[USERS].norm() + e[item].norm() + e[[N_USERS + i for i in NEG]].norm()) / 4
    unit = lambda x: x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # noqa: E731  (padding rows are 0)
    ctx, ctr = unit(layers[2]), unit(layers[0])

    def structural(rows, everyone):
        return sum(-torch.log(torch.exp(ctx[r] @ ctr[r] / 0.5)
                              / sum(torch.exp(ctx[r] @ ctr[v] / 0.5) for v in everyone)) for r in rows)

    def prototype(rows, offset, centroids, assign):
        c = centroids.double()
        return sum(-torch.log(torch.exp(ctr[r] @ c[assign[r - offset]] / 0.5) / torch.exp(ctr[r] @ c.t() / 0.5).sum())
                   for r in rows)

    s_users = structural(USERS, range(N_USERS))
    s_items = structural(item, range(N_USERS, N_USERS + N_ITEMS))
    p_users = prototype(USERS, 0, model.user_centroids, model.user_2cluster)
    p_items = prototype(item, N_USERS, model.item_centroids, model.item_2cluster)
    want = bpr + 0.01 * l2 + 0.3 * (s_users + 0.7 * s_items) + 0.2 * (p_users + p_items)
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    grad = torch.cat([model.user_embedding.weight.grad, model.item_embedding.weight.grad]).double()
    assert torch.isfinite(grad).all() and torch.allclose(grad, e.grad, atol=1e-5)
    # the clusters are k-means of the raw tables: each row sits with its nearest centroid
    raw_users = model.user_embedding.weight.detach()
    raw_centroids = torch.stack([raw_users[model.user_2cluster == k].mean(0) for k in range(2)])
    assert torch.equal(torch.cdist(raw_users, raw_centroids).argmin(1), model.user_2cluster)


def test_ncl_adapter_resumes_between_e_steps():
    model = tiny_model("NCLAdapter", num_clusters=2, m_step=5, warm_up_step=0, n_layers=2)
    model.epoch_index = 3  # a checkpoint restores the tables, not the clusters
    losses = model.calculate_loss(batch(USERS, POS, NEG))
    assert len(losses) == 3 and model.user_centroids is not None


def test_ncl_trains_through_the_harness_and_beats_popularity(spec_for, tmp_path, popularity_metrics):
    record = train(spec_for, tmp_path, "NCLAdapter", epochs=6, eval_step=6, learning_rate=0.01, num_clusters=20,
                   warm_up_step=2)
    assert all(np.isfinite(e["loss"]) for e in record["epochs"])
    assert record["final"]["metrics"]["ndcg@20"] > popularity_metrics["ndcg@20"]


# ---- the adapters' faster computations against RecBole's own code (value and gradients) ----

@pytest.fixture(scope="module")
def real_model(ml100k_small, tmp_path_factory):
    from tests.helpers import build_model
    return lambda name, **kw: build_model(name, ml100k_small, backbone="lightgcn",
                                          work_dir=tmp_path_factory.mktemp("work"), **kw)


def real_batch(model, size=700, seed=0):
    """``size`` random training-like rows: on 150 users most users (and many items) repeat."""
    gen = torch.Generator().manual_seed(seed)
    users = torch.randint(1, model.n_users, (size,), generator=gen)
    pos, neg = (torch.randint(1, model.n_items, (size,), generator=gen) for _ in range(2))
    return batch(users.tolist(), pos.tolist(), neg.tolist())


def recbole_loss_and_grads(model, recbole_cls, overridden, inter):
    """``recbole_cls.calculate_loss`` with RecBole's own methods ``overridden`` put back on the model."""
    import types
    for name in overridden:
        setattr(model, name, types.MethodType(getattr(recbole_cls, name), model))
    try:
        model.zero_grad()
        loss = recbole_cls.calculate_loss(model, inter)
        loss = sum(loss) if isinstance(loss, tuple) else loss
        loss.backward()
    finally:
        for name in overridden:
            delattr(model, name)
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def ours_loss_and_grads(model, inter):
    model.zero_grad()
    loss = model.calculate_loss(inter)
    loss = sum(loss) if isinstance(loss, tuple) else loss
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def assert_same(ours, reference):
    (loss, grads), (want, want_grads) = ours, reference
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    for g, w in zip(grads, want_grads):
        scale = w.abs().max().clamp_min(1e-12)
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-5 * scale), ((g - w).abs().max(), scale)


@pytest.mark.parametrize("kind", ["ED", "ND", "RW"])
def test_sgl_adapter_loss_and_gradients_equal_recboles(real_model, kind):
    from recbole.model.general_recommender.sgl import SGL
    model = real_model("SGLAdapter", type=kind, n_layers=3, drop_ratio=0.2, ssl_weight=0.5, ssl_tau=0.2,
                       reg_weight=0.01, l2_form="recbole")  # RecBole's L2 (the squared one: test above)
    for epoch in range(2):  # the views are redrawn by train(), the CSR copies follow them
        model.train()
        views = [model.train_graph] + [g for v in (model.sub_graph1, model.sub_graph2)
                                       for g in (v if isinstance(v, list) else [v])]
        for g in views:  # ``propagate`` needs symmetric graphs (Ãᵀ g = Ã g)
            d = g.to_dense()
            assert torch.allclose(d, d.t(), rtol=1e-6, atol=0)
        inter = real_batch(model, seed=epoch)
        ours = ours_loss_and_grads(model, inter)
        assert_same(ours, recbole_loss_and_grads(model, SGL, ["forward", "calc_ssl_loss"], inter))
    users, items = model.scoring_embeddings()
    want_u, want_i = SGL.forward(model, model.train_graph)
    assert torch.allclose(users, want_u, atol=1e-6) and torch.allclose(items, want_i, atol=1e-6)


@pytest.mark.parametrize("n_layers, hyper_layers, clusters", [(3, 1, 20), (2, 2, 1000)])
def test_ncl_adapter_loss_and_gradients_equal_recboles(real_model, n_layers, hyper_layers, clusters):
    import copy
    from recbole.model.general_recommender.ncl import NCL
    model = real_model("NCLAdapter", n_layers=n_layers, hyper_layers=hyper_layers, num_clusters=clusters,
                       warm_up_step=0, ssl_reg=0.3, proto_reg=0.2, alpha=0.7, ssl_temp=0.1, reg_weight=0.01)
    model.on_epoch_start(1)
    d = model.norm_adj_mat.to_dense()
    assert torch.allclose(d, d.t(), rtol=1e-6, atol=0)  # ``propagate`` needs a symmetric graph
    inter = real_batch(model, size=1500)
    ours = ours_loss_and_grads(model, inter)
    assert_same(ours, recbole_loss_and_grads(model, NCL, ["forward", "ssl_layer_loss", "ProtoNCE_loss"], inter))
    clone = copy.deepcopy(model)  # the CSR cache (not copyable) is left behind, and rebuilt
    assert torch.allclose(clone.scoring_embeddings()[0], model.scoring_embeddings()[0])


def test_nce_sum_over_distinct_rows_equals_the_sum_over_the_batch():
    gen = torch.Generator().manual_seed(0)
    table, others = torch.randn(12, 5, generator=gen, dtype=torch.float64), torch.randn(12, 5, generator=gen,
                                                                                       dtype=torch.float64)
    rows = torch.tensor([3, 3, 0, 7, 3, 11, 0, 5])
    t1, t2 = table.clone().requires_grad_(True), table.clone().requires_grad_(True)
    o1, o2 = others.clone().requires_grad_(True), others.clone().requires_grad_(True)
    got = contrastive._view_nce_sum(t1, o1, rows, 0.3)
    a = t2[rows] / t2[rows].norm(dim=1, keepdim=True)
    everyone = o2 / o2.norm(dim=1, keepdim=True)
    want = sum(-torch.log(torch.exp(a[b] @ everyone[rows[b]] / 0.3) / torch.exp(a[b] @ everyone.t() / 0.3).sum())
               for b in range(len(rows)))
    (got + 0).backward(), want.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    assert torch.allclose(t1.grad, t2.grad, atol=1e-12) and torch.allclose(o1.grad, o2.grad, atol=1e-12)


@pytest.mark.parametrize("n", [1, 3, 200])
def test_info_nce_equals_the_log_softmax_form_in_value_and_gradients(n):
    gen = torch.Generator().manual_seed(n)
    v1, v2 = torch.randn(n, 6, generator=gen), torch.randn(n, 6, generator=gen)
    if n >= 3:
        v1[1], v2[2] = v1[0], 4.0 * v2[0]  # a repeated row, a rescaled one
    a, b = v1.clone().requires_grad_(True), v2.clone().requires_grad_(True)
    c, d = v1.double().requires_grad_(True), v2.double().requires_grad_(True)
    got = contrastive.info_nce(a, b, 0.2)
    z1, z2 = torch.nn.functional.normalize(c, dim=1), torch.nn.functional.normalize(d, dim=1)
    want = -torch.diagonal(torch.log_softmax(z1 @ z2.t() / 0.2, dim=1)).mean()
    got.backward(), want.backward()
    assert got.item() == pytest.approx(want.item(), rel=1e-5, abs=1e-6)
    assert torch.allclose(a.grad.double(), c.grad, atol=1e-5) and torch.allclose(b.grad.double(), d.grad, atol=1e-5)


@pytest.mark.parametrize("n, k", [(300, 40), (120, 1000), (64, 64)])
def test_kmeans_is_exactly_the_argmin_formulation(n, k, monkeypatch):
    """kmeans with its nearest-centroid step as first written (argmin of torch.cdist) gives the same
    centroids and assignment, ties (repeated rows) and empty clusters included."""
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(n, 8, generator=gen)
    x[: n // 4] = x[n // 4: 2 * (n // 4)]   # repeated rows: exact distance ties, empty clusters
    got = contrastive.kmeans(x, k, generator=torch.Generator().manual_seed(1))
    c = x[: min(k, n)]
    assert torch.equal(contrastive._nearest(x, c), torch.cdist(x, c).argmin(1))
    monkeypatch.setattr(contrastive, "_nearest", lambda a, b: torch.cdist(a, b).argmin(1))
    want = contrastive.kmeans(x, k, generator=torch.Generator().manual_seed(1))
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
