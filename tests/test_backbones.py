"""The shared encoder (models/backbones.py) against dense, hand-written LightGCN propagation."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from specbench_models.backbones import Encoder, InnerProductScores, glorot_uniform_, normalized_adjacency
from tests.helpers import dense_adjacency

# 3 users x 4 items; user 2 and item 3 have no interactions (RecBole's padding rows look like this);
# the pair (0, 1) appears twice and must count once.
ROWS, COLS = [0, 0, 0, 1, 1], [0, 1, 1, 1, 2]
N_USERS, N_ITEMS = 3, 4


def tiny_matrix():
    return sp.csr_matrix((np.ones(len(ROWS), dtype=np.float32), (ROWS, COLS)), shape=(N_USERS, N_ITEMS))


def dense_normalized_adjacency() -> torch.Tensor:
    """Ã = D^-1/2 A D^-1/2 written out by hand, isolated nodes left at zero."""
    return dense_adjacency(tiny_matrix())


def encoder(backbone="lightgcn", n_layers=3, init="glorot", dim=5):
    torch.manual_seed(0)
    return Encoder(N_USERS, N_ITEMS, dim, tiny_matrix(), backbone=backbone, n_layers=n_layers, init=init)


def stacked(enc):
    return torch.cat([enc.user_embedding.weight, enc.item_embedding.weight]).detach().double()


def test_normalized_adjacency_is_the_hand_computed_one():
    got = normalized_adjacency(tiny_matrix(), N_USERS, N_ITEMS).to_dense().double()
    want = dense_normalized_adjacency()
    assert torch.allclose(got, want, atol=1e-7)
    # user 0 has degree 2 (duplicates once), item 1 degree 2: entry 1/sqrt(2*2)
    assert got[0, N_USERS + 1].item() == pytest.approx(0.5)
    assert torch.all(got[2] == 0) and torch.all(got[N_USERS + 3] == 0)


def test_lightgcn_forward_is_dense_sum_of_powers():
    enc = encoder(n_layers=3)
    a, e = dense_normalized_adjacency(), stacked(enc)
    s = sum(torch.linalg.matrix_power(a, k) for k in range(4))  # S = Σ_{k=0..3} Ã^k
    want = s @ e
    users, items = enc()
    assert torch.allclose(torch.cat([users, items]).double(), want, atol=1e-6)
    layers = enc.layers()
    assert len(layers) == 4
    for k, h in enumerate(layers):
        assert torch.allclose(h.double(), torch.linalg.matrix_power(a, k) @ e, atol=1e-6)
    # encode() is the forward's rows
    hu, hi = enc.encode(torch.tensor([1, 0]), torch.tensor([2, 2, 1]))
    assert torch.equal(hu, users[[1, 0]]) and torch.equal(hi, items[[2, 2, 1]])


def test_mf_is_the_tables_and_never_calls_a_hook():
    enc = encoder(backbone="mf")
    calls = []
    layers = enc.layers(lambda k, h: calls.append(k) or h)
    assert calls == [] and len(layers) == 1
    users, items = enc()
    assert torch.equal(users, enc.user_embedding.weight) and torch.equal(items, enc.item_embedding.weight)


def test_zero_noise_hook_equals_plain_forward():
    enc = encoder(n_layers=2)
    seen = []

    def hook(k, h):
        seen.append(k)
        return h + 0.0 * torch.rand_like(h)

    plain, hooked = enc(), enc(hook=hook)
    assert seen == [1, 2]
    assert torch.equal(plain[0], hooked[0]) and torch.equal(plain[1], hooked[1])


def test_a_hooks_output_is_what_the_next_layer_propagates():
    enc = encoder(n_layers=2)
    a, e = dense_normalized_adjacency(), stacked(enc)
    shift = torch.arange(5, dtype=torch.float64) / 10
    layers = enc.layers(lambda k, h: h + shift.float() if k == 1 else h)
    first = a @ e + shift
    assert torch.allclose(layers[1].double(), first, atol=1e-6)
    assert torch.allclose(layers[2].double(), a @ first, atol=1e-6)
    users, items = enc(hook=lambda k, h: h + shift.float() if k == 1 else h)
    assert torch.allclose(torch.cat([users, items]).double(), e + first + a @ first, atol=1e-6)


def test_gradients_flow_through_hooked_layers():
    enc = encoder(n_layers=2)
    users, items = enc(hook=lambda k, h: 2 * h)
    (users.sum() + items.sum()).backward()
    assert enc.user_embedding.weight.grad is not None and torch.isfinite(enc.user_embedding.weight.grad).all()


@pytest.mark.parametrize("backbone", ["mf", "lightgcn"])
def test_initialisations(backbone):
    d = 5
    joint = math.sqrt(6 / (N_USERS + N_ITEMS + d))
    per_table = (math.sqrt(6 / (N_USERS + d)), math.sqrt(6 / (N_ITEMS + d)))
    glorot = encoder(backbone=backbone, init="glorot")
    bounds = (joint, joint) if backbone == "lightgcn" else per_table
    for table, bound in zip((glorot.user_embedding.weight, glorot.item_embedding.weight), bounds):
        assert table.abs().max().item() <= bound
    xu = encoder(backbone=backbone, init="xavier_uniform")
    for table, bound in zip((xu.user_embedding.weight, xu.item_embedding.weight), per_table):
        assert table.abs().max().item() <= bound
    # the bound is reached in scale, not just respected: a wide table fills most of the interval
    wide = glorot_uniform_(torch.empty(400, 100))
    assert wide.abs().max().item() > 0.95 * math.sqrt(6 / 500)
    with pytest.raises(ValueError, match="init must be one of"):
        encoder(init="uniform")
    with pytest.raises(ValueError, match="backbone must be one of"):
        encoder(backbone="ngcf")


def test_propagation_gradient_equals_the_dense_transcription():
    """The symmetric sparse product's backward (Ã g) equals autograd through dense Ã, on LightGCN."""
    enc = Encoder(N_USERS, N_ITEMS, 4, tiny_matrix(), backbone="lightgcn", n_layers=3, init="xavier_uniform")
    weights = torch.randn(N_USERS + N_ITEMS, 4, dtype=torch.float64)
    hu, hi = enc()
    (torch.cat([hu, hi]).double() * weights).sum().backward()
    a = dense_normalized_adjacency()
    e = stacked(enc).detach().double().requires_grad_(True)
    s = sum(torch.linalg.matrix_power(a, k) for k in range(4))
    ((s @ e) * weights).sum().backward()
    got = torch.cat([enc.user_embedding.weight.grad, enc.item_embedding.weight.grad]).double()
    assert torch.allclose(got, e.grad, atol=1e-5)


def test_inner_product_scores_reuse_representations_in_evaluation_until_a_parameter_changes():
    class Scorer(InnerProductScores, torch.nn.Module):
        USER_ID, ITEM_ID = "u", "i"

        def __init__(self):
            super().__init__()
            self.encoder, self.calls = encoder(dim=3), 0

        def scoring_embeddings(self):
            self.calls += 1
            return self.encoder()

    model = Scorer().eval()
    users, items = torch.tensor([0, 2]), torch.tensor([1, 3])
    with torch.no_grad():
        first = model.full_sort_predict({"u": users})
        pair = model.predict({"u": users, "i": items})
        assert model.calls == 1  # one propagation for every block of users scored
        hu, hi = model.encoder()
        assert torch.allclose(first.view(2, -1), hu[users] @ hi.t())
        assert torch.allclose(pair, (hu[users] * hi[items]).sum(1))
        model.encoder.item_embedding.weight.add_(1.0)  # an optimiser step changes the tables in place
        hu, hi = model.encoder()
        assert torch.allclose(model.full_sort_predict({"u": users}).view(2, -1), hu[users] @ hi.t())
        assert model.calls == 2
    model.train()
    model.full_sort_predict({"u": users}), model.full_sort_predict({"u": users})
    assert model.calls == 4  # never cached while training


def test_lightgcn_adapter_draws_the_authors_init_and_keeps_recboles_model(ml100k_small):
    """BPR on LightGCN: RecBole's LightGCN, tables from N(0, 0.1²) as gusye1234/LightGCN-PyTorch draws
    them (init: normal), or RecBole's Xavier-uniform draw (init: xavier_uniform), bound sqrt(6/(n+d))."""
    import math

    from recbole.model.general_recommender.lightgcn import LightGCN

    from tests.helpers import build_model
    normal = build_model("LightGCNAdapter", ml100k_small)
    assert type(normal).__mro__[1] is LightGCN  # every computation is RecBole's
    for table in (normal.user_embedding.weight, normal.item_embedding.weight):
        assert float(table.std()) == pytest.approx(0.1, rel=0.03) and abs(float(table.mean())) < 0.005
    xavier = build_model("LightGCNAdapter", ml100k_small, init="xavier_uniform")
    for table in (xavier.user_embedding.weight, xavier.item_embedding.weight):
        bound = math.sqrt(6 / sum(table.shape))
        assert float(table.abs().max()) <= bound and float(table.abs().max()) > 0.95 * bound
