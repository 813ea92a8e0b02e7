import os
import warnings
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="session")
def ml100k_small(tmp_path_factory) -> Path:
    """A real subsample: the first 150 MovieLens-100k users (recbole wheel), split 80/20 per user."""
    from specbench.data import read_recbole_inter, recbole_ml100k_path, split_per_user, write_atomic
    df = read_recbole_inter(recbole_ml100k_path())
    users = sorted(df["user"].unique(), key=int)[:150]
    sub = df[df["user"].isin(users)]
    out = tmp_path_factory.mktemp("data")
    write_atomic(out / "ml100k_small", "ml100k_small", split_per_user(sub, 0.2, seed=7))
    return out


def make_spec(data_dir: Path, model: str, backbone: str = "mf", seed: int = 0, **params) -> dict:
    settings = {"epochs": 2, "eval_step": 1, "topk": [10, 20], "device": "cpu", "train_batch_size": 512, **params}
    from specbench.plugins import get_model
    entry = get_model(model)
    if "backbone" in entry.defaults() or "backbone" in entry.meta("schema"):
        settings["backbone"] = backbone  # a model that runs on several backbones takes it as a setting
    return {"dataset": "ml100k_small", "backbone": backbone, "method": model, "label": model, "model": model,
            "seed": seed, "data_dir": str(data_dir), "params": settings}


@pytest.fixture
def spec_for(ml100k_small):
    return lambda model, **kw: make_spec(ml100k_small, model, **kw)


def read_split(data_dir: Path, name: str, split: str) -> pd.DataFrame:
    return pd.read_csv(data_dir / name / f"{name}.{split}.inter", sep="\t", dtype=str)


@pytest.fixture(scope="session")
def popularity_metrics(ml100k_small, tmp_path_factory) -> dict:
    """Final metrics of popularity ranking (RecBole's Pop, one counting epoch) on ``ml100k_small``:
    the bar every trained baseline must clear."""
    from specbench.run import run
    out = tmp_path_factory.mktemp("pop") / "runs" / "pop.json"
    return run(make_spec(ml100k_small, "Pop", epochs=1, eval_step=1, eval_at_start=False), out)["final"]["metrics"]
