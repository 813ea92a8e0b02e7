"""`specbench estimate`: a study's wall time from bench records, checked against hand-computed schedules."""

import pytest

from specbench.errors import SpecbenchError
from specbench.estimate import Calibration, CostModel, Job, estimate, makespan, n_evaluations, study_jobs
from specbench.study import Study
from tests.conftest import REPO


def test_evaluations_counted_as_a_run_makes_them():
    assert n_evaluations({"eval_step": 5}, 40) == 9            # before training, then 5, 10, ..., 40
    assert n_evaluations({"eval_step": 5}, 42) == 10           # ... and the last epoch, 42
    assert n_evaluations({"eval_step": 10, "eval_at_start": False}, 30) == 3


def test_list_schedule_by_hand():
    jobs = [Job("search a worker 0", "search", 10, group="search a"), Job("search a worker 1", "search", 6, group="search a"),
            Job("run a seed 0", "run", 5, after="search a"), Job("run b seed 0", "run", 12)]
    # 2 slots: t=0 b(12) and a0(10); t=10 a1(6) -> 16; t=12 idle; the search ends at 16, run a 16 -> 21
    assert makespan(jobs, 2) == 21
    assert makespan(jobs, 1) == 33    # everything one after another
    assert makespan(jobs, 8) == 15    # only the dependency waits: max(12, 10 + 5)


def _record(study, seconds_per_epoch=0.1, setup=2.0, evaluation=0.05) -> dict:
    rows = []
    for ds, bb, method in {(j.dataset, j.backbone, j.method) for j in study.jobs()}:
        row = {"dataset": ds, "method": method, "backbone": bb, "status": "timed", "train_rows": 1000,
               "users": 10, "items": 10, "import_seconds": setup / 2, "build_seconds": setup / 2,
               "eval_seconds": evaluation}
        if bb == "filter":
            row.update(training_free=True, fit_seconds=0.8)
        else:
            row.update(seconds_per_epoch=seconds_per_epoch)
        rows.append(row)
    return {"hardware": {"device": "cpu", "cpu": "test CPU"}, "results": rows}


def test_a_search_costs_its_setup_once_and_each_trial_its_epochs_and_evaluations():
    study = Study.from_file(REPO / "config" / "quick.yaml", root=REPO)
    model = CostModel(_record(study), study.datasets_catalog)
    t = study.tuning
    half = Calibration(fraction={("BPR", "mf"): 0.5}, chosen_epoch={("BPR", "mf"): (10, 40)})
    jobs = {j.name: j for j in study_jobs(study, model, half)[0]}
    search, run = jobs["search ml100k/mf/BPR worker 0"], jobs["run ml100k/mf/BPR seed 0"]
    settings = study.settings("ml100k", "mf", "BPR", trial=True)
    per_trial = t["max_epochs"] * 0.1 + n_evaluations(settings, t["max_epochs"]) * 0.05
    assert search.upper_seconds == pytest.approx(2.0 + t["trials"] * per_trial)
    half_trial = t["max_epochs"] // 2 * 0.1 + n_evaluations(settings, t["max_epochs"] // 2) * 0.05
    assert search.seconds == pytest.approx(2.0 + t["trials"] * half_trial)
    run_settings = study.settings("ml100k", "mf", "BPR")
    chosen = t["max_epochs"] * 10 // 40
    assert run.seconds == pytest.approx(2.0 + chosen * 0.1 + n_evaluations(run_settings, chosen) * 0.05)
    assert run.after == "search ml100k/mf/BPR"
    gfcf = jobs["run ml100k/filter/GFCF seed 0"]
    assert gfcf.seconds == pytest.approx(2.0 + 0.05)  # start and build (the fit), one evaluation


def test_unbenched_methods_are_listed_not_guessed(tmp_path):  # tmp_path: an empty calibration folder
    study = Study.from_file(REPO / "config" / "quick.yaml", root=REPO)
    record = _record(study)
    record["results"] = [r for r in record["results"] if r["method"] != "SGL"]
    rows = estimate(REPO / "config" / "quick.yaml", {"bench.json": record}, cores=2, calibrate=tmp_path)
    assert rows[0]["missing"] == ["SGL/lightgcn"]
    assert rows[0]["upper_seconds"] >= rows[0]["expected_seconds"] > 0
    assert rows[0]["upper_seconds"] * 2 >= rows[0]["serial_seconds"]  # 2 cores at most halve it


def test_more_cores_never_take_longer():
    study = Study.from_file(REPO / "config" / "quick.yaml", root=REPO)
    jobs, _ = study_jobs(study, CostModel(_record(study), study.datasets_catalog), Calibration())
    spans = [makespan(jobs, c) for c in (1, 2, 4, 64)]
    assert spans == sorted(spans, reverse=True)
    assert spans[0] == pytest.approx(sum(j.seconds for j in jobs))
    assert spans[-1] == pytest.approx(max(
        max((j.seconds for j in jobs if j.group == r.after), default=0) + r.seconds
        if r.after else r.seconds for r in jobs))


def test_the_cli_refuses_a_file_that_is_not_a_bench_record(tmp_path):
    from specbench.estimate import load_records
    bad = tmp_path / "bench.json"
    bad.write_text("not json")
    with pytest.raises(SpecbenchError, match=r"bench.json: not a bench record"):
        load_records([bad])


def test_the_cli_prints_the_projection_and_writes_the_same_rows_as_json(tmp_path, capsys):
    import json

    from specbench.cli import main
    study = Study.from_file(REPO / "config" / "quick.yaml", root=REPO)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(_record(study)))
    (tmp_path / "calibration").mkdir()
    args = ["--configfile", str(REPO / "config" / "quick.yaml"), "--bench", str(bench), "--cores", "2",
            "--calibrate", str(tmp_path / "calibration")]
    assert main(["estimate", *args, "--json", str(tmp_path / "estimate.json")]) == 0
    assert capsys.readouterr().out.strip()
    rows = json.loads((tmp_path / "estimate.json").read_text())
    direct = estimate(REPO / "config" / "quick.yaml", {str(bench): _record(study)}, cores=2,
                      calibrate=tmp_path / "calibration")
    assert [r["expected_seconds"] for r in rows] == pytest.approx([r["expected_seconds"] for r in direct])
