"""Where a workflow's time went: per rule, from the log Snakemake writes of every invocation
(.snakemake/log/<date>.snakemake.log).

Snakemake prints a ``[<date>]`` line before each job's ``rule <name>:`` (or ``localrule``) block with its
``jobid:``, and another before ``Finished jobid: <id> (Rule: <name>)``; the difference is the job's
wall time (to the second, the log's resolution). Per rule: the jobs that finished, the sum of their
times (what the rule costs in job time, on any number of cores) and its span, first start to last
finish (what it added to the wall clock while it ran beside others).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pandas as pd

from specbench.errors import SpecbenchError

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\S+):$")
JOBID = re.compile(r"^\s+jobid: (\d+)$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\S+)\)$")


def job_times(log: Path) -> pd.DataFrame:
    """One row per job that finished in the Snakemake log ``log``: rule, jobid, start, end, seconds."""
    log = Path(log)
    if not log.is_file():
        raise SpecbenchError(f"{log}: no such Snakemake log (they are under .snakemake/log/)")
    started, rows, stamp, pending = {}, [], None, None
    for line in log.read_text(errors="replace").splitlines():
        if match := STAMP.match(line):
            stamp = datetime.strptime(" ".join(match.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif (match := START.match(line)) and stamp is not None:
            pending = (match.group(1), stamp)
        elif (match := JOBID.match(line)) and pending is not None:
            started[int(match.group(1))], pending = pending, None
        elif (match := FINISHED.match(line)) and stamp is not None:
            jobid, rule = int(match.group(1)), match.group(2)
            if jobid in started:
                begun = started.pop(jobid)[1]
                rows.append({"rule": rule, "jobid": jobid, "start": begun, "end": stamp,
                             "seconds": (stamp - begun).total_seconds()})
    if not rows:
        raise SpecbenchError(f"{log}: no finished job in this log (expected '[<date>]' lines before "
                             "'rule <name>:' and 'Finished jobid: <id> (Rule: <name>)')")
    return pd.DataFrame(rows)


def rule_times(logs: list[Path]) -> pd.DataFrame:
    """Per rule over the jobs of ``logs`` (several invocations add up): jobs, job_seconds (their sum),
    span_seconds (first start to last finish within each log, summed over logs) and share of the total
    job time, the costliest rule first."""
    jobs = pd.concat([job_times(log).assign(log=i) for i, log in enumerate(logs)], ignore_index=True)
    spans = (jobs.groupby(["rule", "log"]).agg(start=("start", "min"), end=("end", "max"))
             .assign(span=lambda d: (d["end"] - d["start"]).dt.total_seconds()).groupby("rule")["span"].sum())
    table = jobs.groupby("rule").agg(jobs=("jobid", "size"), job_seconds=("seconds", "sum"))
    table["span_seconds"] = spans
    table["share"] = table["job_seconds"] / table["job_seconds"].sum()
    return table.sort_values("job_seconds", ascending=False).reset_index()


def format_rule_times(table: pd.DataFrame, logs: list[Path]) -> str:
    """The table as Markdown with a caption naming the logs and the total."""
    shown = table.assign(job_minutes=(table["job_seconds"] / 60).round(1),
                         span_minutes=(table["span_seconds"] / 60).round(1),
                         share=[f"{s:.0%}" for s in table["share"]])
    caption = (f"Job time per rule from {', '.join(str(p) for p in logs)}: {int(table['jobs'].sum())} jobs, "
               f"{table['job_seconds'].sum() / 60:.1f} min of job time (job: its start to its finish in the log, "
               "to the second; span: the rule's first start to its last finish).")
    return caption + "\n\n" + shown[["rule", "jobs", "job_minutes", "span_minutes", "share"]].to_markdown(index=False)
