"""`make bench` end to end on a small real subsample: the JSON it writes and the steps it times."""

import json
import subprocess
import sys

import pytest

from specbench.bench import check_prepared
from specbench.errors import SpecbenchError
from tests.conftest import read_split


def test_bench_writes_seconds_per_epoch_for_the_steps_of_an_epoch(ml100k_small, tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "specbench.bench", "--datasets", "ml100k_small", "--variants", "mf",
                             "mf-adaptive", "--repeats", "1", "--data-dir", str(ml100k_small), "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["hardware"]["device"] == "cpu" and record["hardware"]["cpu"]
    rows = len(read_split(ml100k_small, "ml100k_small", "train"))
    assert [r["variant"] for r in record["results"]] == ["mf", "mf-adaptive"]
    for r in record["results"]:
        assert r["steps_per_epoch"] == rows // 256  # the reference's floor(|train| / B) steps, batch 256
        assert r["seconds_per_epoch"] > 0 and r["peak_rss_bytes"] > 0


def test_bench_refuses_unprepared_data_before_any_work(tmp_path):
    with pytest.raises(SpecbenchError, match=r"not prepared in .*: citeulike; run `snakemake -c1 .*citeulike/stats.json"):
        check_prepared(["citeulike"], tmp_path)
