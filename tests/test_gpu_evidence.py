"""gpu/evidence.py before any device time is spent: its dry mode end to end on the CPU, the bench over
every catalogue method with a deadline, the paper projection, and the carry folder's pieces."""

import importlib.util
import json
import re
import subprocess
import sys
import tarfile
import time

import pytest

from tests.helpers import REPO

DRY_BUDGET = 50  # seconds; the dry mode's default
OUT_FILES = ("summary.json", "bench.json", "fidelity.json", "study.json", "runs.tar.gz", "evidence.log")


def _load(name):
    spec = importlib.util.spec_from_file_location(f"gpu_{name}", REPO / "gpu" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dry(tmp_path_factory):
    """One dry run (CPU, stand-in data, tiny epochs): its --out folder, its wall time and exit status."""
    base = tmp_path_factory.mktemp("evidence")
    out = base / "out"
    t0 = time.time()
    done = subprocess.run([sys.executable, str(REPO / "gpu" / "evidence.py"), "--dry", "--out", str(out),
                           "--work", str(base / "work"), "--budget-seconds", str(DRY_BUDGET)],
                          capture_output=True, text=True, timeout=DRY_BUDGET + 100, cwd=REPO)
    return out, time.time() - t0, done


def test_dry_run_writes_the_files_it_promises(dry):
    out, _, done = dry
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == sorted(OUT_FILES)  # the device tool returns 8 files at most
    summary = json.loads((out / "summary.json").read_text())
    for name in ("bench.json", "fidelity.json", "study.json"):
        json.loads((out / name).read_text())
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = tar.getnames()
    assert summary["runs"]["files"] == len(names)
    assert "error" not in summary
    assert "budget" in (out / "evidence.log").read_text()


def test_dry_run_names_the_device(dry):
    summary = json.loads((dry[0] / "summary.json").read_text())
    device = summary["device"]
    assert device["requested"] == "cpu" and device["name"] == device["cpu"] and device["name"]
    assert device["torch"] and device["python"] and device["packages"]["recbole"] == "1.2.1"
    assert "DirectSpecPlus" in device["models"]


def test_dry_run_stops_at_its_budget_and_keeps_what_finished(dry):
    out, wall, _ = dry
    summary = json.loads((out / "summary.json").read_text())
    assert summary["wall_seconds"] <= DRY_BUDGET and summary["within_budget"]
    assert wall <= DRY_BUDGET + 15  # the interpreter's start and exit around it
    # the study alone is far more than 50 s: some jobs are stopped or never started, each listed
    assert summary["stopped_at_budget"]
    assert all(("budget" in entry) or entry.startswith("bench ") for entry in summary["stopped_at_budget"])
    assert {s["step"] for s in summary["steps"]} == {"bench", "fidelity", "study"}
    assert any(s["status"] == "stopped at budget" for s in summary["steps"])
    bench = json.loads((out / "bench.json").read_text())
    assert {r["status"] for r in bench["results"]} <= {"timed", "not timed: budget"}
    timed = [r for r in bench["results"] if r["status"] == "timed"]
    assert all(r["seconds_per_epoch"] > 0 and r["eval_seconds"] > 0 for r in timed)
    study = json.loads((out / "study.json").read_text())
    fidelity = json.loads((out / "fidelity.json").read_text())
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = set(tar.getnames())
    finished = [j for j in study["jobs"] if j["status"] == "finished"]
    finished += [r for r in fidelity["runs"].values() if r["status"] == "finished"]
    for job in study["jobs"]:
        if job["status"] == "finished":
            assert job["record"] in names  # every finished record is in the tarball
        assert job["status"] in ("finished", "stopped at budget", "not started: budget", "not started: blocked")
    assert timed or finished, "nothing finished within the dry budget"


def test_dry_run_compares_step_2_with_the_cpu_fidelity_records(dry):
    fidelity = json.loads((dry[0] / "fidelity.json").read_text())
    assert set(fidelity["runs"]) == {"mf-single", "mf-adaptive", "lightgcn-single"}
    for name in ("mf-single", "mf-adaptive"):
        run = fidelity["runs"][name]
        assert len(run["cpu_records"]) == 3
        epochs = {row["epoch"] for row in run["comparison"]}
        assert epochs >= ({0, 30, 60} if name == "mf-single" else {0, 10, 20, 30, 40, 50})
    single = [r for r in fidelity["runs"]["mf-single"]["comparison"] if r["epoch"] == 30 and r["metric"] == "ndcg@20"]
    assert single[0]["authors"] == 0.1846


def test_authors_numbers_are_those_of_the_fidelity_readme():
    evidence = _load("evidence")
    text = (REPO / "results" / "reference" / "cpu-fidelity-citeulike" / "README.md").read_text()
    table = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0] == "30" and re.match(r"0\.\d{4}$", cells[2]):
            code = re.search(r"`([^`]+)`", cells[1])
            table[code.group(1) if code else cells[1].split()[0].lower()] = float(cells[2])
    assert table == evidence.AUTHORS_MF_SINGLE[30]


def test_bench_rows_cover_the_catalogue_with_directspec_first():
    from specbench.bench import VARIANTS, catalogue_rows, select_rows
    from specbench.schemas import load_yaml
    rows = catalogue_rows()
    assert [r.name for r in rows[:4]] == list(VARIANTS)
    methods = load_yaml(REPO / "config" / "methods.yaml")["methods"]
    assert {r.method for r in rows} == set(methods)
    assert len({(r.method, r.backbone) for r in rows}) == len(rows)
    family = [i for i, r in enumerate(rows) if r.model in ("DirectSpec", "DirectSpecPlus")]
    assert family == list(range(len(family)))  # DirectSpec(+) before every baseline
    assert all(r.training_free for r in rows[-4:]) and not any(r.training_free for r in rows[:-4])
    assert [r.name for r in select_rows(rows, ["BPR", "lightgcn"])] == ["lightgcn", "BPR/mf", "BPR/lightgcn"]
    assert [r.name for r in select_rows(rows, ["DirectSpecPlusPublished/mf"])] == ["mf"]


def test_bench_records_rows_past_its_deadline_as_not_timed(ml100k_small, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "specbench.bench", "--datasets", "ml100k_small", "--methods", "mf",
                           "SGL", "--data-dir", str(ml100k_small), "--out", str(out), "--deadline", str(time.time() - 1)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert [(r["variant"], r["status"]) for r in record["results"]] == [("mf", "not timed: budget"),
                                                                         ("SGL/lightgcn", "not timed: budget")]
    assert record["complete"] is False and record["options"]["rows"] == ["mf", "SGL/lightgcn"]


def test_paper_projection_counts_every_job_and_scales_yelp():
    from specbench.bench import catalogue_rows, project_study
    sizes = {"citeulike": (166025, 5551, 16980), "gowalla": (810128, 29858, 40981)}
    results = []
    for ds, (rows, users, items) in sizes.items():
        for r in catalogue_rows():
            row = {"dataset": ds, "variant": r.name, "method": r.method, "backbone": r.backbone, "status": "timed",
                   "train_rows": rows, "users": users, "items": items, "import_seconds": 1.0, "build_seconds": 1.0,
                   "eval_seconds": 0.5, "training_free": r.training_free}
            row.update(fit_seconds=2.0, seconds_per_epoch=None) if r.training_free else row.update(seconds_per_epoch=0.1)
            results.append(row)
    projection = project_study(REPO / "config" / "paper.yaml", {"results": results, "hardware": {"gpu": "test"}})
    assert projection["missing"] == [] and projection["seeds"] == [0]
    assert projection["extrapolated_from"] == {"yelp": "citeulike"}  # nearer in training rows than Gowalla
    assert projection["jobs"] > 500 and 0 < projection["hours"] < 1000
    assert set(projection["by_kind_seconds"]) == {"run", "trial", "sweep"}


def test_carry_packs_a_dataset_reproducibly(ml100k_small, tmp_path):
    carry = _load("carry")
    first = carry.pack_dataset(ml100k_small, "ml100k_small", tmp_path / "a.tar.gz")
    second = carry.pack_dataset(ml100k_small, "ml100k_small", tmp_path / "b.tar.gz")
    assert first["sha256"] == second["sha256"] and first["stats"]["users"] == 150
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["ml100k_small/ml100k_small.test.inter", "ml100k_small/ml100k_small.train.inter",
                                          "ml100k_small/stats.json"]
    evidence = _load("evidence")
    assert evidence.wheel_dist(tmp_path / "rpds_py-2026.9.1-cp312-cp312-manylinux_2_17_x86_64.whl") == ("rpds_py", "2026.9.1")
