"""What several test files share: a stand-in for a RecBole dataset, the one model builder, run specs,
the toy plugin source, tiny batches and dense transcriptions of the LightGCN graph.

Ids follow RecBole: users and items are numbered from 1, id 0 is padding (a row and a column of
the training matrix without interactions, counted in ``dataset.num``).
"""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

REPO = Path(__file__).resolve().parents[1]


# ---- a RecBole dataset stand-in ----------------------------------------------------------------

class FakeDataset:
    """What the models read from a RecBole dataset: ``num(field)`` (padding included), the training
    matrix ``inter_matrix(form=...)`` (row and column 0: padding), ``inter_feat`` and the field names.

    ``pairs``: (user, item) training rows in RecBole ids (from 1), in order; a pair given twice is a
    duplicated row, which RecBole's matrix sums (value 2) and every model counts once.
    ``n_users``, ``n_items``: the real users and items (RecBole's counts are one more).
    """

    uid_field, iid_field = "user_id", "item_id"

    def __init__(self, pairs, n_users: int, n_items: int):
        pairs = list(pairs)
        self.users = np.array([u for u, _ in pairs], dtype=np.int64)
        self.items = np.array([i for _, i in pairs], dtype=np.int64)
        if len(pairs) and (self.users.min() < 1 or self.items.min() < 1
                           or self.users.max() > n_users or self.items.max() > n_items):
            raise ValueError("pairs are RecBole ids: users 1..n_users, items 1..n_items (0 is padding)")
        self.user_num, self.item_num = n_users + 1, n_items + 1
        self.inter_feat = {self.uid_field: torch.as_tensor(self.users), self.iid_field: torch.as_tensor(self.items)}

    @classmethod
    def from_matrix(cls, r: np.ndarray, duplicates=()) -> "FakeDataset":
        """From a dense users x items 0/1 matrix without padding (row u is RecBole user u + 1), row by
        row; ``duplicates``: (user, item) RecBole ids of training rows that appear a second time."""
        users, items = np.nonzero(np.asarray(r))
        pairs = [(int(u) + 1, int(i) + 1) for u, i in zip(users, items)] + [tuple(d) for d in duplicates]
        return cls(pairs, r.shape[0], r.shape[1])

    def num(self, field: str) -> int:
        return self.user_num if field == self.uid_field else self.item_num

    def inter_matrix(self, form: str = "coo", value_field=None) -> sp.spmatrix:
        """|users + 1| x |items + 1| counts of the training rows (float64), in scipy format ``form``."""
        m = sp.coo_matrix((np.ones(len(self.users)), (self.users, self.items)), shape=(self.user_num, self.item_num))
        return m.asformat(form)


# A tiny graph: users 1..3, items 1..5.
TINY_PAIRS = [(1, 1), (1, 2), (1, 5), (2, 2), (2, 3), (3, 4), (3, 5), (3, 1)]


def tiny_graph() -> FakeDataset:
    return FakeDataset(TINY_PAIRS, n_users=3, n_items=5)


def tiny_adjacency() -> torch.Tensor:
    """``dense_adjacency`` of the tiny graph (nodes: RecBole's 4 user ids, then its 6 item ids)."""
    return dense_adjacency(tiny_graph().inter_matrix())


def dense_adjacency(matrix) -> torch.Tensor:
    """Ã = D^-1/2 A D^-1/2, A = [[0, R], [Rᵀ, 0]] for the 0/1 pattern R of ``matrix`` (users x items,
    as the model sees it: padding included), by hand in float64; isolated nodes stay zero."""
    r = torch.as_tensor(np.asarray(sp.csr_matrix(matrix).todense()) != 0, dtype=torch.float64)
    nu, ni = r.shape
    a = torch.zeros(nu + ni, nu + ni, dtype=torch.float64)
    a[:nu, nu:], a[nu:, :nu] = r, r.t()
    deg = a.sum(1)
    inv = torch.where(deg > 0, 1 / deg.clamp_min(1).sqrt(), torch.zeros_like(deg))
    return inv[:, None] * a * inv[None, :]


# ---- building models ---------------------------------------------------------------------------

class FakeConfig(dict):
    """Settings as a model reads them; a missing key reads None, as in RecBole's Config."""

    def __missing__(self, key):
        return None


# What RecBole's Config adds around a model's own settings (harness-side keys the models read).
FAKE_CONFIG = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "NEG_PREFIX": "neg_",
               "device": torch.device("cpu"), "weight_decay": 0.0, "clip_grad_norm": None}


def build_model(name: str, dataset, *, dtype: torch.dtype | None = None, seed: int = 0, work_dir=None, **settings):
    """The plugin (or RecBole) model ``name``, its parameters drawn after ``torch.manual_seed(seed)``.

    ``dataset``: a ``FakeDataset`` (settings: the model yaml's defaults, then FAKE_CONFIG, then
    ``settings``), or a folder of prepared atomic files holding ``ml100k_small`` (a real RecBole
    dataset and Config, as the harness builds them; ``backbone`` and the other settings go to the
    run spec). ``dtype``: convert the model (e.g. torch.float64) after building.
    """
    from specbench.plugins import get_model
    if isinstance(dataset, (str, Path)):
        from recbole.data import create_dataset
        from specbench.harness import recbole_config
        from specbench.settings import resolve
        spec = make_spec(Path(dataset), name, **settings)
        r = resolve(spec)
        entry, resolved = r.entry, r.settings
        work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="specbench-model-"))
        config, splits = recbole_config(entry.cls, spec, resolved, work)
        config["device"] = torch.device("cpu")
        data = dict(zip(splits, create_dataset(config).build()))[splits[0]]
    else:
        entry = get_model(name)
        config, data = FakeConfig({**entry.defaults(), **FAKE_CONFIG, **settings}), dataset
    torch.manual_seed(seed)
    model = entry.cls(config, data)
    return model if dtype is None else model.to(dtype)


def tiny_model(name: str, dataset=None, **settings):
    """``build_model`` on the tiny graph with 4-dimensional embeddings."""
    return build_model(name, dataset if dataset is not None else tiny_graph(), **{"embedding_size": 4, **settings})


def batch(users, items, negs=None):
    """A RecBole Interaction of training rows (user_id, item_id[, neg_item_id]) in RecBole ids."""
    from recbole.data.interaction import Interaction
    fields = {"user_id": torch.tensor(users), "item_id": torch.tensor(items)}
    if negs is not None:
        fields["neg_item_id"] = torch.tensor(negs)
    return Interaction(fields)


def leaf_tables(model) -> torch.Tensor:
    """The model's embedding tables as one float64 leaf, users then items."""
    e = torch.cat([model.encoder.user_embedding.weight, model.encoder.item_embedding.weight]).detach()
    return e.double().requires_grad_(True)


# ---- run specs on prepared data ----------------------------------------------------------------

def make_spec(data_dir: Path, model: str, backbone: str = "mf", seed: int = 0, **params) -> dict:
    """A run spec of ``model`` on ``ml100k_small`` in ``data_dir`` (short, CPU), given ``backbone``
    as a setting when the model takes one."""
    settings = {"epochs": 2, "eval_step": 1, "topk": [10, 20], "device": "cpu", "train_batch_size": 512, **params}
    from specbench.plugins import get_model
    if get_model(model).takes_backbone:
        settings["backbone"] = backbone
    return {"dataset": "ml100k_small", "backbone": backbone, "method": model, "label": model, "model": model,
            "seed": seed, "data_dir": str(data_dir), "params": settings}


def read_split(data_dir: Path, name: str, split: str) -> pd.DataFrame:
    return pd.read_csv(data_dir / name / f"{name}.{split}.inter", sep="\t", dtype=str)


# ---- a toy plugin ------------------------------------------------------------------------------

_TOY_PLUGIN = '''
import torch
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType


class ToyPop(GeneralRecommender):
    """Training-free: item popularity counted in __init__ (ties: lower id first), no parameters."""
    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        counts = torch.as_tensor(dataset.inter_matrix(form="csr").sum(0), dtype=torch.float64).view(-1)
        ties = torch.arange(len(counts), dtype=torch.float64) / (len(counts) + 1)
        self.register_buffer("popularity", (counts - ties).float())

    def scoring_embeddings(self):
        return None

    def calculate_loss(self, interaction):
        raise AssertionError("a training-free model is never trained")

    def predict(self, interaction):
        return self.popularity[interaction[self.ITEM_ID]]

    def full_sort_predict(self, interaction):
        return self.popularity.expand(len(interaction[self.USER_ID]), -1).reshape(-1)
'''


def toy_plugin(name: str = "ToyPop") -> str:
    """Source of a model file defining one plugin class ``name``: popularity ranking, training-free
    (the harness evaluates it once, as epoch 0), a plain GeneralRecommender without backbones."""
    return textwrap.dedent(_TOY_PLUGIN).replace("ToyPop", name)


def write_toy_plugin(folder: Path, name: str = "ToyPop", yaml_text: str | None = None) -> Path:
    """Write ``toy_plugin(name)`` as ``<folder>/<name lowercased>.py`` (and ``<name>.yaml`` holding
    ``yaml_text`` when given), creating the folder: a models folder for $SPECBENCH_MODELS. Returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name.lower()}.py").write_text(toy_plugin(name))
    if yaml_text is not None:
        (folder / f"{name}.yaml").write_text(yaml_text)
    return folder
