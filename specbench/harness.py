"""One run's setup, shared by ``specbench run`` and ``specbench bench``: everything training and evaluation use.

From a spec, its model entry and its validated settings, ``build`` makes the RecBole config and
dataset, the train and evaluation matrices, the model on its device, the device-side sampler, the
optimiser and learning-rate schedule (none for a training-free model), the full-ranking evaluator
and the two adapters to RecBole's Interaction (a training batch, a block of users to score).
This is the module that talks to RecBole; its compatibility shim is imported first.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import scipy.sparse as sp
import torch

from specbench import compat  # noqa: F401  (must precede recbole)
from specbench.data import atomic_files
from specbench.errors import SpecbenchError
from specbench.metrics import RankingEvaluator
from specbench.sampling import TrainSampler

# RecBole 1.2.1 on pandas 2.3 / torch 2.13 warns on every run about APIs it uses; they are harmless
# at these pins (../shared/reference/recbole.md) and would bury the job log.
warnings.filterwarnings("ignore", category=FutureWarning, module="recbole")
warnings.filterwarnings("ignore", message=".*torch.sparse.SparseTensor.*", category=UserWarning)

OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad,
              "rmsprop": torch.optim.RMSprop, "adamw": torch.optim.AdamW}


@dataclass
class Harness:
    """What one run trains and evaluates with (see ``build``)."""
    device: torch.device
    config: Any                      # recbole.config.Config
    dataset: Any                     # the RecBole dataset before splitting (its id <-> token maps)
    train_split: str                 # "train", or "fit" under validation
    eval_split: str                  # "test", or "valid" under validation
    train_matrix: sp.csr_matrix      # users x items, row counts
    test_matrix: sp.csr_matrix
    model: torch.nn.Module
    sampler: TrainSampler
    optimizer: torch.optim.Optimizer | None          # None: a training-free model (fitted when built)
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    evaluator: RankingEvaluator
    wrap: Callable                   # sampler batch -> Interaction
    score_users: Callable            # user ids -> (len(users), n_items) scores
    setup_seconds: float             # building the model (a training-free filter's fit)


def resolve_device(requested: str) -> torch.device:
    """CPU unless CUDA is asked for; asking for CUDA without a visible GPU is an error."""
    requested = str(requested or "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SpecbenchError(f"device {requested!r} was asked for, but torch {torch.__version__} sees no CUDA GPU "
                                 f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); "
                                 "set device: cpu or run on a GPU node")
        return torch.device(requested)
    raise SpecbenchError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {requested!r}")


def negatives_per_row(entry_cls, settings: dict) -> int:
    """Uniform negatives drawn per training row: none under the ``users`` sampler, else ``neg_samples``,
    which defaults to 1 for a pairwise model and 0 for any other."""
    if settings["train_sampler"] == "users":
        return 0
    from recbole.utils import InputType
    pairwise = getattr(entry_cls, "input_type", None) == InputType.PAIRWISE
    return int(settings.get("neg_samples", 1 if pairwise else 0))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _splits(settings: dict) -> list[str]:
    # Model selection trains on `fit` and scores `valid` (both carved from train); test is not loaded.
    return ["fit", "valid"] if settings.get("validation") else ["train", "test"]


@contextmanager
def _recbole_config_guard():
    """RecBole's Config parses sys.argv and overwrites CUDA_VISIBLE_DEVICES: undo both."""
    argv, cvd = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    sys.argv = sys.argv[:1]
    try:
        yield
    finally:
        sys.argv = argv
        if cvd is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = cvd


def recbole_config(model_cls, spec: dict, settings: dict, work_dir: Path, negatives: int | None = None):
    """(RecBole Config, [train split, eval split]); ``negatives``: per row, default ``negatives_per_row``."""
    from recbole.config import Config
    splits = _splits(settings)
    negatives = negatives_per_row(model_cls, settings) if negatives is None else negatives
    fixed = {
        "data_path": str(Path(spec["data_dir"]).resolve()), "benchmark_filename": splits,
        "load_col": {"inter": ["user_id", "item_id"]}, "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "seed": int(spec["seed"]), "reproducibility": True, "checkpoint_dir": str(work_dir),
        "gpu_id": "", "show_progress": False, "log_wandb": False, "state": "WARNING", "save_dataset": False,
        "save_dataloaders": False, "filter_inter_by_user_or_item": False, "user_inter_num_interval": None,
        "item_inter_num_interval": None, "val_interval": None, "unused_col": None,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": negatives, "alpha": 1.0,
                                  "dynamic": False, "candidate_num": 0} if negatives else None,
    }
    with _recbole_config_guard():
        return Config(model=model_cls, dataset=spec["dataset"], config_dict={**settings, **fixed}), splits


def batch_wrapper(config):
    """A function turning the sampler's {user, item, neg_item} tensors into a RecBole Interaction."""
    from recbole.data.interaction import Interaction
    names = {"user": config["USER_ID_FIELD"], "item": config["ITEM_ID_FIELD"],
             "neg_item": config["NEG_PREFIX"] + config["ITEM_ID_FIELD"]}
    return lambda batch: Interaction({names[k]: v for k, v in batch.items()})


def _optimiser(model, settings: dict):
    """(optimiser, per-epoch exponential lr decay) over the trainable parameters; (None, None) if there are none."""
    learner = str(settings["learner"]).lower()
    if learner not in OPTIMIZERS:
        raise SpecbenchError(f"learner must be one of {sorted(OPTIMIZERS)}, got {settings['learner']!r}")
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        return None, None
    optimizer = OPTIMIZERS[learner](trainable, lr=float(settings["learning_rate"]),
                                    weight_decay=float(settings["weight_decay"]))
    return optimizer, torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=float(settings["lr_decay"]))


def build(spec: dict, entry, settings: dict, work_dir: Path) -> Harness:
    """The harness of one run: ``entry`` is its plugins.ModelEntry, ``settings`` validated; RecBole's
    checkpoint_dir is ``work_dir`` (created). Seeds every RNG (RecBole's init_seed) before the data."""
    from recbole.data import create_dataset
    from recbole.data.interaction import Interaction
    from recbole.utils import init_seed
    device = resolve_device(settings["device"])
    atomic_files(Path(spec["data_dir"]), spec["dataset"], tuple(_splits(settings)))
    work_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger().setLevel(logging.WARNING)
    negatives, seed = negatives_per_row(entry.cls, settings), int(spec["seed"])
    config, (train_split, eval_split) = recbole_config(entry.cls, spec, settings, work_dir, negatives)
    config["device"] = device
    init_seed(seed, True)
    dataset = create_dataset(config)
    built = dict(zip((train_split, eval_split), dataset.build()))
    train_matrix = built[train_split].inter_matrix(form="csr")
    test_matrix = built[eval_split].inter_matrix(form="csr")

    t_setup = time.perf_counter()
    model = entry.cls(config, built[train_split]).to(device)
    sync(device)
    setup_seconds = time.perf_counter() - t_setup
    data_file = f"{Path(spec['data_dir']) / spec['dataset']}/{spec['dataset']}.{train_split}.inter"
    sampler = TrainSampler(train_matrix, settings["train_batch_size"], settings["train_sampler"], negatives,
                           device=device, seed=seed, dataset=spec["dataset"], data_file=data_file)
    optimizer, scheduler = _optimiser(model, settings)
    evaluator = RankingEvaluator(train_matrix, test_matrix, ks=settings["topk"], device=device,
                                 scores_per_block=int(settings["eval_scores_per_block"]))
    user_field = config["USER_ID_FIELD"]

    def score_users(users):
        return model.full_sort_predict(Interaction({user_field: users})).view(len(users), -1)

    return Harness(device, config, dataset, train_split, eval_split, train_matrix, test_matrix, model, sampler,
                   optimizer, scheduler, evaluator, batch_wrapper(config), score_users, setup_seconds)
