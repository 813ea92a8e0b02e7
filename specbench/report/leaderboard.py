"""The leaderboard: one row per (task, dataset, backbone, method, metric), from run records alone.

Pure functions from run JSONs (+ optional tuning ``chosen.json`` files and a published-numbers
yaml) to ``leaderboard.{csv,md,html}``. Nothing here knows a method's name: every method of
every test-split run given is a row, so a new model in models/ appears after one ``snakemake``.

Reproduced? A row with a published reference of comparable definition (``config/published.yaml``)
is "yes" when ``|mean - ref| / ref <= tolerance`` (5% relative unless the yaml says otherwise),
else "no (-x.x%)" / "no (+x.x%)"; "—" when there is no reference, and "n/c" when the only
reference uses a different metric definition (shown, never judged).

    specbench leaderboard RUN.json... --chosen CHOSEN.json... \
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


def tuning_summary(chosen: dict | None) -> tuple[str, str]:
    """(the range searched, the chosen settings) of one chosen.json; ("not tuned", "") without one."""
    if not chosen:
        return "not tuned", ""
    values: dict[str, list] = {}
    for trial in chosen.get("trials", []):
        for key, value in (trial.get("params") or {}).items():
            values.setdefault(key, [])
            if value not in values[key]:
                values[key].append(value)
    grid = "; ".join(f"{k} ∈ {{{', '.join(_fmt_value(v) for v in sorted(vs, key=lambda x: (str(type(x)), x)))}}}"
                     for k, vs in sorted(values.items()))
    n = len(chosen.get("trials", []))
    how = f"{n} trial{'s' if n != 1 else ''}, best {chosen.get('metric', '?')} on {chosen.get('split', 'valid')}"
    if chosen.get("select_epochs"):
        how += ", epochs = best evaluation"
    picked = ", ".join(f"{k}={_fmt_value(v)}" for k, v in sorted(chosen.get("params", {}).items()))
    return (f"{grid} ({how})" if grid else how), picked


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

def to_markdown(df: pd.DataFrame, tolerance: float) -> str:
    shown = df.assign(value=[f"{m:.4f} ± {s:.4f}" for m, s in zip(df["mean"], df["std"])],
                      reference=[("" if pd.isna(v) else f"{v:.4f}") for v in df["reference"]])
    cols = ["task", "dataset", "backbone", "label", "metric", "value", "seeds", "reference", "reproduced",
            "tuning", "config_hash", "commit", "hardware", "date"]
    return (f"# Leaderboard\n\nMean ± std over seeds of the test metric at the last epoch (full ranking over all "
            f"items, training items masked). Reproduced? = within {tolerance:.0%} (relative) of the published "
            f"number in config/published.yaml; n/c = the published metric is defined differently.\n\n"
            + shown[cols].to_markdown(index=False) + "\n")


_CSS = """
:root{--fg:#1d232b;--muted:#5c6773;--line:#d9dee4;--head:#f3f5f8;--accent:#1f5fae;--yes:#1e7a34;--no:#b3261e}
*{box-sizing:border-box}
body{font:15px/1.5 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans","DejaVu Sans",sans-serif;
color:var(--fg);margin:0;padding:28px 36px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px}
p.lede{color:var(--muted);max-width:70em;margin:4px 0 16px}
.controls{margin:10px 0}.controls input{font:inherit;padding:5px 9px;border:1px solid var(--line);border-radius:6px;width:22em}
.wrap{overflow-x:auto;border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;white-space:nowrap}
td.wrapcell{white-space:normal;min-width:16em;max-width:30em;color:var(--muted);font-size:12.5px}
th{background:var(--head);position:sticky;top:0;cursor:pointer;user-select:none;font-weight:600}
th:hover{color:var(--accent)}
th[aria-sort=ascending]::after{content:" ▲";color:var(--accent)}
th[aria-sort=descending]::after{content:" ▼";color:var(--accent)}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafbfc}tbody tr:hover{background:#eef4fb}
.yes{color:var(--yes);font-weight:600}.no{color:var(--no);font-weight:600}
figure{margin:12px 0 24px}figure img{max-width:100%;border:1px solid var(--line);border-radius:6px}
figcaption{color:var(--muted);font-size:13px}
footer{color:var(--muted);font-size:12.5px;margin-top:28px}
"""

# Sorting: click a header (again to reverse). Test hook: #click=<col>[,<col>...] clicks those
# headers (by data-key) after load, so a headless browser can check the real click handler.
_JS = """
(function(){
  var table=document.getElementById('board'), body=table.tBodies[0];
  var heads=Array.prototype.slice.call(table.tHead.rows[0].cells);
  function key(td,numeric){var v=td.getAttribute('data-sort');if(v===null)v=td.textContent;
    if(numeric){var x=parseFloat(v);return isNaN(x)?-Infinity:x}return v.toLowerCase()}
  function sortBy(th){
    var i=heads.indexOf(th), numeric=th.getAttribute('data-type')==='num';
    var dir=th.getAttribute('aria-sort')==='ascending'?'descending':'ascending';
    heads.forEach(function(h){h.removeAttribute('aria-sort')});th.setAttribute('aria-sort',dir);
    var rows=Array.prototype.slice.call(body.rows), s=dir==='ascending'?1:-1;
    rows.sort(function(a,b){var x=key(a.cells[i],numeric),y=key(b.cells[i],numeric);
      return x<y?-s:x>y?s:(+a.getAttribute('data-i'))-(+b.getAttribute('data-i'))});
    rows.forEach(function(r){body.appendChild(r)});
  }
  heads.forEach(function(th){th.addEventListener('click',function(){sortBy(th)})});
  var filter=document.getElementById('filter');
  filter.addEventListener('input',function(){var q=filter.value.toLowerCase();
    Array.prototype.forEach.call(body.rows,function(r){r.style.display=r.textContent.toLowerCase().indexOf(q)<0?'none':''})});
  var m=/click=([^&]+)/.exec(location.hash);
  if(m){m[1].split(',').forEach(function(k){var th=table.querySelector('th[data-key="'+decodeURIComponent(k)+'"]');
    if(th)th.dispatchEvent(new MouseEvent('click',{bubbles:true}))});
    document.body.setAttribute('data-sorted',m[1]);}
})();
"""

_HTML_COLS = [  # (key, header, numeric, wraps)
    ("task", "Task", False, False), ("dataset", "Dataset", False, False), ("backbone", "Backbone", False, False),
    ("label", "Method", False, False), ("metric", "Metric", False, False), ("mean", "Mean", True, False),
    ("std", "Std", True, False), ("seeds", "Seeds", True, False), ("reference", "Published", True, False),
    ("reproduced", "Reproduced?", False, False), ("tuning", "Tuning range", False, True),
    ("chosen", "Chosen", False, True), ("config_hash", "Config", False, False), ("commit", "Commit", False, False),
    ("hardware", "Hardware", False, False), ("date", "Date", False, False)]


def _cell(key, value, numeric, wraps) -> str:
    if numeric:
        if pd.isna(value):
            return '<td class="num" data-sort="">—</td>'
        text = str(int(value)) if key == "seeds" else f"{value:.4f}"
        return f'<td class="num" data-sort="{value!r}">{text}</td>'
    text = html.escape(str(value))
    cls = "wrapcell" if wraps else ("yes" if value == "yes" else "no" if str(value).startswith("no") else "")
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def to_html(df: pd.DataFrame, figures: list[Path] = (), tolerance: float = DEFAULT_TOLERANCE,
            published: list[dict] = (), title: str = "specbench leaderboard") -> str:
    head = "".join(f'<th data-key="{k}"{" data-type=num" if n else ""} scope="col">{html.escape(h)}</th>'
                   for k, h, n, _ in _HTML_COLS)
    body = "\n".join(f'<tr data-i="{i}">' + "".join(_cell(k, row[k], n, w) for k, _, n, w in _HTML_COLS) + "</tr>"
                     for i, (_, row) in enumerate(df.iterrows()))
    figs = []
    for p in figures:
        data = base64.b64encode(Path(p).read_bytes()).decode()
        figs.append(f'<figure><img alt="{html.escape(Path(p).stem)}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(Path(p).name)}</figcaption></figure>")
    refs = "".join(f"<li>{html.escape(str(e['dataset']))} {html.escape(str(e.get('model') or e.get('method', '')))}"
                   f" {html.escape(str(e['metric']))} = {e['value']}: {html.escape(str(e['source']))}"
                   f"{'' if e.get('comparable', True) else ' (metric defined differently: shown, not judged)'}</li>"
                   for e in published)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="lede">Test metrics at the last epoch, mean and sample std over seeds (full ranking over all items, training
items masked). <b>Reproduced?</b> is “yes” within {tolerance:.0%} (relative) of a published number measured on the
same split with the same metric definition, “no (±x%)” otherwise, “—” with no published number, and “n/c” where the
published metric is defined differently. Click a column header to sort; click again to reverse.</p>
<div class="controls"><input id="filter" type="search" placeholder="Filter rows (e.g. ndcg@20, gowalla)"
 aria-label="Filter rows"></div>
<div class="wrap"><table id="board"><thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody></table></div>
{"<h2>Figures</h2>" + "".join(figs) if figs else ""}
{"<h2>Published references</h2><ul>" + refs + "</ul>" if refs else ""}
<footer>{len(df)} rows · generated by specbench.report.leaderboard from run records</footer>
<script>{_JS}</script>
</body></html>
"""


def write_leaderboard(run_paths, out_stem: Path, chosen_paths=(), published_path=None,
                      figures_dir: Path | None = None, metrics=None) -> list[Path]:
    """Write <out_stem>.csv, .md and .html; return their paths."""
    runs = load_runs([Path(p) for p in run_paths])
    published, tolerance = load_published(published_path)
    df = leaderboard(runs, load_chosen(chosen_paths), published, tolerance, metrics)
    out_stem = Path(out_stem)
    figures = sorted(Path(figures_dir).glob("*.png")) if figures_dir and Path(figures_dir).is_dir() else []
    paths = [out_stem.with_suffix(s) for s in (".csv", ".md", ".html")]
    atomic_write_text(paths[0], df.to_csv(index=False))
    atomic_write_text(paths[1], to_markdown(df, tolerance))
    atomic_write_text(paths[2], to_html(df, figures, tolerance, published))
    return paths
