"""One run's setup, shared by ``specbench run`` and ``specbench bench``: everything training and evaluation use.

From a spec, its model entry and its validated settings, ``build`` makes the RecBole config and
dataset, the train and evaluation matrices, the model on its device, the device-side sampler, the
optimiser and learning-rate schedule (none for a training-free model), the full-ranking evaluator
and the two adapters to RecBole's Interaction (a training batch, a block of users to score).
Before the model is built (and again after), a memory estimate refuses a run that cannot fit on
its device, naming the setting to lower (``check_memory``).
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

import numpy as np
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
    """Uniform negatives drawn per training row (either sampler): ``neg_samples``, which defaults to 1
    for a pairwise model and 0 for any other."""
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


# ---- will it fit: an estimate before building, so that an absurd setting fails in one line ----

OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 0, "adagrad": 1, "rmsprop": 1}  # tensors per parameter
FLOAT_BYTES = 4
# Bytes per user x item score of an evaluation block: the model's scores and its intermediate
# product, the evaluator's masked copy (float32 each), the boolean test mask.
EVAL_BYTES_PER_SCORE = 3 * FLOAT_BYTES + 1


def memory_estimate(settings: dict, n_users: int, n_items: int, n_eval_users: int, train_rows: int,
                    trainable_bytes: int | None = None) -> list[tuple[str, int, str]]:
    """A lower bound of what a run needs on its device beyond what is allocated already, in parts:
    (the setting that scales it, bytes, what it is). ``n_users``/``n_items`` as RecBole counts them
    (padding included). Before the model is built (``trainable_bytes`` None) the embedding tables
    are (n_users + n_items) x embedding_size float32, plus their gradients and optimiser state;
    after, ``trainable_bytes`` (allocated already) needs its gradients and optimiser state. Models'
    own buffers (a filter's item-item matrix) are not counted: this refuses only what cannot fit."""
    learner = str(settings.get("learner", "adam")).lower()
    states = OPTIMIZER_STATES.get(learner, 2)
    d = int(settings.get("embedding_size") or 0)
    parts = []
    if trainable_bytes is None and d:
        tables = (n_users + n_items) * d * FLOAT_BYTES
        parts.append(("embedding_size", tables * (2 + states),
                      f"embedding tables of {n_users:,} users and {n_items:,} items x embedding_size {d} in float32 "
                      f"({tables:,} bytes), with their gradients and {learner} state"))
    elif trainable_bytes:
        parts.append(("embedding_size", trainable_bytes * (1 + states),
                      f"gradients and {learner} state of {trainable_bytes:,} bytes of trainable parameters"))
    if d:
        batch = min(int(settings.get("train_batch_size") or 1), max(train_rows, 1))
        negatives = max(int(settings.get("neg_samples") or 1), 1)
        parts.append(("train_batch_size", batch * (2 + negatives) * d * FLOAT_BYTES * 2,
                      f"training batches of {batch:,} rows x embedding_size {d} (activations and gradients)"))
        if settings.get("backbone") == "lightgcn":
            layers = int(settings.get("n_layers") or 0)
            parts.append(("embedding_size", (layers + 1) * (n_users + n_items) * d * FLOAT_BYTES * 2,
                          f"LightGCN propagation: {layers + 1} layers of {n_users + n_items:,} x {d} float32, "
                          "with gradients"))
    per_block = int(settings.get("eval_scores_per_block") or 2**24)
    users = min(max(1, per_block // max(n_items, 1)), max(n_eval_users, 1))
    parts.append(("eval_scores_per_block", users * n_items * EVAL_BYTES_PER_SCORE,
                  f"evaluation blocks of {users:,} users x {n_items:,} items ({EVAL_BYTES_PER_SCORE} bytes per score)"))
    return parts


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_memory_files() -> list[tuple[str, str]]:
    """(limit, usage) files of this process's memory cgroup and of the cgroups above it (v2 and v1)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        if line.count(":") < 2:
            continue
        _, controllers, rel = line.split(":", 2)
        if controllers == "":  # v2: 0::/path
            base, limit, usage = Path("/sys/fs/cgroup"), "memory.max", "memory.current"
        elif "memory" in controllers.split(","):
            base, limit, usage = Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes", "memory.usage_in_bytes"
        else:
            continue
        folder = base / rel.lstrip("/")
        for f in [folder, *folder.parents]:
            if f == base.parent:
                break
            out.append((str(f / limit), str(f / usage)))
    return out


def available_memory(device: torch.device) -> tuple[int | None, str]:
    """(bytes a run may still allocate on ``device``, where the number comes from); None if unknown.

    CUDA: the device's free memory (torch.cuda.mem_get_info) plus what torch's allocator holds
    unused. CPU: MemAvailable + SwapFree of /proc/meminfo, capped by the cgroup's memory limit and
    the address-space rlimit when set (a batch job's limit)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached), f"free on {device} (torch.cuda.mem_get_info)"
    found, sources = [], []
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines
                if line.split()[1:2] and line.split()[1].isdigit()}
        if "MemAvailable" in info:
            found.append(info["MemAvailable"] + info.get("SwapFree", 0))
            sources.append("MemAvailable + SwapFree in /proc/meminfo")
    except (OSError, IndexError, ValueError):
        pass
    for limit_file, usage_file in _cgroup_memory_files():
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            found.append(max(limit - usage, 0))
            sources.append(f"the cgroup limit {limit_file}")
    import resource
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            vm = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
                      if line.startswith("VmSize:"))
            found.append(max(soft - vm, 0))
            sources.append("ulimit -v")
        except (OSError, StopIteration, ValueError):
            pass
    if not found:
        return None, "unknown"
    i = int(np.argmin(found))
    return int(found[i]), sources[i]


# What each setting the estimate names is compared against: the usual value (harness default or
# the models' embedding size); the setting whose return to it saves most is the one to lower.
USUAL = {"embedding_size": 64, "train_batch_size": 2048, "eval_scores_per_block": 2**24}


def check_memory(where: str, device: torch.device, settings: dict, counts: tuple[int, int, int, int],
                 trainable_bytes: int | None = None, available: tuple[int | None, str] | None = None) -> None:
    """Refuse a run whose estimate (``memory_estimate`` of ``counts``: users, items, evaluated users,
    training rows) exceeds the memory available on its device (``available_memory`` unless given),
    naming the estimate in bytes and the setting to lower."""
    parts = memory_estimate(settings, *counts, trainable_bytes=trainable_bytes)
    total = sum(b for _, b, _ in parts)
    free, source = available if available is not None else available_memory(device)
    if free is None or total <= free:
        return

    def saved(key):
        if not settings.get(key) or int(settings[key]) <= USUAL[key]:
            return 0
        usual = memory_estimate({**settings, key: USUAL[key]}, *counts, trainable_bytes=trainable_bytes)
        return total - sum(b for _, b, _ in usual)

    setting = max(USUAL, key=saved)
    if not saved(setting):  # nothing is unusually large: the part that is largest
        setting = max(parts, key=lambda p: p[1])[0]
    detail = "; ".join(f"{text}: {b:,}" for _, b, text in parts if b)
    raise SpecbenchError(
        f"{where} cannot fit in memory on {device}: it needs at least {total:,} bytes ({_gib(total)}: {detail}), "
        f"but {free:,} bytes ({_gib(free)}) are available ({source}). Lower {setting} (now {settings.get(setting)}).")


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def build(spec: dict, entry, settings: dict, work_dir: Path, data_cache: dict | None = None) -> Harness:
    """The harness of one run: ``entry`` is its plugins.ModelEntry, ``settings`` validated; RecBole's
    checkpoint_dir is ``work_dir`` (created). Seeds every RNG (RecBole's init_seed) before the data
    and again before the model, so a model starts the same whether its data were built or reused.

    ``data_cache`` (a dict the caller keeps): the RecBole dataset and the matrices of a data folder,
    dataset and splits are built once and reused by later builds (the trials of one tuning job)."""
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
    key = (str(Path(spec["data_dir"]).resolve()), spec["dataset"], train_split, eval_split)
    if data_cache is not None and key in data_cache:
        dataset, built, train_matrix, test_matrix = data_cache[key]
    else:
        dataset = create_dataset(config)
        built = dict(zip((train_split, eval_split), dataset.build()))
        train_matrix = built[train_split].inter_matrix(form="csr")
        test_matrix = built[eval_split].inter_matrix(form="csr")
        if data_cache is not None:
            data_cache[key] = (dataset, built, train_matrix, test_matrix)

    # Will it fit? Before the model is built (its tables), and after (its gradients, optimiser state).
    where = f"{spec['dataset']}/{spec['backbone']}/{spec['method']} seed {seed}"
    counts = (int(dataset.user_num), int(dataset.item_num), int(np.count_nonzero(np.diff(test_matrix.indptr))),
              int(train_matrix.nnz))
    check_memory(where, device, settings, counts)
    init_seed(seed, True)
    t_setup = time.perf_counter()
    model = entry.cls(config, built[train_split]).to(device)
    sync(device)
    setup_seconds = time.perf_counter() - t_setup
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    check_memory(where, device, settings, counts, trainable_bytes=trainable)
    data_file = f"{Path(spec['data_dir']) / spec['dataset']}/{spec['dataset']}.{train_split}.inter"
    sampler = TrainSampler(train_matrix, settings["train_batch_size"], settings["train_sampler"], negatives,
                           device=device, seed=seed, dataset=spec["dataset"], data_file=data_file,
                           last_batch=settings["users_last_batch"])
    optimizer, scheduler = _optimiser(model, settings)
    evaluator = RankingEvaluator(train_matrix, test_matrix, ks=settings["topk"], device=device,
                                 scores_per_block=int(settings["eval_scores_per_block"]))
    user_field = config["USER_ID_FIELD"]

    def score_users(users):
        return model.full_sort_predict(Interaction({user_field: users})).view(len(users), -1)

    return Harness(device, config, dataset, train_split, eval_split, train_matrix, test_matrix, model, sampler,
                   optimizer, scheduler, evaluator, batch_wrapper(config), score_users, setup_seconds)
