"""The leaderboard: one row per (task, dataset, backbone, method, metric), from run records alone.

Pure functions from run JSONs (+ optional tuning ``chosen.json`` files and a published-numbers
yaml) to ``leaderboard.{csv,md,html}``. Nothing here knows a method's name: every method of
every test-split run given is a row, so a new model in models/ appears after one ``snakemake``.

Reproduced? A row with a published reference of comparable definition (``config/published.yaml``)
is "yes" when ``|mean - ref| / ref <= tolerance`` (5% relative unless the yaml says otherwise),
else "no (-x.x%)" / "no (+x.x%)"; "—" when there is no reference, and "n/c" when the only
reference uses a different metric definition (shown, never judged).

The HTML page (one self-contained file: inline CSS and JS, figures as data URIs, nothing fetched)
opens on a pivot view: per (dataset, backbone) a table with the methods as rows and the metrics as
columns (mean ± std, best per column bold, second underlined, ``ours`` marked), each method's
label with its key from config/methods.yaml under it, and its hyperparameters, tuning range and
provenance in an expandable row. "All rows" shows the long table (one row per method and metric).
Dropdown filters (dataset, backbone, metric, method) act on both; a header click sorts. The CSV and
the Markdown stay long-format (the Markdown with both the label and the method key).

    specbench leaderboard RUN.json... --chosen CHOSEN.json... --ours DirectSpecPlus \
        --published config/published.yaml --figures results/figures --out results/leaderboard
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from specbench.atomic_io import atomic_write_text
from specbench.errors import SpecbenchError
from specbench.report.records import load_runs

DEFAULT_TOLERANCE = 0.05
COLUMNS = ["task", "dataset", "backbone", "method", "label", "model", "metric", "mean", "std", "seeds", "config_hash",
           "commit", "hardware", "date", "tuning", "chosen", "reference", "reference_source", "reproduced"]
_K = re.compile(r"@(\d+)$")


# ---------- inputs ----------

def task_of(metric: str) -> str:
    """'ndcg@20' -> 'top-20 full ranking' (every metric here is full ranking over all items)."""
    m = _K.search(metric)
    return f"top-{m.group(1)} full ranking" if m else "full ranking"


def hardware_of(record: dict) -> str:
    env = record.get("environment", {}) or {}
    if env.get("gpu"):
        return f"GPU: {env['gpu']}"
    cpu = env.get("cpu") or "?"
    threads = env.get("threads")
    return f"CPU: {cpu}" + (f" ({threads} thread{'s' if threads != 1 else ''})" if threads else "")


def _commit_of(record: dict) -> str:
    git = (record.get("environment", {}) or {}).get("git", {}) or {}
    commit = git.get("commit")
    if not commit:
        return "?"
    return commit[:7] + ("+dirty" if git.get("dirty") else "")


def _join(values) -> str:
    return ", ".join(dict.fromkeys(str(v) for v in values if v not in (None, "")))


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return format(v, "g")
    return str(v)


def load_chosen(paths) -> dict:
    """{(dataset, backbone, method): chosen.json} from paths .../<dataset>/<backbone>/<method>/chosen.json."""
    out = {}
    for p in paths or ():
        p = Path(p)
        if len(p.parts) < 4:
            raise SpecbenchError(f"{p}: a chosen.json must sit at <dataset>/<backbone>/<method>/chosen.json")
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SpecbenchError(f"{p}: not a readable chosen.json ({exc})") from exc
        if "trials" not in data or "params" not in data:
            raise SpecbenchError(f"{p}: not a tuning result (expected keys 'params' and 'trials')")
        out[tuple(p.parts[-4:-1])] = data
    return out


SEPARATOR = " — "  # between the space searched and how it was searched, in the `tuning` column


def tuning_summary(chosen: dict | None) -> tuple[str, str]:
    """(the space searched and how, the chosen settings) of one chosen.json; ("not tuned", "") without one."""
    if not chosen:
        return "not tuned", ""
    from specbench.search_space import describe
    space = describe(chosen.get("space") or {})
    n = len([t for t in chosen.get("trials", []) if t.get("state", "complete") in ("complete", "pruned", "diverged")])
    p = chosen.get("protocol") or {}
    how = f"{n} trial{'s' if n != 1 else ''}"
    if p:
        how += f" of Optuna TPE (seed {p['seed']}, {p['pruner'].replace('_', ' ')} pruning), at most {p['max_epochs']} epochs"
    how += f", best {chosen.get('metric', '?')} on {chosen.get('split', 'valid')}"
    if chosen.get("select_epochs"):
        how += ", epochs = best evaluation"
    edges = chosen.get("edges") or {}
    if edges:
        how += "; at the edge of its range: " + ", ".join(f"{k} ({v})" for k, v in sorted(edges.items()))
    picked = ", ".join(f"{k}={_fmt_value(v)}" for k, v in sorted(chosen.get("params", {}).items()))
    return (f"{space}{SEPARATOR}{how}" if space else how), picked


def load_published(path) -> tuple[list[dict], float]:
    """Entries and tolerance of a published-numbers yaml (see config/published.yaml)."""
    if path is None or not Path(path).exists():
        return [], DEFAULT_TOLERANCE
    from specbench.schemas import check_file  # keys and types: config/schema/published.schema.yaml
    data = check_file(path, "published.schema.yaml") or {}
    tolerance = float(data.get("tolerance", DEFAULT_TOLERANCE))
    entries = data.get("entries", []) or []
    return entries, tolerance


def _matches(entry: dict, row: dict) -> bool:
    return all(entry[k] == row[k] for k in ("dataset", "metric", "method", "model", "backbone") if k in entry)


def reproduced(mean: float, reference: float | None, tolerance: float = DEFAULT_TOLERANCE,
               comparable: bool = True) -> str:
    """'yes' within ``tolerance`` (relative), else 'no (±x.x%)'; '—' without a reference."""
    if reference is None or (isinstance(reference, float) and np.isnan(reference)):
        return "—"
    if not comparable:
        return "n/c"
    rel = (mean - reference) / reference
    if abs(rel) <= tolerance + 1e-12:
        return "yes"
    return f"no ({'+' if rel > 0 else '−'}{abs(rel) * 100:.1f}%)"


# ---------- the table ----------

def leaderboard(runs: list[dict], chosen: dict | None = None, published: list[dict] = (),
                tolerance: float = DEFAULT_TOLERANCE, metrics=None) -> pd.DataFrame:
    """One row per (task, dataset, backbone, method, metric): mean, std (ddof=1), seeds, provenance.

    Only test-split runs count (tuning trials are evaluated on validation). ``metrics``: which
    final metrics (default: every one a run reports except the reference-code compatibility
    ``ref_*`` ones)."""
    chosen = chosen or {}
    test_runs = [r for r in runs if r["run"].get("eval_split", "test") == "test"]
    if not test_runs:
        raise SpecbenchError("no test-split run records given to the leaderboard")
    groups: dict[tuple, list[dict]] = {}
    for r in test_runs:
        groups.setdefault((r["run"]["dataset"], r["run"]["backbone"], r["run"]["method"]), []).append(r)
    rows = []
    for (dataset, backbone, method), group in groups.items():
        names = list(dict.fromkeys(m for r in group for m in r["final"]["metrics"]))
        names = [m for m in names if (m in metrics if metrics else not m.startswith("ref_"))]
        tuning, picked = tuning_summary(chosen.get((dataset, backbone, method)))
        ident = {"dataset": dataset, "backbone": backbone, "method": method,
                 "label": group[0]["run"].get("label", method), "model": _join(r["run"].get("model") for r in group)}
        provenance = {"config_hash": _join(r["run"].get("config_hash") for r in group),
                      "commit": _join(_commit_of(r) for r in group),
                      "hardware": _join(hardware_of(r) for r in group),
                      "date": max((r.get("environment", {}).get("finished") or "")[:10] for r in group) or "?",
                      "tuning": tuning, "chosen": picked}
        for metric in names:
            values = np.array([r["final"]["metrics"][metric] for r in group if metric in r["final"]["metrics"]],
                              dtype=float)
            row = {"task": task_of(metric), **ident, "metric": metric, "mean": values.mean(),
                   "std": values.std(ddof=1) if len(values) > 1 else 0.0, "seeds": len(values), **provenance}
            refs = [e for e in published if _matches(e, row)]
            ref = next((e for e in refs if e.get("comparable", True)), refs[0] if refs else None)
            row["reference"] = float(ref["value"]) if ref else np.nan
            row["reference_source"] = ref["source"] if ref else ""
            row["reproduced"] = reproduced(row["mean"], row["reference"] if ref else None, tolerance,
                                           bool(ref.get("comparable", True)) if ref else True)
            rows.append(row)
    df = pd.DataFrame(rows)
    df = df.sort_values(["task", "dataset", "metric", "mean"], ascending=[True, True, True, False], kind="stable")
    return df[COLUMNS].reset_index(drop=True)


# ---------- writers ----------

def to_markdown(df: pd.DataFrame, tolerance: float, tuning: str = "") -> str:
    """The long table (one row per method and metric), with the method's label and its key; ``tuning``:
    the study's tuning protocol (the same budget for every method)."""
    shown = df.assign(value=[f"{m:.4f} ± {s:.4f}" for m, s in zip(df["mean"], df["std"])],
                      reference=[("" if pd.isna(v) else f"{v:.4f}") for v in df["reference"]])
    cols = ["task", "dataset", "backbone", "label", "method", "metric", "value", "seeds", "reference", "reproduced",
            "tuning", "config_hash", "commit", "hardware", "date"]
    return (f"# Leaderboard\n\nMean ± std over seeds of the test metric at the last epoch (full ranking over all "
            f"items, training items masked). Reproduced? = within {tolerance:.0%} (relative) of the published "
            f"number in config/published.yaml; n/c = the published metric is defined differently. label = the "
            f"name printed in tables, method = its key in config/methods.yaml."
            + (f" {tuning}" if tuning else "") + "\n\n"
            + shown[cols].to_markdown(index=False) + "\n")


# Metric columns of the pivot: by cutoff, then in this order (others alphabetically after them).
_FAMILIES = ["recall", "recall_paper", "ndcg", "precision", "hit"]


def metric_order(metrics) -> list[str]:
    """'ndcg@20', 'recall@10', ... -> recall@10, ndcg@10, ..., recall@20, ndcg@20, ... (by cutoff, then family)."""
    def key(metric):
        m = _K.search(metric)
        family = metric[:m.start()] if m else metric
        rank = _FAMILIES.index(family) if family in _FAMILIES else len(_FAMILIES)
        return (int(m.group(1)) if m else 0, rank, family)
    return sorted(dict.fromkeys(metrics), key=key)


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _metric_head(metric: str) -> str:
    """'ndcg@20' -> 'ndcg' over a small '@20' (narrow columns, one look for every header)."""
    m = _K.search(metric)
    if not m:
        return _esc(metric)
    return f'{_esc(metric[:m.start()])}<span class="at">@{m.group(1)}</span>'



def _num(value, digits=4) -> str:
    return "—" if pd.isna(value) else f"{value:.{digits}f}"


def _sort_attr(value) -> str:
    return "" if pd.isna(value) else repr(float(value))


def _status_class(status: str) -> str:
    return "yes" if status == "yes" else "no" if status.startswith("no") else "nc" if status == "n/c" else ""


def _tuning_html(text: str) -> str:
    """'a ∈ [1, 2] (log); b ∈ {3} — 8 trials of Optuna TPE ...' -> one line per hyperparameter, then how."""
    if not text or text == "not tuned":
        return "not tuned (the method's fixed settings)"
    grid, _, how = text.partition(SEPARATOR) if SEPARATOR in text else ("", "", text)
    items = "".join(f"<li><code>{_esc(part)}</code></li>" for part in grid.split("; ") if part)
    return f'<ul class="grid">{items}</ul>' + (f'<div class="how">{_esc(how)}</div>' if how else "")


def _chosen_html(text: str) -> str:
    if not text:
        return "—"
    return '<span class="chosen">' + " ".join(f"<code>{_esc(part)}</code>" for part in text.split(", ")) + "</span>"


def _setup_html(row, extra: list[tuple[str, str]] = ()) -> str:
    """The expandable details of one method: model, seeds, tuning range and choice, provenance."""
    seeds = int(row["seeds"])
    run = (f"model {_esc(row['model'])} · {seeds} seed{'s' if seeds != 1 else ''} · config "
           f"<code>{_esc(row['config_hash'])}</code> · commit <code>{_esc(row['commit'])}</code> · "
           f"{_esc(row['hardware'])} · {_esc(row['date'])}")
    items = [("Tuning range", _tuning_html(row["tuning"])), ("Chosen", _chosen_html(row["chosen"])),
             ("Runs", run), *extra]
    return '<dl class="setup">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _method_cell(row, ours: set, detail_id: str, seeds: str = "") -> str:
    """Toggle button, the label (with an 'ours' badge) and, small and grey under it, the method key."""
    is_ours = row["method"] in ours
    badge = ' <span class="badge" title="the method this study proposes">ours</span>' if is_ours else ""
    sub = _esc(row["method"]) + (f" · {seeds}" if seeds else "")
    return (f'<td class="meth" data-sort="{_esc(str(row["label"]).lower())}"><div class="mc">'
            f'<button type="button" class="more" aria-expanded="false" aria-controls="{detail_id}" '
            f'title="hyperparameters, tuning range and provenance">▸</button>'
            f'<div><span class="lab">{_esc(row["label"])}</span>{badge}<span class="key">{sub}</span></div>'
            f"</div></td>")


def _group_order(df: pd.DataFrame, ours: set) -> list[tuple[str, str]]:
    """(dataset, backbone) tables: by dataset, those holding one of ours first, then by backbone."""
    keys = df[["dataset", "backbone"]].drop_duplicates().itertuples(index=False, name=None)
    has_ours = {(d, b) for d, b, m in df[["dataset", "backbone", "method"]].itertuples(index=False, name=None)
                if m in ours}
    return sorted(keys, key=lambda k: (str(k[0]), k not in has_ours, str(k[1])))


def _pivot_html(df: pd.DataFrame, ours: set, metrics: list[str], rank_by: str) -> str:
    sections = []
    n_detail = 0
    for dataset, backbone in _group_order(df, ours):
        part = df[(df.dataset == dataset) & (df.backbone == backbone)]
        cols = [m for m in metrics if m in set(part["metric"])]
        by = rank_by if rank_by in cols else cols[0]
        cell = {(r.method, r.metric): r for r in part.itertuples(index=False)}
        methods = list(dict.fromkeys(part["method"]))
        rank_value = {m: getattr(cell.get((m, by)), "mean", np.nan) for m in methods}
        methods.sort(key=lambda m: (pd.isna(rank_value[m]), -(rank_value[m] if not pd.isna(rank_value[m]) else 0)))
        marks = {}  # (method, metric) -> "best" / "second", on the shown (rounded) means
        if len(methods) > 1:
            for metric in cols:
                shown = sorted({round(cell[(m, metric)].mean, 4) for m in methods
                                if (m, metric) in cell and not pd.isna(cell[(m, metric)].mean)}, reverse=True)
                for m in methods:
                    if (m, metric) in cell and shown:
                        v = round(cell[(m, metric)].mean, 4)
                        marks[(m, metric)] = "best" if v == shown[0] else "second" if len(shown) > 1 and v == shown[1] \
                            else ""
        starts = {m for i, m in enumerate(cols) if i == 0 or task_of(m) != task_of(cols[i - 1])}
        head = ('<th data-key="method" scope="col">Method</th>'
                + "".join(f'<th data-key="{_esc(m)}" data-type="num" data-metric="{_esc(m)}" scope="col"'
                          f'{" class=kstart" if m in starts else ""}'
                          f'{" aria-sort=descending" if m == by else ""}>{_metric_head(m)}</th>' for m in cols))
        rows = []
        for i, method in enumerate(methods):
            row = part[part.method == method].iloc[0]
            seeds = sorted({int(s) for s in part[part.method == method]["seeds"]})
            seeds_text = "/".join(map(str, seeds)) + f" seed{'s' if seeds != [1] else ''}"
            detail_id = f"pd-{n_detail}"
            n_detail += 1
            cells = []
            refs = []
            for metric in cols:
                r = cell.get((method, metric))
                if r is None:
                    cells.append(f'<td class="num{" kstart" if metric in starts else ""}" data-metric="{_esc(metric)}"'
                                 ' data-sort="">—</td>')
                    continue
                mark = " ".join(c for c in (marks.get((method, metric), ""), "kstart" if metric in starts else "") if c)
                ref = ""
                if not pd.isna(r.reference):
                    status = r.reproduced
                    sym = {"yes": "✓", "no": "✗", "nc": "n/c"}.get(_status_class(status), "")
                    ref = (f'<sup class="ref {_status_class(status)}" title="published {r.reference:.4f} '
                           f'({_esc(r.reference_source)}): reproduced? {_esc(status)}">{sym}</sup>')
                    refs.append((metric, f"{r.reference:.4f} ({_esc(r.reference_source)}): {_esc(status)}"))
                mean = f"<b>{_num(r.mean)}</b>" if "best" in mark else (
                    f"<u>{_num(r.mean)}</u>" if "second" in mark else _num(r.mean))
                cells.append(f'<td class="num{" " + mark if mark else ""}" data-metric="{_esc(metric)}" '
                             f'data-sort="{_sort_attr(r.mean)}">{mean}{ref}'
                             f'<span class="sd">±{_num(r.std)}</span></td>')
            extra = [("Published", "<br>".join(f"{_esc(m)}: {t}" for m, t in refs))] if refs else []
            cls = "row ours" if method in ours else "row"
            rows.append(f'<tr class="{cls}" data-i="{i}" data-method="{_esc(method)}" data-detail="{detail_id}">'
                        + _method_cell(row, ours, detail_id, seeds_text) + "".join(cells) + "</tr>")
            rows.append(f'<tr class="detail" id="{detail_id}" hidden><td colspan="{len(cols) + 1}">'
                        f"{_setup_html(row, extra)}</td></tr>")
        title = f"{_esc(dataset)} · {_esc(backbone)}"
        sub = f"{len(methods)} method{'s' if len(methods) != 1 else ''} · ranked by {_esc(by)}"
        sections.append(f'<section class="group" data-dataset="{_esc(dataset)}" data-backbone="{_esc(backbone)}">'
                        f'<h3>{title} <span class="sub">{sub}</span></h3>'
                        f'<div class="wrap"><table class="sortable pivot"><thead><tr>{head}</tr></thead>'
                        f'<tbody>{"".join(rows)}</tbody></table></div></section>')
    return "\n".join(sections)


_LONG_COLS = [  # (key, header, numeric)
    ("task", "Task", False), ("dataset", "Dataset", False), ("backbone", "Backbone", False),
    ("label", "Method", False), ("metric", "Metric", False), ("mean", "Mean", True), ("std", "Std", True),
    ("seeds", "Seeds", True), ("reference", "Published", True), ("reproduced", "Reproduced?", False)]


def _long_html(df: pd.DataFrame, ours: set) -> str:
    head = "".join(f'<th data-key="{k}"{" data-type=num" if n else ""} scope="col">{_esc(h)}</th>'
                   for k, h, n in _LONG_COLS)
    rows = []
    for i, (_, row) in enumerate(df.iterrows()):
        detail_id = f"ld-{i}"
        cells = []
        for key, _, numeric in _LONG_COLS:
            value = row[key]
            if key == "label":
                cells.append(_method_cell(row, ours, detail_id))
            elif numeric:
                text = "—" if pd.isna(value) else (str(int(value)) if key == "seeds" else _num(value))
                cells.append(f'<td class="num" data-sort="{_sort_attr(value)}">{text}</td>')
            elif key == "reproduced":
                cls = _status_class(str(value))
                cells.append(f'<td class="{cls}">{_esc(value)}</td>' if cls else f"<td>{_esc(value)}</td>")
            else:
                cells.append(f"<td>{_esc(value)}</td>")
        extra = [("Published", _esc(f"{row['reference']:.4f} ({row['reference_source']})"))] \
            if not pd.isna(row["reference"]) else []
        attrs = "".join(f' data-{k}="{_esc(row[k])}"' for k in ("dataset", "backbone", "metric", "method"))
        cls = "row ours" if row["method"] in ours else "row"
        rows.append(f'<tr class="{cls}" data-i="{i}"{attrs} data-detail="{detail_id}">' + "".join(cells) + "</tr>")
        rows.append(f'<tr class="detail" id="{detail_id}" hidden><td colspan="{len(_LONG_COLS)}">'
                    f"{_setup_html(row, extra)}</td></tr>")
    return (f'<div class="wrap"><table class="sortable long" id="board"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def _select(attr: str, label: str, options: list[tuple[str, str]]) -> str:
    opts = "".join(f'<option value="{_esc(v)}">{_esc(t)}</option>' for v, t in options)
    return (f'<label>{_esc(label)} <select id="f-{attr}" data-attr="{attr}">'
            f'<option value="">all</option>{opts}</select></label>')


_CSS = """
:root{--fg:#1d232b;--muted:#5c6773;--faint:#8a949e;--line:#dde2e8;--head:#f3f5f8;--accent:#1f5fae;
--ours:#fff7e0;--oursline:#d08c00;--yes:#1e7a34;--no:#b3261e}
*{box-sizing:border-box}
body{font:15px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","DejaVu Sans",sans-serif;
color:var(--fg);margin:0;padding:22px 32px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:30px 0 8px}
h3{font-size:16px;margin:22px 0 6px}h3 .sub{font-weight:400;color:var(--muted);font-size:13px;margin-left:6px}
p.lede{color:var(--muted);max-width:80em;margin:4px 0 12px;font-size:14px}
.bar{display:flex;flex-wrap:wrap;align-items:center;gap:10px 18px;padding:10px 0;border-bottom:1px solid var(--line);
position:sticky;top:0;background:#fff;z-index:3}
.tabs{display:inline-flex;border:1px solid var(--line);border-radius:7px;overflow:hidden}
.tabs button{font:inherit;font-size:14px;border:0;background:#fff;padding:5px 12px;cursor:pointer;color:var(--muted)}
.tabs button+button{border-left:1px solid var(--line)}
.tabs button[aria-selected=true]{background:var(--accent);color:#fff}
#filters{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;font-size:14px;color:var(--muted)}
#filters select{font:inherit;color:var(--fg);padding:3px 6px;border:1px solid var(--line);border-radius:6px;
background:#fff;max-width:15em}
#filters button{font:inherit;font-size:13px;padding:3px 10px;border:1px solid var(--line);border-radius:6px;
background:#fff;cursor:pointer}
#count{font-size:13px;color:var(--muted)}
.legend{font-size:13px;color:var(--muted);margin:10px 0 10px}
.legend b,.legend u{color:var(--fg)}
.wrap{overflow-x:auto;border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle;white-space:nowrap}
th{background:var(--head);cursor:pointer;user-select:none;font-weight:600;vertical-align:bottom;line-height:1.25}
th[data-type=num]{text-align:right}
th:hover,th:focus{color:var(--accent);outline:none}
th[aria-sort=ascending]:not(:has(.at))::after,th[aria-sort=ascending] .at::after{content:" ▲";color:var(--accent)}
th[aria-sort=descending]:not(:has(.at))::after,th[aria-sort=descending] .at::after{content:" ▼";color:var(--accent)}
table.pivot .kstart{border-left:1px solid var(--line)}
table.long .key{display:inline;margin-left:6px}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.num .sd{color:var(--faint);font-size:11px;margin-left:3px}
table.pivot td.num .sd{display:block;margin:0;line-height:1.15}
table.pivot td.num{line-height:1.25}
th .at{display:block;font-weight:400;color:var(--muted);font-size:12px}
td.num b{font-weight:700}
td.num u{text-decoration-color:var(--faint);text-underline-offset:2px}
sup.ref{font-size:10.5px;margin-left:2px;font-weight:600}
sup.ref.yes{color:var(--yes)}sup.ref.no{color:var(--no)}sup.ref.nc{color:var(--faint)}
tbody tr.row:hover{background:#eef4fb}
tr.ours{background:var(--ours)}tr.ours td:first-child{box-shadow:inset 4px 0 0 var(--oursline)}
td.meth{min-width:11em}
.mc{display:flex;align-items:flex-start;gap:6px}
.lab{font-weight:600}.key{display:block;color:var(--faint);font-size:11px;line-height:1.2}
.badge{display:inline-block;font-size:10.5px;font-weight:700;color:#7a5200;background:#ffe7a3;border-radius:4px;
padding:0 5px;margin-left:4px;vertical-align:1px;text-transform:uppercase;letter-spacing:.03em}
button.more{font-size:11px;line-height:1;border:1px solid var(--line);background:#fff;border-radius:4px;width:20px;
height:20px;padding:0;cursor:pointer;color:var(--muted);flex:none;margin-top:1px;transition:transform .1s}
button.more[aria-expanded=true]{transform:rotate(90deg);color:var(--accent)}
tr.detail>td{background:#f8f9fb;white-space:normal;padding:8px 14px 10px 40px}
dl.setup{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0;font-size:13px}
dl.setup dt{color:var(--muted)}dl.setup dd{margin:0}
.chosen code+code{margin-left:10px}
table.pivot th:first-child{width:17em}
#view-pivot .wrap{display:inline-block;max-width:100%;vertical-align:top}
table.pivot{width:auto}table.pivot th[data-metric]{min-width:6.6em;padding-left:14px}
ul.grid{margin:0;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:2px 14px}
.how{color:var(--muted);font-size:12.5px}
code{font:12.5px/1.4 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
td.yes{color:var(--yes);font-weight:600}td.no{color:var(--no);font-weight:600}td.nc{color:var(--faint)}
.empty{color:var(--muted);padding:14px 0}
figure{margin:12px 0 24px}figure img{max-width:100%;border:1px solid var(--line);border-radius:6px}
figcaption{color:var(--muted);font-size:13px}
footer{color:var(--muted);font-size:12.5px;margin-top:28px}
"""

# Views (pivot / long, '#long' opens the long one), dropdown filters (dataset, backbone, metric,
# method: both views), sorting (click a header; numbers sort best-first, click again to reverse),
# and the expandable details rows.
_JS = """
(function(){
  function $(s, r){return (r || document).querySelector(s)}
  function $$(s, r){return Array.prototype.slice.call((r || document).querySelectorAll(s))}
  var view = 'pivot';
  function syncDetail(r){  // a details row shows when its row does and is expanded
    var d = document.getElementById(r.getAttribute('data-detail'));
    if (d) d.hidden = r.hidden || $('button.more', r).getAttribute('aria-expanded') !== 'true';
  }
  function want(){
    var w = {};
    $$('#filters select').forEach(function(s){if (s.value) w[s.getAttribute('data-attr')] = s.value});
    return w;
  }
  function ok(el, w, keys){
    return keys.every(function(k){return !(k in w) || el.getAttribute('data-' + k) === w[k]});
  }
  function apply(){
    var w = want(), n = 0, total = 0, methods = 0, tables = 0;
    $$('#board tbody tr.row').forEach(function(r){
      var v = ok(r, w, ['dataset', 'backbone', 'metric', 'method']);
      r.hidden = !v; total++; if (v) n++; syncDetail(r);
    });
    $$('#view-pivot section.group').forEach(function(sec){
      var shown = ok(sec, w, ['dataset', 'backbone']), rows = 0, cols = 0;
      $$('tbody tr.row', sec).forEach(function(r){
        var v = shown && ok(r, w, ['method']);
        r.hidden = !v; if (v) rows++; syncDetail(r);
      });
      $$('[data-metric]', sec).forEach(function(c){
        c.hidden = !!w.metric && c.getAttribute('data-metric') !== w.metric;
        if (!c.hidden && c.tagName === 'TH') cols++;
      });
      sec.hidden = !rows || !cols;
      if (!sec.hidden) {tables++; methods += rows}
    });
    $('#empty-long').hidden = n > 0;
    $('#empty-pivot').hidden = tables > 0;
    $('#count').textContent = view === 'long' ? n + ' of ' + total + ' rows'
      : methods + ' method rows in ' + tables + ' table' + (tables === 1 ? '' : 's');
  }
  function show(name){
    view = name;
    ['pivot', 'long'].forEach(function(k){
      $('#view-' + k).hidden = k !== name;
      $('#tab-' + k).setAttribute('aria-selected', k === name ? 'true' : 'false');
    });
    document.body.setAttribute('data-view', name);
    apply();
  }
  $$('.tabs button').forEach(function(t){t.addEventListener('click', function(){
    var v = t.getAttribute('data-view');
    show(v);
    try {history.replaceState(null, '', '#' + v)} catch (e) {}
  })});
  $$('#filters select').forEach(function(s){s.addEventListener('change', apply)});
  $('#f-reset').addEventListener('click', function(){
    $$('#filters select').forEach(function(s){s.value = ''});
    apply();
  });
  document.addEventListener('click', function(e){
    var b = e.target.closest && e.target.closest('button.more');
    if (!b) return;
    b.setAttribute('aria-expanded', b.getAttribute('aria-expanded') === 'true' ? 'false' : 'true');
    syncDetail(b.closest('tr'));
  });
  function key(td, numeric){
    var v = td.getAttribute('data-sort');
    if (v === null) v = td.textContent;
    if (numeric) {var x = parseFloat(v); return isNaN(x) ? null : x}
    return v.toLowerCase();
  }
  function sortBy(table, th){  // numbers best (largest) first, text A-Z; again: reversed; blanks last
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells), i = heads.indexOf(th),
        numeric = th.getAttribute('data-type') === 'num', cur = th.getAttribute('aria-sort');
    var dir = cur ? (cur === 'ascending' ? 'descending' : 'ascending') : (numeric ? 'descending' : 'ascending');
    heads.forEach(function(h){h.removeAttribute('aria-sort')});
    th.setAttribute('aria-sort', dir);
    var body = table.tBodies[0], rows = $$('tr.row', body), s = dir === 'ascending' ? 1 : -1;
    rows.sort(function(a, b){
      var x = key(a.cells[i], numeric), y = key(b.cells[i], numeric);
      if (x === null || y === null) {if (x !== y) return x === null ? 1 : -1}
      else if (x !== y) return x < y ? -s : s;
      return (+a.getAttribute('data-i')) - (+b.getAttribute('data-i'));
    });
    rows.forEach(function(r){  // each details row travels with its row
      body.appendChild(r);
      var d = document.getElementById(r.getAttribute('data-detail'));
      if (d) body.appendChild(d);
    });
  }
  $$('table.sortable').forEach(function(table){$$('th[data-key]', table).forEach(function(th){
    th.tabIndex = 0;
    th.title = 'sort by ' + th.textContent;
    th.addEventListener('click', function(){sortBy(table, th)});
    th.addEventListener('keydown', function(e){
      if (e.key === 'Enter' || e.key === ' ') {e.preventDefault(); sortBy(table, th)}
    });
  })});
  show(location.hash === '#long' ? 'long' : 'pivot');
})();
"""


def to_html(df: pd.DataFrame, figures: list[Path] = (), tolerance: float = DEFAULT_TOLERANCE,
            published: list[dict] = (), title: str = "specbench leaderboard", ours=(),
            rank_by: str | None = None, tuning: str = "") -> str:
    """One self-contained page (inline CSS and JS, figures as data URIs): the pivot view (one table per
    dataset and backbone: methods as rows, metrics as columns, mean ± std, best bold, second underlined,
    ``ours`` marked) and the long view (one row per method and metric), dropdown filters, sortable
    columns, and each method's hyperparameters and tuning range in an expandable row. ``ours``: method
    keys to mark; ``rank_by``: the metric the pivot rows are ordered by (default: the first column)."""
    ours = set(ours or ())
    metrics = metric_order(df["metric"])
    rank_by = rank_by if rank_by in metrics else metrics[0]
    methods = {}
    for r in df.itertuples(index=False):
        methods.setdefault(r.method, r.label)
    method_opts = sorted(((m, f"{lab} ({m})" if lab != m else m) for m, lab in methods.items()),
                         key=lambda o: o[1].lower())
    filters = (_select("dataset", "Dataset", [(d, d) for d in sorted(df["dataset"].unique())])
               + _select("backbone", "Backbone", [(b, b) for b in sorted(df["backbone"].unique())])
               + _select("metric", "Metric", [(m, m) for m in metrics])
               + _select("method", "Method", method_opts))
    figs = []
    for p in figures:
        data = base64.b64encode(Path(p).read_bytes()).decode()
        figs.append(f'<figure><img alt="{_esc(Path(p).stem)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{_esc(Path(p).name)}</figcaption></figure>")
    refs = "".join(f"<li>{_esc(e['dataset'])} {_esc(e.get('model') or e.get('method', ''))}"
                   f" {_esc(e['metric'])} = {e['value']}: {_esc(e['source'])}"
                   f"{'' if e.get('comparable', True) else ' (metric defined differently: shown, not judged)'}</li>"
                   for e in published if e["dataset"] in set(df["dataset"]))  # the board's datasets only
    ours_names = ", ".join(_esc(f"{methods[m]} ({m})" if methods[m] != m else m) for m in methods if m in ours)
    seeds = sorted({int(s) for s in df["seeds"]})
    legend = (f'<p class="legend">One table per dataset and backbone. Each cell: mean '
              f'<span class="sd">± sample std</span> over {"/".join(map(str, seeds))} '
              f'seed{"s" if seeds != [1] else ""} (test split, last epoch). '
              f"Per column: <b>best</b> in bold, <u>second</u> underlined. "
              + (f'<span class="badge">ours</span> = {ours_names}. ' if ours_names else "")
              + "Grey under each label: the method's key in config/methods.yaml. ▸ opens its hyperparameters and "
              "tuning range. ✓ / ✗: within / outside the tolerance of a published number. "
              "Click a column header to sort (again to reverse).</p>")
    legend_long = ('<p class="legend">One row per dataset, backbone, method and metric. ▸ opens the method\'s '
                   "hyperparameters, tuning range and provenance. Click a column header to sort (again to reverse)."
                   "</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title><style>{_CSS}</style>
<noscript><style>#view-long{{display:block!important}}.tabs,#filters{{display:none}}</style></noscript></head>
<body>
<h1>{_esc(title)}</h1>
<p class="lede">Test metrics at the last epoch, mean and sample std over seeds (full ranking over all items, training
items masked). <b>Reproduced?</b> is “yes” within {tolerance:.0%} (relative) of a published number measured on the
same split with the same metric definition, “no (±x%)” otherwise, “—” with no published number, and “n/c” where the
published metric is defined differently.</p>
{f'<p class="lede" id="tuning">{_esc(tuning)}</p>' if tuning else ""}
<div class="bar">
<div class="tabs" role="tablist" aria-label="View"><button type="button" role="tab" id="tab-pivot" data-view="pivot"
 aria-controls="view-pivot" aria-selected="true">By method</button><button type="button" role="tab" id="tab-long"
 data-view="long" aria-controls="view-long" aria-selected="false">All rows</button></div>
<form id="filters" role="search" onsubmit="return false">{filters}<button type="button" id="f-reset">Reset</button>
<span id="count" aria-live="polite"></span></form>
</div>
<div id="view-pivot" role="tabpanel" aria-labelledby="tab-pivot">
{legend}
{_pivot_html(df, ours, metrics, rank_by)}
<p class="empty" id="empty-pivot" hidden>No method matches these filters.</p>
</div>
<div id="view-long" role="tabpanel" aria-labelledby="tab-long" hidden>
{legend_long}
{_long_html(df, ours)}
<p class="empty" id="empty-long" hidden>No row matches these filters.</p>
</div>
{"<h2>Figures</h2>" + "".join(figs) if figs else ""}
{"<h2>Published references</h2><ul>" + refs + "</ul>" if refs else ""}
<footer>{len(df)} rows ({len(methods)} methods) · generated by specbench.report.leaderboard from run records</footer>
<script>{_JS}</script>
</body></html>
"""


def _common_metric(chosen: dict) -> str | None:
    """The metric most tuning runs selected on (the pivot's default order)."""
    names = [c.get("metric") for c in chosen.values() if c.get("metric")]
    return max(dict.fromkeys(names), key=names.count) if names else None


def write_leaderboard(run_paths, out_stem: Path, chosen_paths=(), published_path=None,
                      figures_dir: Path | None = None, metrics=None, ours=()) -> list[Path]:
    """Write <out_stem>.csv, .md and .html; return their paths. ``ours``: method keys the HTML marks."""
    runs = load_runs([Path(p) for p in run_paths])
    published, tolerance = load_published(published_path)
    chosen = load_chosen(chosen_paths)
    df = leaderboard(runs, chosen, published, tolerance, metrics)
    out_stem = Path(out_stem)
    figures = sorted(Path(figures_dir).glob("*.png")) if figures_dir and Path(figures_dir).is_dir() else []
    paths = [out_stem.with_suffix(s) for s in (".csv", ".md", ".html")]
    atomic_write_text(paths[0], df.to_csv(index=False))
    from specbench.report.tuning import protocol_caption
    tuning = protocol_caption(chosen)
    atomic_write_text(paths[1], to_markdown(df, tolerance, tuning))
    atomic_write_text(paths[2], to_html(df, figures, tolerance, published, ours=ours, rank_by=_common_metric(chosen),
                                        tuning=tuning))
    return paths
