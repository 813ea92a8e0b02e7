"""Names and looks shared by every table, figure and paragraph of a report.

One colour and marker per method key, the same in every figure (and every report: the table below
is fixed, unknown keys take the leftover colours in sorted-key order); the methods marked as ours
are drawn in one reserved colour, thicker and on top. Display names for datasets, backbones and
metrics, and method labels made unambiguous where two differ only in letter case (NCL / nCL).
"""

from __future__ import annotations

import re

BACKBONE_NAMES = {"mf": "MF", "lightgcn": "LightGCN", "filter": "Graph filter (training-free)"}
BACKBONE_SHORT = {"mf": "MF", "lightgcn": "LightGCN", "filter": "filter"}
DATASET_NAMES = {"ml100k": "MovieLens-100k", "citeulike": "CiteULike", "gowalla": "Gowalla", "yelp": "Yelp",
                 "pinterest": "Pinterest", "citeulike_sparse": "CiteULike (sparse)",
                 "gowalla_sparse": "Gowalla (sparse)", "yelp_sparse": "Yelp (sparse)",
                 "pinterest_sparse": "Pinterest (sparse)"}
METRIC_NAMES = {"recall": "Recall", "ndcg": "nDCG", "precision": "Precision", "hit": "Hit", "mrr": "MRR"}

OURS_COLOUR = "#C8102E"  # reserved: no other method is drawn in red
OURS_MARKER = "*"
# (colour, marker) per method key of config/methods.yaml; picked for contrast, red left out.
KNOWN = {
    "PositivesOnly": ("#222222", "X"), "BPR": ("#8C8C8C", "o"),
    "DirectAU": ("#1F5FBF", "s"), "MAWU": ("#56B4E9", "D"),
    "SSM": ("#2CA02C", "^"), "SimGCL": ("#B5B800", "v"), "XSimGCL": ("#17BECF", "<"),
    "SGL": ("#00441B", ">"), "NCL": ("#FF7F0E", "P"), "NonContrastiveCL": ("#7B3FBF", "h"),
    "AFDGCF": ("#E377C2", "p"), "GFCF": ("#8C564B", "d"), "BSPM": ("#D4A373", "8"),
    "SGFCF": ("#5C4033", "H"),
    "DirectSpecPlusPublished": ("#F4A582", "*"), "DirectSpecLinear": ("#B2182B", "o"),
    "DirectSpecPlusAdaptive": ("#FB6A4A", "s"), "DirectSpecPlusAdaptivePublished": ("#FCBBA1", "D"),
    "DirectSpecPlusNoShrink": ("#67001F", "^"), "DirectSpecPlusPairs": ("#D6604D", "v"),
}
SPARE = ["#4D4D4D", "#9EDAE5", "#98DF8A", "#C5B0D5", "#FFBB78", "#AEC7E8", "#DBDB8D", "#F7B6D2", "#393B79",
         "#637939", "#8C6D31", "#7B4173", "#3182BD", "#31A354"]
SPARE_MARKERS = ["o", "s", "D", "^", "v", "<", ">", "P", "h", "p", "d", "8", "H", "X"]


def dataset_name(key: str) -> str:
    return DATASET_NAMES.get(key, key)


def backbone_name(key: str, short: bool = False) -> str:
    return (BACKBONE_SHORT if short else BACKBONE_NAMES).get(key, key)


def metric_name(key: str) -> str:
    """recall@20 -> Recall@20, ndcg@10 -> nDCG@10 (others as they are)."""
    m = re.fullmatch(r"([a-z_]+)@(\d+)", key)
    return f"{METRIC_NAMES.get(m.group(1), m.group(1))}@{m.group(2)}" if m else METRIC_NAMES.get(key, key)


def display_labels(runs: list[dict]) -> dict[str, str]:
    """method key -> the label to print. A label that equals another one up to letter case (NCL and
    nCL) gets its method key in parentheses, unless the label is the key itself."""
    labels = {}
    for r in runs:
        labels.setdefault(r["run"]["method"], r["run"].get("label") or r["run"]["method"])
    folded: dict[str, set] = {}
    for method, label in labels.items():
        folded.setdefault(label.casefold(), set()).add(label)
    return {method: (f"{label} ({method})" if len(folded[label.casefold()]) > 1 and label != method else label)
            for method, label in labels.items()}


class Styles:
    """Colour, marker and line weight per method key for one report."""

    def __init__(self, methods, ours=()):
        self.ours = set(ours)
        methods = sorted(set(methods))
        taken = {KNOWN[m][0] for m in methods if m in KNOWN and m not in self.ours}
        spare = [c for c in SPARE if c not in taken]
        self.colour, self.marker = {}, {}
        unknown = 0
        for m in methods:
            if m in self.ours:
                self.colour[m], self.marker[m] = OURS_COLOUR, OURS_MARKER
            elif m in KNOWN:
                self.colour[m], self.marker[m] = KNOWN[m]
            else:
                self.colour[m] = spare[unknown % len(spare)]
                self.marker[m] = SPARE_MARKERS[unknown % len(SPARE_MARKERS)]
                unknown += 1

    def is_ours(self, method) -> bool:
        return method in self.ours

    def line(self, method) -> dict:
        """Keyword arguments for Axes.plot."""
        if self.is_ours(method):
            return dict(color=self.colour[method], marker=self.marker[method], lw=2.8, ms=11, zorder=10)
        return dict(color=self.colour[method], marker=self.marker[method], lw=1.4, ms=5.5, zorder=3)

    def point(self, method, filled=True) -> dict:
        """Keyword arguments for Axes.scatter; ``filled`` False draws the marker open."""
        colour = self.colour[method]
        size = 260 if self.is_ours(method) else 110 if filled else 85  # open markers look larger: their edge
        kw = dict(marker=self.marker[method], s=size, zorder=10 if self.is_ours(method) else 3)
        if filled:
            kw.update(c=[colour], edgecolors="black" if self.is_ours(method) else "white", linewidths=0.7)
        else:
            kw.update(facecolors="white", edgecolors=[colour], linewidths=1.6)
        return kw
