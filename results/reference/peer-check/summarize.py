#!/usr/bin/env python
"""Peer-check summaries from the run records.

Reads every JSON in results/reference/peer-check/{ours,peers}/ (ours: specbench run records, `history`
with `metrics` per evaluated epoch; peers: `history` of {epoch, metrics}) and the group file (group ->
peer files, our files, metrics, epochs); writes summary.md (seed means per epoch and the relative gap
(ours - peer) / peer) and tables.md (every run) into the output folder.

usage (from the repository root): .venv/bin/python results/reference/peer-check/summarize.py
(defaults: groups.yaml, the records and the outputs all in this script's folder)
"""
import argparse, json, sys
from collections import OrderedDict
from pathlib import Path
import yaml

def load(folder):
    runs = {}
    for p in sorted(Path(folder).glob("*.json")):
        d = json.loads(p.read_text())
        curve = {}
        for h in d.get("history", []):
            if h.get("metrics"):
                curve[int(h["epoch"])] = h["metrics"]
        runs[p.stem] = curve
    return runs

def mean(xs):
    return sum(xs) / len(xs)

def cell(v):
    return "—" if v is None else f"{v:.4f}"

def seed_means(runs, names, metric, epochs):
    out = []
    for e in epochs:
        vals = [runs[n][e][metric] for n in names if e in runs[n] and metric in runs[n][e]]
        out.append(mean(vals) if len(vals) == len(names) and vals else None)
    return out

def welch_interval(peers, peer_names, ours, our_names, metric, epoch):
    """The 95% Welch t interval of mean(ours) - mean(peer) at ``epoch``, in % of the peer's mean."""
    from scipy import stats
    x = [peers[n][epoch][metric] for n in peer_names if epoch in peers[n]]
    y = [ours[n][epoch][metric] for n in our_names if epoch in ours[n]]
    if len(x) < 2 or len(y) < 2:
        return "—"
    ci = stats.ttest_ind(y, x, equal_var=False).confidence_interval(0.95)
    return f"{ci.low / mean(x) * 100:+.1f}…{ci.high / mean(x) * 100:+.1f}%"


def main():
    here = Path(__file__).resolve().parent
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", default=str(here / "groups.yaml"))
    ap.add_argument("--root", default=str(here))
    ap.add_argument("--out", default=str(here))
    a = ap.parse_args()
    spec = yaml.safe_load(Path(a.groups).read_text())
    dflt = spec.get("defaults", {})
    ours, peers = load(Path(a.root) / "ours"), load(Path(a.root) / "peers")
    groups = []
    for g in spec["groups"]:
        g = {**dflt, **g}
        missing = [n for n in g["peer"] if n not in peers] + [n for n in g["ours"] if n not in ours]
        if missing:
            print(f"group {g['name']!r}: missing {missing}", file=sys.stderr)
            g["peer"] = [n for n in g["peer"] if n in peers]; g["ours"] = [n for n in g["ours"] if n in ours]
        if g["peer"] and g["ours"]:
            groups.append(g)
    metrics = list(OrderedDict.fromkeys(m for g in groups for m in g["metrics"]))
    lines = []
    for metric in metrics:
        gs = [g for g in groups if metric in g["metrics"]]
        epochs = gs[0]["epochs"]
        lines += ["", f"| {metric}: group | side (seeds) | " + " | ".join(map(str, epochs)) + " |",
                  "|" + "---|" * (len(epochs) + 2)]
        for g in gs:
            if g["epochs"] != epochs:  # a group with other epochs gets its own header
                epochs = g["epochs"]
                lines += ["", f"| {metric}: group | side (seeds) | " + " | ".join(map(str, epochs)) + " |",
                          "|" + "---|" * (len(epochs) + 2)]
            p = seed_means(peers, g["peer"], metric, epochs)
            o = seed_means(ours, g["ours"], metric, epochs)
            gap = ["—" if x is None or y is None else f"{(y - x) / x * 100:+.1f}%" for x, y in zip(p, o)]
            lines.append(f"| {g['name']} | peer ({len(g['peer'])}) | " + " | ".join(map(cell, p)) + " |")
            lines.append(f"| | ours ({len(g['ours'])}) | " + " | ".join(map(cell, o)) + " |")
            lines.append("| | gap | " + " | ".join(gap) + " |")
            if g.get("interval"):  # the gap's 95% Welch interval over the seeds, relative to the peer's mean
                lines.append("| | gap, 95% CI (Welch) | " + " | ".join(
                    welch_interval(peers, g["peer"], ours, g["ours"], metric, e) for e in epochs) + " |")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "summary.md").write_text("\n".join(lines) + "\n")
    # tables.md: every run of every section, per metric
    sections = OrderedDict()
    for g in groups:
        sections.setdefault(g.get("section", g["name"]), []).append(g)
    t = []
    for sec, gs in sections.items():
        for metric in metrics:
            epochs = gs[0]["epochs"]
            t += [f"#### {sec} — {metric}", "", f"| run ({metric}) | " + " | ".join(map(str, epochs)) + " |",
                  "|" + "---|" * (len(epochs) + 1)]
            for g in gs:
                for side, runs in (("peer", peers), ("ours", ours)):
                    for n in g[side]:
                        seed = n.rsplit("_s", 1)[-1]
                        vals = [runs[n].get(e, {}).get(metric) for e in epochs]
                        t.append(f"| {g['name']} {side} s{seed} ({n}) | " + " | ".join(map(cell, vals)) + " |")
            t.append("")
    used = {n for g in groups for n in g["peer"]} | {n for g in groups for n in g["ours"]}
    rest = [("peer", n, peers) for n in peers if n not in used] + [("ours", n, ours) for n in ours if n not in used]
    if rest:
        epochs = dflt.get("epochs", [10, 20, 30, 40, 50, 60])
        for metric in metrics:
            t += [f"#### runs in no group — {metric}", "", f"| run ({metric}) | " + " | ".join(map(str, epochs)) + " |",
                  "|" + "---|" * (len(epochs) + 1)]
            for side, n, runs in rest:
                vals = [runs[n].get(e, {}).get(metric) for e in epochs]
                t.append(f"| {side} {n} | " + " | ".join(map(cell, vals)) + " |")
            t.append("")
    (Path(a.out) / "tables.md").write_text("\n".join(t))
    print(f"wrote {a.out}/summary.md ({len(groups)} groups), {a.out}/tables.md")

if __name__ == "__main__":
    main()
