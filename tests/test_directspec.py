"""DirectSpec / DirectSpec+ (models/directspec.py) against a from-scratch transcription of the
reference's formulas (tanatosuu/directspec; ../shared/reference/directspec.md), in float64 on a
tiny matrix with a dense S = Σ_k Ã^k from explicit matrix powers, plus numerical gradients.

The transcription below is written from the formulas, not from our code: dense adjacency and
matrix powers instead of sparse propagation, exp/sum instead of softmax, x / sqrt(Σx²) instead of
F.normalize, a dense co-interaction matrix R Rᵀ instead of the per-batch sparse product, and
log(1 / (1 + exp(−x))) instead of logsigmoid.
"""

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from torch.utils._python_dispatch import TorchDispatchMode

from specbench.harness import OPTIMIZERS, batch_wrapper
from specbench.plugins import get_model
from specbench.sampling import TrainSampler
from specbench.training import train_epoch
from specbench_models._cointeraction import CoInteraction
from tests.helpers import FakeDataset, build_model

N_USERS, N_ITEMS, DIM = 7, 9, 5  # without RecBole's padding row/column 0


@pytest.fixture(scope="module")
def r() -> np.ndarray:
    """Binary users x items (no padding); the last item has no training user (test-only)."""
    rng = np.random.default_rng(11)
    m = (rng.random((N_USERS, N_ITEMS)) < 0.25).astype(float)
    m[:, -1] = 0.0
    m[np.arange(N_USERS), rng.integers(0, N_ITEMS - 1, N_USERS)] = 1.0  # every user has a training item
    return m


def dataset(r: np.ndarray) -> FakeDataset:
    """``r`` in RecBole ids (user u + 1, item i + 1), with user 2's first training row given twice
    (a duplicated row: RecBole's matrix sums it to 2, and it is still one edge)."""
    return FakeDataset.from_matrix(r, duplicates=[(2, int(np.flatnonzero(r[1])[0]) + 1)])


def make_model(r, name="DirectSpecPlus", dtype=torch.float64, seed=0, **settings):
    return build_model(name, dataset(r), dtype=dtype, seed=seed, **{"embedding_size": DIM, **settings})


def batch(r):
    """Users with a duplicate, each with one of its training items (1-based ids)."""
    users = np.array([1, 2, 2, 4, 7, 5])
    rng = np.random.default_rng(5)
    items = np.array([rng.choice(np.flatnonzero(r[u - 1])) + 1 for u in users])
    return {"user_id": torch.as_tensor(users), "item_id": torch.as_tensor(items)}


# ---- the transcription -------------------------------------------------------------------------

def propagation(r: np.ndarray, layers: int) -> torch.Tensor:
    """S = Σ_{k=0..K} Ã^k over the padded bipartite graph, dense, by explicit matrix powers."""
    nu, ni = r.shape[0] + 1, r.shape[1] + 1
    binary = np.zeros((nu, ni))
    binary[1:, 1:] = r > 0
    a = np.zeros((nu + ni, nu + ni))
    a[:nu, nu:], a[nu:, :nu] = binary, binary.T
    deg = a.sum(1)
    d = np.array([x ** -0.5 if x > 0 else 0.0 for x in deg])
    a_norm = d[:, None] * a * d[None, :]
    return torch.as_tensor(sum(np.linalg.matrix_power(a_norm, k) for k in range(layers + 1)))


def transcribed_loss(eu, ei, r, users, items, *, backbone, layers, kernel, alpha, tau, tau0, tau1, shrink_norm, reg):
    if backbone == "lightgcn":
        h = propagation(r, layers) @ torch.cat([eu, ei])
        hu, hi = h[: eu.shape[0]][users], h[eu.shape[0]:][items]
    else:
        hu, hi = eu[users], ei[items]
    hu = hu / torch.sqrt((hu ** 2).sum(1, keepdim=True))
    hi = hi / torch.sqrt((hi ** 2).sum(1, keepdim=True))
    binary = np.zeros((r.shape[0] + 1, r.shape[1] + 1))
    binary[1:, 1:] = r > 0

    def temperature(co, ids):
        if tau0 is None:
            return torch.full((len(ids), len(ids)), tau, dtype=torch.float64)
        shared = torch.as_tensor(co)[ids][:, ids] > 0
        return torch.where(shared, torch.tensor(tau0, dtype=torch.float64), torch.tensor(tau1, dtype=torch.float64))

    def balanced(h, t):
        g = h @ h.T
        if kernel == "linear":
            w = g
        else:
            x = torch.exp(t * g)
            w = x / x.sum(1, keepdim=True)
        return h - alpha * (w @ h)

    hu = balanced(hu, temperature(binary @ binary.T, users))
    hi = balanced(hi, temperature(binary.T @ binary, items))
    if shrink_norm:
        hu = hu * (torch.sqrt((hu ** 2).sum(1, keepdim=True)) * shrink_norm)
        hi = hi * (torch.sqrt((hi ** 2).sum(1, keepdim=True)) * shrink_norm)
    score = (hu * hi).sum(1)
    b = len(users)
    return -torch.log(1.0 / (1.0 + torch.exp(-score))).sum() / b + reg * (hu ** 2 + hi ** 2).sum() / b


CASES = [  # (model, backbone, tau0/tau1)
    ("DirectSpecPlus", "mf", None), ("DirectSpecPlus", "mf", (2.5, 3.0)),
    ("DirectSpecPlus", "lightgcn", None), ("DirectSpecPlus", "lightgcn", (2.5, 3.0)),
    ("DirectSpec", "mf", None), ("DirectSpec", "lightgcn", None),
]


def settings_for(name, backbone, taus):
    s = {"backbone": backbone, "alpha": 0.8, "tau": 3.0, "shrink_norm": 0.7, "reg": 0.01, "n_layers": 3,
         "sparse_grad": False}
    if taus:
        s["tau0"], s["tau1"] = taus
    return s


@pytest.mark.parametrize("name,backbone,taus", CASES)
def test_one_step_equals_the_transcribed_formulas(r, name, backbone, taus):
    s = settings_for(name, backbone, taus)
    model = make_model(r, name, **s)
    b = batch(r)
    loss = model.calculate_loss(b)
    loss.backward()
    enc = model.encoder
    eu = enc.user_embedding.weight.detach().clone().requires_grad_()
    ei = enc.item_embedding.weight.detach().clone().requires_grad_()
    expected = transcribed_loss(eu, ei, r, b["user_id"], b["item_id"], backbone=backbone, layers=3,
                                kernel=model.kernel, alpha=0.8, tau=3.0, tau0=s.get("tau0"), tau1=s.get("tau1"),
                                shrink_norm=0.7, reg=0.01)
    expected.backward()
    if taus:  # the batch mixes co-interacting and unrelated pairs, so τ0 and τ1 both matter
        for co, ids in ((model.co_interaction.user_pairs, b["user_id"]), (model.co_interaction.item_pairs, b["item_id"])):
            mask = co(ids)
            assert mask.any() and not mask.all()
    # LightGCN: the backbone stores Ã in float32 (its entries carry a relative error up to 6e-8).
    rtol = 1e-12 if backbone == "mf" else 1e-6
    torch.testing.assert_close(loss, expected, rtol=rtol, atol=0)
    torch.testing.assert_close(enc.user_embedding.weight.grad, eu.grad, rtol=100 * rtol, atol=1e-14)
    torch.testing.assert_close(enc.item_embedding.weight.grad, ei.grad, rtol=100 * rtol, atol=1e-14)
    assert eu.grad.abs().sum() > 0 and ei.grad.abs().sum() > 0


@pytest.mark.parametrize("name,backbone,taus", CASES[:4])
def test_gradients_match_finite_differences(r, name, backbone, taus):
    model = make_model(r, name, **settings_for(name, backbone, taus))
    b = batch(r)
    user_w = model.encoder.user_embedding.weight
    item_w = model.encoder.item_embedding.weight

    class Loss(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self):
            return self.m.calculate_loss(b)

    wrapper = Loss(model)

    def loss_of(eu, ei):
        return torch.func.functional_call(wrapper, {"m.encoder.user_embedding.weight": eu,
                                                    "m.encoder.item_embedding.weight": ei}, ())

    inputs = (user_w.detach().clone().requires_grad_(), item_w.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(loss_of, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_equal_temperatures_equal_the_single_tau_model(r):
    for backbone in ("mf", "lightgcn"):
        base = {"backbone": backbone, "alpha": 0.9, "tau": 3.7, "shrink_norm": 0.05, "sparse_grad": False}
        single = make_model(r, dtype=torch.float32, **base)
        adaptive = make_model(r, dtype=torch.float32, tau0=3.7, tau1=3.7, **base)
        b = batch(r)
        ls, la = single.calculate_loss(b), adaptive.calculate_loss(b)
        ls.backward(), la.backward()
        assert torch.equal(ls, la)
        for a, s in zip(adaptive.parameters(), single.parameters()):
            assert torch.equal(a.grad, s.grad)


def test_without_balancing_or_shrink_the_loss_is_positives_only(r):
    for backbone in ("mf", "lightgcn"):
        model = make_model(r, backbone=backbone, alpha=0.0, shrink_norm=0.0, reg=0.0)
        b = batch(r)
        hu, hi = model.encoder()
        hu, hi = hu[b["user_id"]], hi[b["item_id"]]
        cos = (hu * hi).sum(1) / (hu.norm(dim=1) * hi.norm(dim=1))
        expected = -torch.log(torch.sigmoid(cos)).mean()
        torch.testing.assert_close(model.calculate_loss(b), expected, rtol=1e-12, atol=0)


class OneBatch:
    """A sampler whose epoch is one given batch."""

    def __init__(self, b):
        self.b, self.device = {"user": b["user_id"], "item": b["item_id"]}, torch.device("cpu")

    def epoch(self):
        yield self.b


@pytest.mark.filterwarnings("ignore:Detected call of")
@pytest.mark.parametrize("backbone", ["mf", "lightgcn"])
@pytest.mark.parametrize("epoch", [1, 4])
def test_an_sgd_step_moves_the_tables_by_decayed_lr_times_gradient(r, backbone, epoch):
    defaults = get_model("DirectSpecPlus").defaults()
    lr, gamma = float(defaults["learning_rate"]), float(defaults["lr_decay"])
    model = make_model(r, backbone=backbone)  # sparse_grad: auto -> sparse on MF under plain SGD
    assert model.encoder.user_embedding.sparse == (backbone == "mf")
    b = batch(r)
    reference = copy.deepcopy(model)
    for emb in (reference.encoder.user_embedding, reference.encoder.item_embedding):
        emb.sparse = False
    reference.calculate_loss(b).backward()
    before = [p.detach().clone() for p in model.parameters()]
    grads = [p.grad for p in reference.parameters()]

    # As specbench.run builds and steps them: the yaml's learner, the decay applied after every epoch.
    optimizer = OPTIMIZERS[defaults["learner"]](list(model.parameters()), lr=lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    for _ in range(epoch - 1):
        scheduler.step()
    wrap = batch_wrapper({"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_"})
    train_epoch(model, OneBatch(b), optimizer, wrap)
    step = lr * gamma ** (epoch - 1)
    for p, p0, g in zip(model.parameters(), before, grads):
        torch.testing.assert_close(p.detach(), p0 - step * g, rtol=1e-12, atol=1e-12)
    untouched = torch.ones(model.n_items, dtype=torch.bool)
    untouched[b["item_id"]] = False
    if backbone == "mf":  # only the batch's rows move
        assert torch.equal(model.encoder.item_embedding.weight[untouched], before[1][untouched])


def test_scoring_uses_raw_embeddings_and_follows_updates(r):
    for backbone in ("mf", "lightgcn"):
        model = make_model(r, backbone=backbone).eval()
        eu, ei = model.encoder.user_embedding.weight, model.encoder.item_embedding.weight
        h = propagation(r, 3) @ torch.cat([eu, ei]).detach() if backbone == "lightgcn" else \
            torch.cat([eu, ei]).detach()
        users = torch.tensor([1, 3])
        with torch.no_grad():
            got = model.full_sort_predict({"user_id": users}).view(2, -1)
            expected = h[users] @ h[N_USERS + 1:].T
            torch.testing.assert_close(got, expected, rtol=1e-12 if backbone == "mf" else 1e-6, atol=1e-14)
            # the reference's LightGCN score σ(h_uᵀh_i) ranks items the same way
            assert torch.equal(torch.sigmoid(expected).argsort(1), expected.argsort(1))
            eu.add_(1.0)  # an in-place update (as SGD makes) must not be hidden by the evaluation cache
            moved = model.full_sort_predict({"user_id": users}).view(2, -1)
        assert not torch.allclose(moved, got)


# ---- co-interaction ---------------------------------------------------------------------------

def test_co_interaction_paths_equal_the_dense_definition():
    rng = np.random.default_rng(2)
    m = (rng.random((40, 60)) < 0.05).astype(np.float32)
    m[3] = 0.0  # a user without training items: not even co-interacting with itself (τ1 on its diagonal)
    m[:, 7] = 0.0
    m[5, 9] = 2.0  # a duplicated row
    co = CoInteraction(sp.csr_matrix(m))
    users = torch.as_tensor(np.r_[rng.integers(0, 40, 30), 3, 3])
    items = torch.as_tensor(np.r_[rng.integers(0, 60, 30), 7, 9])
    truth_u = (m > 0).astype(int) @ (m > 0).T.astype(int) > 0
    truth_i = (m > 0).T.astype(int) @ (m > 0).astype(int) > 0
    for side, ids, truth in ((co.users, users, truth_u), (co.items, items, truth_i)):
        expected = torch.as_tensor(truth[ids.numpy()][:, ids.numpy()])
        assert torch.equal(side.shares_sparse(ids), expected)
        assert torch.equal(side.shares_dense(ids), expected)
    assert not co.user_pairs(torch.tensor([3]))[0, 0]


def test_co_interaction_never_forms_an_id_by_id_matrix():
    # A million users and items: a dense |U|² (or |I|²) matrix would need 4 TB, so any path that
    # forms one fails here; the B x B masks must still be right.
    n = 1_000_000
    rows = np.array([0, 0, 10, 999_999, 500_000])
    cols = np.array([5, 999_998, 5, 999_998, 123])
    co = CoInteraction(sp.csr_matrix((np.ones(5), (rows, cols)), shape=(n, n)))
    users = torch.tensor([0, 10, 999_999, 500_000])
    expected = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(co.users.shares_sparse(users), expected)
    assert torch.equal(co.users.shares_dense(users), expected)
    items = torch.tensor([5, 999_998, 123, 7])
    expected_items = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(co.items.shares_sparse(items), expected_items)
    assert torch.equal(co.items.shares_dense(items), expected_items)


def test_half_set_temperatures_are_refused(r):
    with pytest.raises(ValueError, match="both tau0 and tau1"):
        make_model(r, tau0=2.5)
    with pytest.raises(ValueError, match="linear kernel"):
        make_model(r, "DirectSpec", tau0=2.5, tau1=3.0)


# ---- no host synchronisation per step -----------------------------------------------------------

# Operators that make a CUDA host wait for the device: reading a value back (item, int(), bool()),
# or producing a shape that depends on values (nonzero, masked_select, unique, boolean-mask indexing,
# repeat_interleave without output_size).
READS_BACK = {"_local_scalar_dense", "item", "is_nonzero", "equal", "allclose", "nonzero", "masked_select",
              "unique", "_unique", "_unique2", "unique_dim", "unique_consecutive", "tolist"}


class DeviceReadBacks(TorchDispatchMode):
    """Records the operators of a region that would synchronise a CUDA host with the device."""

    def __init__(self):
        super().__init__()
        self.found = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        flat = [a for x in args for a in (x if isinstance(x, (list, tuple)) else [x])]
        bool_index = name in ("index", "index_put", "index_put_") and any(
            isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in flat[1:])
        open_ended = name == "repeat_interleave" and kwargs.get("output_size") is None
        if name in READS_BACK or bool_index or open_ended:
            self.found.append(name)
        return func(*args, **kwargs)


@pytest.mark.parametrize("backbone", ["mf", "lightgcn"])
@pytest.mark.parametrize("taus", [{}, {"tau0": 2.5, "tau1": 3.0}])
def test_training_steps_never_read_back_from_the_device(r, backbone, taus):
    # What runs on CUDA: the sampler, the dense co-interaction path, the loss, backward, SGD, the loss sum.
    model = make_model(r, backbone=backbone, dtype=torch.float32, sparse_grad=False, **taus)
    if model.co_interaction is not None:
        model.co_interaction.path = "dense"
    sampler = TrainSampler(dataset(r).inter_matrix(form="csr"), 4, "users")
    optimizer = OPTIMIZERS["sgd"](model.parameters(), lr=1.0)
    wrap = batch_wrapper({"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_"})
    with DeviceReadBacks() as watch:
        loss_sum = train_epoch(model, sampler, optimizer, wrap)
    assert sampler.steps_per_epoch() >= 2 and torch.isfinite(loss_sum)
    assert watch.found == []
