"""What the quick study's leaderboard would show under another search seed: search-seeds.md from the records.

For the six searches the tuning check flags (gain of 3% or more), `make tuning-check` (`--search-seeds 1 2 3`)
ran the quick study's own 8-trial search again under tuning seeds 1-3; its searches are kept in
../tuning-check/search-seeds/seed<k>/tuning. Each chosen setting was then trained once on the whole training
split and tested, as `make reproduce` does for seed 0 (training seed 0, the chosen epochs):
    snakemake --configfile results/quick-search-seed<k>/search-seed-study.yaml --cores 2 \
        results/quick-search-seed<k>/runs/ml100k/<backbone>/<method>/0.json
(the study file is the one `specbench tuning-check` writes there), and the run records copied to
search-seed-runs/seed<k>/. Search seed 0 is the quick study itself (../tuning, ../runs). The table goes to
search-seeds.md and into ../NOTE.md (then `specbench readme` for the README). Run from the repository root:
    .venv/bin/python results/reference/quick-cpu/search-budget/search_seeds.py
"""
import json
from pathlib import Path
from statistics import mean

HERE = Path(__file__).parent
REF = HERE.parent
SEARCHES = [("mf", "BPR"), ("mf", "PositivesOnly"), ("mf", "DirectAU"), ("mf", "DirectSpecPlus"), ("mf", "MAWU"),
            ("lightgcn", "AFDGCF")]
SEEDS = [1, 2, 3]


def folders(seed: int) -> tuple[Path, Path]:
    if seed == 0:
        return REF / "tuning", REF / "runs"
    return REF / "tuning-check" / "search-seeds" / f"seed{seed}" / "tuning", HERE / "search-seed-runs" / f"seed{seed}"


def record(backbone: str, method: str, seed: int) -> tuple[float, float]:
    """(best validation nDCG@20 of the chosen trial, test nDCG@20 of its final run) under search seed ``seed``."""
    tuning, runs = folders(seed)
    chosen = json.loads((tuning / "ml100k" / backbone / method / "chosen.json").read_text())
    run = json.loads((runs / "ml100k" / backbone / method / "0.json").read_text())
    return chosen["value"], run["final"]["metrics"]["ndcg@20"]


def main() -> None:
    check = REF / "tuning-check" / "tuning" / "ml100k"
    lines = ["| backbone | method | valid nDCG@20, search seeds 0 / 1 / 2 / 3 | check (32 trials) | "
             "test nDCG@20, search seeds 0 / 1 / 2 / 3 | test mean | test range |",
             "|---|---|---|---:|---|---:|---:|"]
    for backbone, method in SEARCHES:
        got = [record(backbone, method, s) for s in [0, *SEEDS]]
        valid, test = [v for v, _ in got], [t for _, t in got]
        big = json.loads((check / backbone / method / "chosen.json").read_text())["value"]
        lines.append(f"| {backbone} | {method} | {' / '.join(f'{v:.4f}' for v in valid)} | {big:.4f} | "
                     f"{' / '.join(f'{t:.3f}' for t in test)} | {mean(test):.3f} | {min(test):.3f}-{max(test):.3f} |")
    (HERE / "search-seeds.md").write_text("\n".join(lines) + "\n")
    note_table(REF / "NOTE.md", lines)
    print("\n".join(lines))


def note_table(note: Path, lines: list[str]) -> None:
    """Replace the table in the study's NOTE.md (which `specbench readme` puts in the README) that starts with
    this table's header row, so that its figures are generated, not typed."""
    text = note.read_text().split("\n")
    start = text.index(lines[0])
    end = start
    while end < len(text) and text[end].startswith("|"):
        end += 1
    note.write_text("\n".join(text[:start] + lines + text[end:]))


if __name__ == "__main__":
    main()
