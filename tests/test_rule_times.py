"""Job time per rule from a Snakemake log: durations computed by hand from the log's stamps."""

import pytest

from specbench.errors import SpecbenchError
from specbench.rule_times import job_times, rule_times

# Two cores: tune jobs 2 and 3 overlap, job 1 (localrule) runs alone, and job 4 starts but never finishes
# (a killed run): it is left out. The layout is Snakemake 9's (blocks as in .snakemake/log/*.snakemake.log).
LOG = """\
Building DAG of jobs...
Execute 1 jobs...
[Thu Dec  3 05:41:00 2026]
localrule fetch:
    output: data/raw/ml100k/fetched.json
    jobid: 1
    reason: Missing output files: data/raw/ml100k/fetched.json
Select jobs to execute...
[Thu Dec  3 05:41:02 2026]
Finished jobid: 1 (Rule: fetch)
1 of 4 steps (25%) done
Execute 2 jobs...
[Thu Dec  3 05:41:02 2026]
rule tune:
    input: results/quick/valid/ml100k/fit.inter
    jobid: 2
    wildcards: dataset=ml100k, backbone=mf, method=BPR, worker=0
[Thu Dec  3 05:41:03 2026]
rule tune:
    jobid: 3
    wildcards: dataset=ml100k, backbone=mf, method=SSM, worker=0
[Thu Dec  3 05:42:33 2026]
Finished jobid: 3 (Rule: tune)
2 of 4 steps (50%) done
[Thu Dec  3 05:43:02 2026]
Finished jobid: 2 (Rule: tune)
3 of 4 steps (75%) done
[Thu Dec  3 05:43:02 2026]
rule train:
    jobid: 4
"""


def test_each_finished_job_takes_its_start_to_its_finish(tmp_path):
    log = tmp_path / "a.snakemake.log"
    log.write_text(LOG)
    jobs = job_times(log).set_index("jobid")
    assert sorted(jobs.index) == [1, 2, 3]  # job 4 never finished
    assert jobs.loc[1, "seconds"] == 2 and jobs.loc[2, "seconds"] == 120 and jobs.loc[3, "seconds"] == 90
    assert list(jobs["rule"]) == ["fetch", "tune", "tune"]


def test_per_rule_the_job_times_add_up_and_the_span_is_first_start_to_last_finish(tmp_path):
    log = tmp_path / "a.snakemake.log"
    log.write_text(LOG)
    table = rule_times([log, log]).set_index("rule")  # two invocations add up
    assert table.loc["tune", "jobs"] == 4 and table.loc["tune", "job_seconds"] == 2 * (120 + 90)
    assert table.loc["tune", "span_seconds"] == 2 * 120  # 05:41:02 -> 05:43:02 in each log
    assert table.loc["fetch", "job_seconds"] == 4
    assert table["share"].sum() == pytest.approx(1.0)
    assert list(table.index) == ["tune", "fetch"]  # costliest first


def test_a_log_without_a_finished_job_names_the_file(tmp_path):
    log = tmp_path / "empty.snakemake.log"
    log.write_text("Building DAG of jobs...\nNothing to be done.\n")
    with pytest.raises(SpecbenchError, match="empty.snakemake.log: no finished job"):
        job_times(log)
    with pytest.raises(SpecbenchError, match="no such Snakemake log"):
        job_times(tmp_path / "missing.log")


def test_the_command_prints_the_table_and_writes_it_as_json(tmp_path, capsys):
    import json

    from specbench.cli import main
    log = tmp_path / "a.snakemake.log"
    log.write_text(LOG)
    assert main(["rule-times", str(log), "--json", str(tmp_path / "times.json")]) == 0
    assert "3 jobs, 3.5 min of job time" in capsys.readouterr().out  # (2 + 120 + 90) s
    rows = {row["rule"]: row for row in json.loads((tmp_path / "times.json").read_text())}
    assert rows["tune"]["jobs"] == 2 and rows["tune"]["job_seconds"] == 210
