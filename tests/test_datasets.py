"""Datasets: the catalogue against the mirror's manifest, fetch (mirror and real HTTP on loopback),
checks with one clear message each, prepare, and the statistics table.

Independent truth: ../shared/datasets/MANIFEST.json (checksums, rows, duplicates), the table in
../shared/reference/directspec.md (users, items, train and test rows), and the authors' original
bytes, which the mirror's content re-encoded with CRLF and the original header reproduces exactly
(their sha256 is in the manifest).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from specbench.cli import main as cli
from specbench.data import prepare
from specbench.datasets import FetchOptions, fetch, load_catalog, obtain
from specbench.errors import SpecbenchError
from specbench.report.datasets import write_datasets_table
from tests.conftest import REPO

MIRROR = Path(os.environ.get("SPECBENCH_DATA_MIRROR") or REPO.parent / "shared" / "datasets")
FAST = FetchOptions(retries=3, backoff=0.01, timeout=10, progress=False)
# ../shared/reference/directspec.md, "Data": users, items, train rows, test rows.
PAPER_TABLE = {"citeulike": (5551, 16980, 166025, 44512), "gowalla": (29858, 40981, 810128, 217242)}


@pytest.fixture(scope="module")
def manifest() -> dict:
    path = MIRROR / "MANIFEST.json"
    assert path.is_file(), f"the dataset mirror is needed: {path} not found (set SPECBENCH_DATA_MIRROR)"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def mirror_content(rel: str) -> bytes:
    return gzip.decompress((MIRROR / rel).read_bytes())


def as_original(content: bytes, header: bytes = b"user,item") -> bytes:
    """Canonical content re-encoded as the authors' files are: CRLF and their header."""
    body = content.partition(b"\n")[2]
    return header + b"\r\n" + body.replace(b"\n", b"\r\n")


def tree(folder: Path) -> dict:
    """Every entry under ``folder`` (itself included) with size, mode and mtime: any write shows."""
    entries = [folder, *sorted(folder.rglob("*"))]
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mode, p.stat().st_mtime_ns) for p in entries}


# ---------------------------------------------------------------- a real HTTP server on loopback

class Server:
    """Serves bytes per path; ``plan[path]`` lists what the next requests get: 503, 'short' (half
    the body, then the connection closes) or 'ok' (the default once the plan is used up)."""

    def __init__(self):
        self.routes, self.plan, self.hits = {}, {}, Counter()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.hits[self.path] += 1
                body = owner.routes.get(self.path)
                step = owner.plan.get(self.path, []).pop(0) if owner.plan.get(self.path) else "ok"
                if body is None or step in (404, 503):
                    self.send_error(404 if body is None else step)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if step == "ok" else body[: len(body) // 2])
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def add(self, path: str, body: bytes, plan=()) -> str:
        self.routes[path], self.plan[path] = body, list(plan)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def dead_url(path: str) -> str:
    """A loopback URL nobody listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def with_files(ds, **changes):
    """``ds`` with some of its files' fields replaced, e.g. test={"url": ...}."""
    files = {k: dataclasses.replace(f, **changes.get(k, {})) for k, f in ds.files.items()}
    return dataclasses.replace(ds, files=files)


# ---------------------------------------------------------------- the catalogue

def test_catalogue_states_the_manifest_facts(catalog, manifest):
    by_file = {f["file"]: f for f in manifest["files"]}
    missing = {m.split(" (git blob ")[0]: m for d in manifest["datasets"].values() for m in d.get("missing", [])}
    used = set()
    for ds in catalog.datasets.values():
        for f in ds.files.values():
            if f.recbole:
                r = manifest["recbole_ml_100k"]
                assert (f.sha256, f.bytes, f.rows) == (r["file_sha256"], r["file_bytes"], r["rows"])
                assert r["file"].endswith(f.recbole)
                continue
            entry = by_file.get(f.mirror)
            used.add(f.mirror)
            if entry is None:  # not in the mirror: known by URL and git blob only
                note = missing[f.mirror.split("/")[1].removesuffix(".gz")]
                assert f.sha256 is None and f.rows is None
                assert f.original.git_blob in note and f.url in note
                continue
            assert (f.sha256, f.rows, f.url) == (entry["sha256"], entry["rows"], entry["url"]), f.label
            assert (f.original.sha256, f.original.bytes) == (entry.get("original_sha256"), entry.get("original_bytes"))
            assert f.original.git_blob == entry["original_git_blob"]
            assert f.reconstructed == ("derived_from" in entry), f.label
            assert entry["max_user_id"] < ds.id_space["users"] and entry["max_item_id"] < ds.id_space["items"]
    assert used >= set(by_file), "every file of the mirror belongs to a dataset"
    assert {"citeulike", "gowalla", "yelp", "ml100k"} <= set(catalog.datasets)


def test_unknown_dataset_and_bad_catalogue_key_are_named(catalog, tmp_path):
    with pytest.raises(SpecbenchError, match=r"unknown dataset 'citeulik'.*knows ml100k, citeulike, gowalla, yelp"):
        catalog.get("citeulik")
    doc = yaml.safe_load(catalog.path.read_text())
    doc["datasets"]["citeulike"]["files"]["train"]["sha265"] = "x"
    bad = tmp_path / "datasets.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecbenchError, match=r"datasets\.yaml, line \d+: datasets\.citeulike\.files\.train: "
                                             r"unknown key 'sha265' \(did you mean 'sha256'\?\)"):
        load_catalog(bad)


# ---------------------------------------------------------------- mirror -> raw -> atomic

@pytest.fixture(scope="module")
def prepared(tmp_path_factory, catalog):
    """CiteULike (the authors' split, from the mirror) and ml100k (the recbole copy), fetched and prepared."""
    root = tmp_path_factory.mktemp("prepared")
    for name in ("citeulike", "ml100k"):
        fetch(catalog.get(name), root / "raw", MIRROR, FAST)
        prepare(catalog.get(name), root / "raw", root / "atomic")
    return root


def test_citeulike_from_the_mirror_has_the_paper_counts(prepared, manifest):
    stats = json.loads((prepared / "atomic" / "citeulike" / "stats.json").read_text())
    assert (stats["users"], stats["items"], stats["train_rows"], stats["test_rows"]) == PAPER_TABLE["citeulike"]
    rows = {f["file"]: f["duplicate_rows"] for f in manifest["files"]}
    assert stats["train_duplicate_rows"] == rows["citeulike/train.csv.gz"]
    assert stats["test_duplicate_rows"] == rows["citeulike/test.csv.gz"]
    assert stats["train_test_overlap_pairs"] == 11  # directspec.md: 11 pairs in both train and test
    # the manifest: 33 pairs appear twice in train + test
    assert stats["interactions"] - stats["distinct_pairs"] == 33
    assert stats["density"] == pytest.approx(210537 / (5551 * 16980))
    assert stats["split"] == "fixed" and "masked" in stats["duplicates_policy"]


def test_atomic_files_keep_the_published_rows_in_order(prepared):
    for split in ("train", "test"):
        atomic = pd.read_csv(prepared / "atomic" / "citeulike" / f"citeulike.{split}.inter", sep="\t")
        assert list(atomic.columns) == ["user_id:token", "item_id:token"]
        source = pd.read_csv(MIRROR / "citeulike" / f"{split}.csv.gz")
        assert (atomic.to_numpy() == source.to_numpy()).all()


def test_ml100k_split_is_the_quick_studys_split(prepared):
    folder = prepared / "atomic" / "ml100k"
    # sha256 of the files `specbench prepare ml100k` wrote before datasets.yaml existed (commit ff884f6)
    assert hashlib.sha256((folder / "ml100k.train.inter").read_bytes()).hexdigest() == \
        "aae6643bfdf8df9267d861b132eb0564549171ed205698cbf42b7820f6d53a16"
    assert hashlib.sha256((folder / "ml100k.test.inter").read_bytes()).hexdigest() == \
        "aca0ac7ec6727d919ae6e1f27ee3ef569a884690f95f90c425394b7cae9d6645"
    train, test = (pd.read_csv(folder / f"ml100k.{s}.inter", sep="\t") for s in ("train", "test"))
    n_u = pd.concat([train, test])["user_id:token"].value_counts()
    n_test = test["user_id:token"].value_counts().reindex(n_u.index)
    assert (n_test == n_u.map(lambda n: math.ceil(0.2 * n))).all()


def test_prepare_refuses_unfetched_changed_or_misused_input(prepared, catalog, tmp_path):
    with pytest.raises(SpecbenchError, match=r"gowalla/fetched.json is missing: dataset 'gowalla' is not fetched"):
        prepare(catalog.get("gowalla"), prepared / "raw", tmp_path)
    with pytest.raises(SpecbenchError, match=r"citeulike has the authors' fixed split: --test-fraction/--seed"):
        prepare(catalog.get("citeulike"), prepared / "raw", tmp_path, test_fraction=0.3)
    raw = tmp_path / "raw"
    fetch(catalog.get("citeulike"), raw, MIRROR, FAST)
    with (raw / "citeulike" / "test.csv").open("ab") as f:
        f.write(b"0,1\n")
    with pytest.raises(SpecbenchError, match=r"test.csv changed since it was fetched"):
        prepare(catalog.get("citeulike"), raw, tmp_path / "atomic")
    assert not (tmp_path / "atomic").exists()


def test_fetching_from_a_read_only_mirror_writes_nothing_there(catalog, tmp_path):
    before = tree(MIRROR)  # /work/shared/datasets is read-only (r-x folders, r-- files)
    record = json.loads(fetch(catalog.get("ml100k_sparse"), tmp_path, MIRROR, FAST).read_text())
    assert tree(MIRROR) == before
    assert {e["source"] for e in record["files"].values()} == {str(MIRROR / "ml_100k" / f"{s}_sparse.csv.gz")
                                                              for s in ("train", "test")}


# ---------------------------------------------------------------- faults: one clear message each

def _damage(content: bytes, fault: str) -> bytes:
    lines = content.split(b"\n")
    if fault == "truncated gzip":
        data = gzip.compress(content)
        return data[: len(data) // 2]
    if fault == "checksum mismatch":  # same rows, one item id changed (still in range)
        lines[5] = b"0,0" if lines[5] != b"0,0" else b"0,1"
    elif fault == "wrong header":
        lines[0] = b"uid,iid"
    elif fault == "ids out of range":
        lines[7] = b"5551,3"
    elif fault == "empty file":
        lines = [b""]
    elif fault == "missing rows":
        lines = lines[:1000] + [b""]
    return gzip.compress(b"\n".join(lines))


FAULTS = {
    "truncated gzip": r"citeulike/test.csv.gz is not a complete gzip file \(.*\): the copy is truncated or damaged",
    "checksum mismatch": r"checksum mismatch for citeulike/test.csv: sha256 of the content is [0-9a-f]{64}, expected "
                         r"eca2150396f56eebb8dddea6210b72341c067df27b08a971547abfe39a5932ed\. Get it again: download "
                         r"https://raw.githubusercontent.com/tanatosuu/directspec/.*/Datasets/citeulike/test.csv",
    "wrong header": r"header is 'uid,iid', expected 'user,item'",
    "ids out of range": r"line 8: user id 5551 is out of range: expected 0 <= user < 5,551",
    "empty file": r"citeulike/test.csv \(from .*\) is empty \(0 bytes\): expected a CSV with the header 'user,item' "
                  r"and 44,512 rows",
    "missing rows": r"has 999 rows, expected 44,512",
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_bad_mirror_file_fails_with_its_own_message_and_writes_nothing(catalog, tmp_path, fault):
    mirror = tmp_path / "mirror" / "citeulike"
    mirror.mkdir(parents=True)
    (mirror / "train.csv.gz").write_bytes((MIRROR / "citeulike" / "train.csv.gz").read_bytes())
    (mirror / "test.csv.gz").write_bytes(_damage(mirror_content("citeulike/test.csv.gz"), fault))
    with pytest.raises(SpecbenchError) as err:
        fetch(catalog.get("citeulike"), tmp_path / "data" / "raw", mirror.parent, FAST)
    message = str(err.value)
    assert re.search(FAULTS[fault], message), message
    others = [f for f in FAULTS if f != fault and re.search(FAULTS[f], message)]
    assert not others, f"{fault} also reads as {others}"
    assert not (tmp_path / "data").exists()  # the good train.csv is not written either


# ---------------------------------------------------------------- download from the URL (real HTTP)

def test_download_reproduces_the_authors_bytes_and_round_trips(catalog, server, tmp_path, manifest):
    ds = catalog.get("citeulike")
    originals = {k: as_original(mirror_content(f.mirror)) for k, f in ds.files.items()}
    for key, f in ds.files.items():  # the re-encoding is byte-exact: its sha256 is the authors'
        assert hashlib.sha256(originals[key]).hexdigest() == f.original.sha256
    ds = with_files(ds, **{k: {"url": server.add(f"/c/{k}.csv", originals[k])} for k in ds.files})
    fetch(ds, tmp_path / "raw", None, FAST)
    for key, f in ds.files.items():
        assert (tmp_path / "raw" / "citeulike" / f"{key}.csv").read_bytes() == mirror_content(f.mirror)
    stats = json.loads(prepare(ds, tmp_path / "raw", tmp_path / "atomic").read_text())
    assert (stats["users"], stats["items"], stats["train_rows"], stats["test_rows"]) == PAPER_TABLE["citeulike"]
    # Yelp's test file: header "user ,item" in the original, "user,item" once converted
    f = catalog.get("yelp").files["test"]
    yelp = as_original(mirror_content(f.mirror), b"user ,item")
    got = obtain(dataclasses.replace(f, url=server.add("/y/test.csv", yelp)), tmp_path / "y", None, FAST)
    assert got.content == mirror_content(f.mirror) and got.from_original


def test_an_original_saved_in_a_mirror_is_checked_and_converted(catalog, tmp_path):
    """What the missing-file message tells a user to do: save the authors' file under the mirror."""
    mirror = tmp_path / "mirror" / "citeulike"
    mirror.mkdir(parents=True)
    (mirror / "train.csv.gz").write_bytes((MIRROR / "citeulike" / "train.csv.gz").read_bytes())
    (mirror / "test.csv").write_bytes(as_original(mirror_content("citeulike/test.csv.gz")))
    record = json.loads(fetch(catalog.get("citeulike"), tmp_path / "raw", mirror.parent, FAST).read_text())
    assert record["files"]["test"]["source"] == str(mirror / "test.csv")
    assert (tmp_path / "raw" / "citeulike" / "test.csv").read_bytes() == mirror_content("citeulike/test.csv.gz")
    lf = mirror_content("citeulike/test.csv.gz")  # saved with LF line endings: not the published bytes
    (mirror / "test.csv").write_bytes(lf)
    with pytest.raises(SpecbenchError, match=rf"test.csv is not the published citeulike/test.csv: bytes is {len(lf)}, "
                                             rf"expected 489285, sha256 is {hashlib.sha256(lf).hexdigest()}, expected "
                                             rf"b27b8daa"):
        fetch(catalog.get("citeulike"), tmp_path / "raw2", mirror.parent, FAST)
    assert not (tmp_path / "raw2").exists()


def test_download_retries_with_a_progress_bar(catalog, server, tmp_path, capsys):
    f = catalog.get("citeulike").files["test"]
    url = server.add("/t.csv", as_original(mirror_content(f.mirror)), plan=[503, "short"])
    got = obtain(dataclasses.replace(f, url=url), tmp_path, None,
                 dataclasses.replace(FAST, progress=True))
    assert server.hits["/t.csv"] == 3 and got.content == mirror_content(f.mirror)
    bar = capsys.readouterr().err
    assert "citeulike/test.csv" in bar and "100%" in bar and "489k" in bar
    assert list(tmp_path.iterdir()) == []  # the partial download is gone


@pytest.mark.parametrize("plan,hits,reason", [
    (["short"] * 3, 3, r"3 attempt\(s\) failed, last: connection closed after 244,642 of 489,285 bytes"),
    ([404], 1, r"1 attempt\(s\) failed, last: HTTP 404"),
])
def test_a_failed_download_is_retried_or_not_and_leaves_nothing(catalog, server, tmp_path, plan, hits, reason):
    f = catalog.get("citeulike").files["test"]
    ds = with_files(catalog.get("citeulike"), train={"url": dead_url("/train.csv")},
                    test={"url": server.add("/t.csv", as_original(mirror_content(f.mirror)), plan=plan)})
    ds = dataclasses.replace(ds, files={"test": ds.files["test"]})
    with pytest.raises(SpecbenchError, match=r"citeulike/test.csv is missing: .*downloading http://127.0.0.1:\d+/t.csv: "
                                             + reason) as err:
        fetch(ds, tmp_path / "raw", None, FAST)
    assert "Expected: sha256 eca2150396f56eebb8dddea6210b72341c067df27b08a971547abfe39a5932ed" in str(err.value)
    assert server.hits["/t.csv"] == hits
    assert not (tmp_path / "raw").exists()


def test_a_downloaded_original_with_a_wrong_checksum_is_refused(catalog, server, tmp_path):
    f = catalog.get("citeulike").files["test"]
    data = as_original(mirror_content(f.mirror)).replace(b"\r\n0,", b"\r\n1,", 1)  # same size, other bytes
    url = server.add("/bad.csv", data)
    with pytest.raises(SpecbenchError) as err:
        obtain(dataclasses.replace(f, url=url), tmp_path, None, FAST)
    message = str(err.value)
    assert f"{url} is not the published citeulike/test.csv: sha256 is {hashlib.sha256(data).hexdigest()}, " \
           f"expected {f.original.sha256}" in message
    assert "git_blob is" in message and f"Get it again: download {url}" in message
    assert list(tmp_path.iterdir()) == []


def test_yelp_offline_names_the_missing_train_file_and_writes_nothing(catalog, tmp_path, capsys):
    doc = yaml.safe_load(catalog.path.read_text())
    train = doc["datasets"]["yelp"]["files"]["train"]
    train["url"] = dead_url("/Datasets/yelp/train.csv")  # no network: the download fails like offline
    offline = tmp_path / "datasets.yaml"
    offline.write_text(yaml.safe_dump(doc))
    code = cli(["fetch", "yelp", "--catalog", str(offline), "--raw", str(tmp_path / "raw"), "--mirror", str(MIRROR),
                "--backoff", "0.01"])
    message = capsys.readouterr().err
    assert code == 2
    assert message.startswith("specbench: error: yelp/train.csv is missing: ")
    assert f"no {MIRROR / 'yelp' / 'train.csv.gz'}" in message
    assert f"downloading {train['url']}: 3 attempt(s) failed" in message
    assert "git blob f5b03853634357373952c5be7f5f97c3892a63ce" in message
    assert f"Get it from {train['url']} and save it as {MIRROR / 'yelp' / 'train.csv'}" in message
    assert not (tmp_path / "raw").exists()


# ---------------------------------------------------------------- the statistics table and the workflow

def test_datasets_table_is_generated_from_stats(prepared, tmp_path):
    stats = [prepared / "atomic" / d / "stats.json" for d in ("citeulike", "ml100k")]
    csv, md, tex = write_datasets_table(stats, tmp_path / "datasets")
    table = pd.read_csv(csv)
    assert table[["dataset", "users", "items", "train_rows", "test_rows"]].values.tolist() == [
        ["citeulike", 5551, 16980, 166025, 44512], ["ml100k", 943, 1682, 79619, 20381]]
    # density by hand: 210,537 / (5,551 x 16,980) = 0.2234%; 100,000 / (943 x 1,682) = 6.305%
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in md.read_text().splitlines() if "|" in line]
    assert cells[0] == ["Dataset", "Users", "Items", "Interactions", "Density", "Train", "Test"]
    assert cells[2] == ["CiteULike", "5,551", "16,980", "210,537", "0.223%", "166,025", "44,512"]
    assert "MovieLens-100k & 943 & 1,682 & 100,000 & 6.30\\% & 79,619 & 20,381 \\\\" in tex.read_text()
    with pytest.raises(SpecbenchError, match=r"nowhere/stats.json does not exist"):
        write_datasets_table([tmp_path / "nowhere" / "stats.json"], tmp_path / "t")


def test_workflow_plans_fetch_prepare_and_the_table(tmp_path):
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(REPO / "Snakefile"),
                             "results/quick/tables/datasets.md", "data/atomic/citeulike/stats.json", "--quiet", "rules"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    counts = dict(line.split()[:2] for line in result.stdout.splitlines() if len(line.split()) == 2)
    assert (counts.get("fetch"), counts.get("prepare"), counts.get("datasets_table")) == ("2", "2", "1")


def test_a_study_dataset_nobody_can_fetch_stops_before_planning(catalog, tmp_path):
    from specbench.datasets import check_requested
    with pytest.raises(SpecbenchError, match=r"dataset\(s\) \['citeulik'\] named by the study are not in .*datasets.yaml"):
        check_requested(["citeulike", "citeulik"], catalog, tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "stats.json").write_text("{}")
    check_requested(["citeulike", "mine"], catalog, tmp_path)  # prepared by hand: fine
