import os
import warnings
from pathlib import Path

import pytest

# REPO, make_spec and read_split live in tests/helpers.py; imported here too for the files that
# take them from conftest.
from tests.helpers import REPO, make_spec, read_split  # noqa: F401

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


@pytest.fixture
def spec_for(ml100k_small):
    return lambda model, **kw: make_spec(ml100k_small, model, **kw)


@pytest.fixture(scope="session")
def popularity_metrics(ml100k_small, tmp_path_factory) -> dict:
    """Final metrics of popularity ranking (RecBole's Pop, one counting epoch) on ``ml100k_small``:
    the bar every trained baseline must clear."""
    from specbench.run import run
    out = tmp_path_factory.mktemp("pop") / "runs" / "pop.json"
    return run(make_spec(ml100k_small, "Pop", epochs=1, eval_step=1, eval_at_start=False), out)["final"]["metrics"]
