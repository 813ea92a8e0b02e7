"""SSM (models/softmax.py) against the sampled softmax loss written out again here."""

import math

import numpy as np
import pytest
import torch

from specbench.run import run
from tests.helpers import batch, leaf_tables, tiny_adjacency, tiny_graph, tiny_model

N_USERS = tiny_graph().num("user_id")  # 4: RecBole's user count, padding included
USERS, POS = [1, 3, 1, 2], [2, 4, 5, 3]


def cos(a, b):
    return a @ b / (a.norm() * b.norm())


def ssm_terms(hu, hi, users, pos, negs, tau):
    """mean over rows of −log(exp(cos(u,i)/τ) / (exp(cos(u,i)/τ) + Σ_j exp(cos(u,j)/τ)))."""
    terms = []
    for row, (u, i) in enumerate(zip(users, pos)):
        top = torch.exp(cos(hu[u], hi[i]) / tau)
        bottom = top + sum(torch.exp(cos(hu[u], hi[j]) / tau) for j in negs[row])
        terms.append(-torch.log(top / bottom))
    return sum(terms) / len(terms)


def grads_match(model, e):
    w = torch.cat([model.encoder.user_embedding.weight.grad, model.encoder.item_embedding.weight.grad])
    assert torch.isfinite(w).all()
    assert torch.allclose(w.double(), e.grad, atol=1e-5), (w.double() - e.grad).abs().max()


def test_in_batch_ssm_on_mf_is_the_paper_formula():
    model = tiny_model("SSM", backbone="mf", temperature=0.1, reg_weight=0.01, neg_samples=0)
    loss = model.calculate_loss(batch(USERS, POS, [1] * 4))
    loss.backward()
    e = leaf_tables(model)
    hu, hi = e[:N_USERS], e[N_USERS:]
    # in-batch: every other row's positive is a negative (a repeated item counts again)
    negs = [[POS[j] for j in range(len(POS)) if j != row] for row in range(len(POS))]
    want = ssm_terms(hu, hi, USERS, POS, negs, 0.1)
    want = want + 0.01 * (hu[USERS].pow(2).sum() + hi[POS].pow(2).sum()) / 2 / len(USERS)
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    grads_match(model, e)


def test_uniform_negative_ssm_on_lightgcn_is_the_paper_formula():
    model = tiny_model("SSM", backbone="lightgcn", n_layers=2, temperature=0.2, reg_weight=0.01, neg_samples=3)
    negs = [[3, 4, 1], [1, 2, 3], [3, 4, 3], [1, 4, 5]]
    loss = model.calculate_loss(batch(USERS, POS, negs))
    loss.backward()
    a, e = tiny_adjacency(), leaf_tables(model)
    final = e + a @ e + a @ a @ e  # Σ_{k=0..2} Ã^k E
    hu, hi = final[:N_USERS], final[N_USERS:]
    want = ssm_terms(hu, hi, USERS, POS, negs, 0.2)
    eu, ei = e[:N_USERS], e[N_USERS:]
    l2 = eu[USERS].pow(2).sum() + ei[POS].pow(2).sum() + sum(ei[n].pow(2).sum() for n in negs)
    want = want + 0.01 * l2 / 2 / len(USERS)
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    grads_match(model, e)


def test_a_perfectly_separating_batch_has_the_hand_computed_loss():
    # Orthonormal user/item rows: cos(u_b, i_b) = 1, other pairs 0; in-batch, B = 2, τ = 0.5:
    # −log(e² / (e² + e⁰)) per row.
    model = tiny_model("SSM", backbone="mf", temperature=0.5, reg_weight=0.0, neg_samples=0)
    with torch.no_grad():
        model.encoder.user_embedding.weight.zero_()
        model.encoder.item_embedding.weight.zero_()
        model.encoder.user_embedding.weight[1, 0] = model.encoder.item_embedding.weight[1, 0] = 3.0
        model.encoder.user_embedding.weight[2, 1] = model.encoder.item_embedding.weight[2, 1] = 0.5
    loss = model.calculate_loss(batch([1, 2], [1, 2], [3, 3]))
    assert loss.item() == pytest.approx(-math.log(math.exp(2) / (math.exp(2) + 1)), rel=1e-6)


def train(spec_for, tmp_path, backbone, **params):
    spec = spec_for("SSM", backbone=backbone, eval_at_start=True, **params)
    return run(spec, tmp_path / "runs" / f"SSM-{backbone}.json")


# Uniform negatives beat popularity on the 150-user subsample within seconds. In-batch negatives do
# not there: with 150 users a batch of 512 holds each user ~3 times, so a user's own positives are
# its negatives, and the in-batch (popularity-shaped) negatives push popular items down.
@pytest.mark.parametrize("backbone", ["mf", "lightgcn"])
def test_uniform_negatives_train_and_beat_popularity(spec_for, tmp_path, popularity_metrics, backbone):
    record = train(spec_for, tmp_path, backbone, epochs=6, eval_step=6, learning_rate=0.01, neg_samples=16)
    assert all(np.isfinite(e["loss"]) for e in record["epochs"])
    assert record["final"]["metrics"]["ndcg@20"] > popularity_metrics["ndcg@20"]


def test_in_batch_negatives_train(spec_for, tmp_path):
    record = train(spec_for, tmp_path, "mf", epochs=6, eval_step=6, learning_rate=0.01, neg_samples=0)
    losses = [e["loss"] for e in record["epochs"]]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    first, last = record["history"][0]["metrics"], record["final"]["metrics"]
    assert last["ndcg@20"] > 2 * first["ndcg@20"]  # 3.4x to 5.7x over seeds 0-2


# ---- the in-batch loss (a fused autograd function) against log_softmax, value and gradients ----

def log_softmax_in_batch(u, p, tau):
    """The in-batch SSM loss as first written: −mean diag(log_softmax(cos(u_b, p_j) / τ))."""
    u, p = torch.nn.functional.normalize(u, dim=1), torch.nn.functional.normalize(p, dim=1)
    return -torch.diagonal(torch.log_softmax(u @ p.t() / tau, dim=1)).mean()


@pytest.mark.parametrize("n", [1, 2, 7, 300, 1100])
@pytest.mark.parametrize("tau", [0.01, 0.1, 1.0])
def test_in_batch_ssm_loss_equals_log_softmax_in_value_and_gradients(n, tau):
    from specbench_models.softmax import ssm_loss
    gen = torch.Generator().manual_seed(n)
    u, p = torch.randn(n, 8, generator=gen, dtype=torch.float64), torch.randn(n, 8, generator=gen, dtype=torch.float64)
    if n >= 4:  # a user twice in a batch, an item twice (a negative of the other row), rescaled copies
        u[1], p[3], u[2] = u[0], p[0], 2.5 * u[0]
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 2e-4)):
        a, b = u.to(dtype, copy=True).requires_grad_(True), p.to(dtype, copy=True).requires_grad_(True)
        ra, rb = u.clone().requires_grad_(True), p.clone().requires_grad_(True)
        got, want = ssm_loss(a, b, None, tau), log_softmax_in_batch(ra, rb, tau)
        got.backward(), want.backward()
        assert torch.isfinite(got) and got.item() == pytest.approx(want.item(), rel=tol, abs=tol)
        for g, w in ((a.grad, ra.grad), (b.grad, rb.grad)):
            assert torch.allclose(g.double(), w, rtol=tol * 10, atol=tol), (g.double() - w).abs().max()
