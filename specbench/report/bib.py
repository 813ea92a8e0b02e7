"""Which paper/references.bib entries the generated text cites for a method, a backbone or a dataset.

Keys are looked up by method key first (config/methods.yaml), then by model class name (a record's
run.model); a method or dataset without an entry is named without a citation. tests/test_paper.py
checks that every key below exists in paper/references.bib and every catalogue method has one.
"""

from __future__ import annotations

METHOD_CITES = {
    # the paper reproduced, its variants and its collapse reference
    "DirectSpecPlus": ["peng2024balancing"], "DirectSpec": ["peng2024balancing"],
    "PositivesOnly": ["peng2024balancing"],
    # baselines
    "BPR": ["rendle2009bpr"], "LightGCN": ["he2020lightgcn", "rendle2009bpr"],
    "LightGCNAdapter": ["he2020lightgcn", "rendle2009bpr"],
    "DirectAU": ["wang2022directau"], "MAWU": ["park2023mawu"], "NonContrastiveCL": ["chen2024ncl"],
    "SSM": ["wu2024ssm"], "SimGCL": ["yu2022simgcl"], "XSimGCL": ["yu2024xsimgcl"],
    "SGL": ["wu2021sgl"], "SGLAdapter": ["wu2021sgl"], "NCL": ["lin2022ncl"], "NCLAdapter": ["lin2022ncl"],
    "AFDGCF": ["wu2024afdgcf"], "GFCF": ["shen2021gfcf"], "BSPM": ["choi2023bspm"], "SGFCF": ["peng2024sgfcf"],
}
BACKBONE_CITES = {"mf": ["koren2009mf"], "lightgcn": ["he2020lightgcn"]}
DATASET_CITES = {"ml100k": ["harper2015movielens"], "citeulike": ["wang2011citeulike"], "gowalla": ["cho2011gowalla"],
                 "yelp": ["yelp2018dataset", "wang2019ngcf"], "pinterest": ["geng2015pinterest"]}
OTHER_CITES = {"recbole": ["zhao2021recbole"], "erank": ["roy2007erank"], "holm": ["holm1979"],
               "wilcoxon": ["wilcoxon1945"], "splits": ["peng2024balancing", "peng2024sgfcf"]}


def method_keys(method: str, model: str | None = None) -> list[str]:
    for name in (method, model):
        if name in METHOD_CITES:
            return METHOD_CITES[name]
    base = method.split("Plus")[0] if method.startswith("DirectSpec") else None  # ablation variants
    return METHOD_CITES.get(base, METHOD_CITES["DirectSpecPlus"]) if base else []


def dataset_keys(dataset: str) -> list[str]:
    return DATASET_CITES.get(dataset.removesuffix("_sparse"), [])


def citep(keys) -> str:
    keys = list(dict.fromkeys(keys))
    return rf"~\citep{{{','.join(keys)}}}" if keys else ""


def all_keys() -> set[str]:
    out = set()
    for table in (METHOD_CITES, BACKBONE_CITES, DATASET_CITES, OTHER_CITES):
        for keys in table.values():
            out.update(keys)
    return out
