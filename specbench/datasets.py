"""Dataset sources: where each file comes from, how it is verified, how it becomes canonical.

``config/datasets.yaml --fetch--> data/raw/<ds>/ --prepare (specbench/data.py)--> data/atomic/<ds>/``

The canonical form of an interaction file (what ``data/raw/<ds>/<split>.csv`` holds) is a CSV
with LF line endings, the header ``user,item`` and integer ids: the published rows in the
published order, duplicates kept. A file is taken from the first of these that has it:

1. ``data/raw/<ds>/`` itself, when a copy there already has the expected sha256;
2. the installed recbole package (``recbole:`` files, e.g. MovieLens-100k);
3. a mirror folder: ``<mirror>/<path>.gz`` (canonical content, checked by ``sha256``) or the
   authors' original bytes as ``<mirror>/<path>`` (checked like a download);
4. the URL, downloaded with retries and a progress bar; the original bytes are checked against
   their recorded sha256, size and git blob id, then converted (CRLF -> LF, header -> user,item).

A dataset is fetched whole or not at all: every file is obtained and checked before any is
written, and a failure removes its partial download. ``fetched.json`` (written last) records
each file's sha256, rows and source; ``prepare`` reads only the files it lists.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from specbench.atomic_io import atomic_write_bytes, atomic_write_text
from specbench.errors import SpecbenchError

CATALOG = Path(__file__).resolve().parents[1] / "config" / "datasets.yaml"
MIRROR_ENV = "SPECBENCH_DATA_MIRROR"
HEADER = b"user,item"
FETCHED = "fetched.json"


@dataclass(frozen=True)
class Original:
    """What is known of an original file's bytes (any of sha256/size/git blob) and its form."""
    sha256: str | None = None
    bytes: int | None = None
    git_blob: str | None = None
    headers: tuple[str, ...] = ("user,item",)
    newline: str = "crlf"

    @property
    def checkable(self) -> bool:
        return bool(self.sha256 or self.git_blob)

    def describe(self) -> str:
        parts = [f"sha256 {self.sha256}"] if self.sha256 else []
        parts += [f"{self.bytes:,} bytes"] if self.bytes else []
        parts += [f"git blob {self.git_blob}"] if self.git_blob else []
        return ", ".join(parts) or "no checksum recorded"


@dataclass(frozen=True)
class SourceFile:
    """One file of a dataset (a split, or all interactions for a split made here)."""
    dataset: str
    key: str
    rows: int | None
    sha256: str | None
    mirror: str | None = None
    url: str | None = None
    original: Original = field(default_factory=Original)
    recbole: str | None = None
    bytes: int | None = None
    format: str = "csv"
    reconstructed: bool = False

    @property
    def raw_name(self) -> str:
        return f"{self.key}.inter" if self.format == "recbole_inter" else f"{self.key}.csv"

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.raw_name}"


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    description: str
    split: dict | str
    files: dict[str, SourceFile]
    id_space: dict | None = None
    expect: dict = field(default_factory=dict)

    @property
    def fixed_split(self) -> bool:
        return self.split == "fixed"


@dataclass(frozen=True)
class Catalog:
    path: Path
    mirror: str | None
    datasets: dict[str, Dataset]

    def get(self, name: str) -> Dataset:
        if name not in self.datasets:
            raise SpecbenchError(f"unknown dataset {name!r}: {self.path} knows {', '.join(self.datasets)}")
        return self.datasets[name]


# ---------------------------------------------------------------- the catalogue (datasets.yaml)

def _source_file(where: str, ds: str, key: str, entry: dict, defaults: dict) -> SourceFile:
    orig = {**defaults, **(entry.get("original") or {})}
    headers = orig.get("header", "user,item")
    if not (entry.get("url") or entry.get("mirror") or entry.get("recbole")):
        raise SpecbenchError(f"{where}: give at least one source (url, mirror or recbole)")
    original = Original(orig.get("sha256"), orig.get("bytes"), orig.get("git_blob"),
                        tuple(headers) if isinstance(headers, list) else (headers,), orig.get("newline", "crlf"))
    return SourceFile(ds, key, entry["rows"], entry["sha256"], entry.get("mirror"), entry.get("url"), original,
                      entry.get("recbole"), entry.get("bytes"), entry.get("format", "csv"),
                      bool(entry.get("reconstructed", False)))


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Parse config/datasets.yaml (``path``, default this checkout's); a wrong key or value is named
    with its place in the file (keys and types: config/schema/datasets.schema.yaml)."""
    from specbench.schemas import check_file, display_path
    path = Path(path or CATALOG)
    if not path.is_file():
        raise SpecbenchError(f"dataset catalogue {path} does not exist (expected config/datasets.yaml)")
    doc = check_file(path, "datasets.schema.yaml")
    defaults = doc.get("original_defaults") or {}
    datasets = {}
    for name, entry in (doc["datasets"] or {}).items():
        where = f"{display_path(path)}: datasets.{name}"
        split = entry["split"]
        files = {k: _source_file(f"{where}.files.{k}", name, k, v, defaults) for k, v in entry["files"].items()}
        wanted = {"train", "test"} if split == "fixed" else {"interactions"}
        if set(files) != wanted:
            raise SpecbenchError(f"{where}.files: expected the keys {sorted(wanted)} for split {split!r}, "
                                 f"got {sorted(files)}")
        datasets[name] = Dataset(name, entry["title"], entry.get("description", ""), split, files,
                                 entry.get("id_space"), entry.get("expect") or {})
    return Catalog(path, doc.get("mirror"), datasets)


def check_requested(names, catalog: Catalog, atomic_dir: Path | str) -> None:
    """Stop before planning when a study names a dataset that can be neither fetched (it is not in
    the catalogue) nor found already prepared in ``atomic_dir``."""
    unknown = [n for n in dict.fromkeys(names)
               if n not in catalog.datasets and not (Path(atomic_dir) / n / "stats.json").is_file()]
    if unknown:
        raise SpecbenchError(f"dataset(s) {unknown} named by the study are not in {catalog.path} (known: "
                             f"{', '.join(catalog.datasets)}) and not prepared under {atomic_dir}/")


def resolve_mirror(cli: str | None, catalog: Catalog) -> Path | None:
    """The mirror folder: --mirror (the study's data_mirror) > $SPECBENCH_DATA_MIRROR > datasets.yaml."""
    for value, origin in ((cli, "--mirror"), (os.environ.get(MIRROR_ENV), MIRROR_ENV),
                          (catalog.mirror, f"{catalog.path}: mirror")):
        if value:
            folder = Path(value).expanduser()
            if not folder.is_dir():
                raise SpecbenchError(f"mirror folder {folder} (from {origin}) does not exist or is not a folder")
            return folder
    return None


# ---------------------------------------------------------------- checks and conversion

def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob_id(data: bytes) -> str:
    """The id git gives a file with these bytes (sha1 of ``blob <size>\\0`` + content)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _where_to_get(f: SourceFile) -> str:
    places = [f"download {f.url}"] if f.url else []
    if f.mirror:
        places.append(f"or use a mirror folder ({MIRROR_ENV}) holding {f.mirror}")
    if f.recbole:
        places.append("reinstall recbole==1.2.1")
    return "; ".join(places) or "see config/datasets.yaml"


def check_original(data: bytes, f: SourceFile, where: str) -> None:
    """The bytes of an original (download or mirror copy) against every recorded checksum."""
    o = f.original
    actual = {"bytes": len(data), "sha256": sha256_hex(data) if o.sha256 else None,
              "git_blob": git_blob_id(data) if o.git_blob else None}
    wrong = [k for k in ("bytes", "sha256", "git_blob") if getattr(o, k) and getattr(o, k) != actual[k]]
    if wrong:
        raise SpecbenchError(
            f"{where} is not the published {f.label}: " + ", ".join(
                f"{k} is {actual[k]}, expected {getattr(o, k)}" for k in wrong)
            + ("" if "sha256" in wrong else f" (its sha256 is {sha256_hex(data)})")
            + f". Get it again: {_where_to_get(f)}. Nothing was written.")


def check_canonical(content: bytes, f: SourceFile, where: str) -> None:
    actual = sha256_hex(content)
    if f.sha256 and actual != f.sha256:
        raise SpecbenchError(
            f"{where}: checksum mismatch for {f.label}: sha256 of the content is {actual}, expected {f.sha256}. "
            f"Get it again: {_where_to_get(f)}. Nothing was written.")


def gunzip(data: bytes, where: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as exc:
        raise SpecbenchError(f"{where} is not a complete gzip file ({exc}): the copy is truncated or damaged; "
                             f"replace it with a good copy. Nothing was written.") from None


def to_canonical(data: bytes, f: SourceFile, where: str) -> bytes:
    """An original's bytes in canonical form: LF line endings and the header ``user,item``."""
    o = f.original
    if o.newline == "crlf":
        data = data.replace(b"\r\n", b"\n")
    header, sep, body = data.partition(b"\n")
    if header.decode("utf-8", "replace") not in o.headers:
        raise SpecbenchError(f"{where}: header is {header.decode('utf-8', 'replace')!r}, expected "
                             f"{' or '.join(map(repr, o.headers))} (the authors' {f.label})")
    return HEADER + sep + body


_PAIR = re.compile(rb"^\d+,\d+$")


def _first_bad_line(body: bytes) -> tuple[int, bytes]:
    """(line number, line) of the first line that is not ``<int>,<int>`` (a final empty line is fine)."""
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    for n, line in enumerate(lines, start=2):
        if not _PAIR.match(line):
            return n, line
    return 0, b""


def read_pairs(content: bytes, where: str, rows: int | None = None, id_space: dict | None = None) -> pd.DataFrame:
    """Parse canonical CSV content into an int64 (user, item) frame, checking it on the way.

    Each problem has its own message: an empty file, a wrong header, a line that is not two
    non-negative integers, an id outside the declared id space, a wrong number of rows.
    """
    if not content.strip():
        raise SpecbenchError(f"{where} is empty ({len(content)} bytes): expected a CSV with the header 'user,item'"
                             + (f" and {rows:,} rows" if rows else ""))
    header, _, body = content.partition(b"\n")
    if header != HEADER:
        raise SpecbenchError(f"{where}: header is {header.decode('utf-8', 'replace')!r}, expected 'user,item' "
                             f"(LF line endings)")
    if not body.strip():
        raise SpecbenchError(f"{where} has the header but no rows" + (f": expected {rows:,}" if rows else ""))
    try:
        df = pd.read_csv(io.BytesIO(body), header=None, names=["user", "item"], dtype=np.int64, engine="c",
                         skip_blank_lines=False, na_filter=False, index_col=False)
    except (ValueError, pd.errors.ParserError) as exc:
        line_no, line = _first_bad_line(body)
        raise SpecbenchError(f"{where}, line {line_no}: {line.decode('utf-8', 'replace')!r} is not two "
                             f"non-negative integers 'user,item'" if line_no else f"{where}: cannot parse ({exc})") from None
    limits = {"user": (id_space or {}).get("users"), "item": (id_space or {}).get("items")}
    for col, n in limits.items():
        values = df[col].to_numpy()
        bad = np.flatnonzero((values < 0) | (values >= n)) if n else np.flatnonzero(values < 0)
        if len(bad):
            i = int(bad[0])
            raise SpecbenchError(f"{where}, line {i + 2}: {col} id {values[i]} is out of range: expected "
                                 f"0 <= {col} < {n:,} (the dataset's id_space)" if n else
                                 f"{where}, line {i + 2}: {col} id {values[i]} is negative")
    if rows is not None and len(df) != rows:
        raise SpecbenchError(f"{where} has {len(df):,} rows, expected {rows:,}")
    return df


# ---------------------------------------------------------------- download

TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


def download(url: str, part: Path, *, label: str, expected_bytes: int | None = None, retries: int = 3,
             backoff: float = 1.0, timeout: float = 60.0, progress: bool | None = None) -> bytes:
    """GET ``url`` into the file ``part`` with a progress bar; retry transient failures with backoff.

    Returns the bytes. A short body (fewer bytes than Content-Length), a connection error or a
    5xx/429 answer is retried after ``backoff * 2**k`` seconds; a 404 is not. ``part`` is removed
    whatever happens.
    """
    from tqdm import tqdm
    errors = []
    try:
        for attempt in range(1, retries + 1):
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "specbench-fetch"})
                with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
                    total = int(response.headers.get("Content-Length") or 0) or expected_bytes
                    got = 0
                    with tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr,
                              disable=(not progress) if progress is not None else None) as bar:
                        while chunk := response.read(1 << 16):
                            out.write(chunk)
                            got += len(chunk)
                            bar.update(len(chunk))
                    declared = response.headers.get("Content-Length")
                    if declared is not None and got != int(declared):
                        raise ConnectionError(f"connection closed after {got:,} of {int(declared):,} bytes")
                return part.read_bytes()
            except urllib.error.HTTPError as exc:
                errors.append(f"HTTP {exc.code} {exc.reason}")
                if exc.code not in TRANSIENT_HTTP:
                    break
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                errors.append(str(getattr(exc, "reason", exc)))
            part.unlink(missing_ok=True)
            if attempt < retries:
                time.sleep(backoff * 2 ** (attempt - 1))
        raise DownloadError(f"{len(errors)} attempt(s) failed, last: {errors[-1]}")
    finally:
        part.unlink(missing_ok=True)


class DownloadError(Exception):
    """A download that did not complete (turned into the missing-file message by fetch)."""


# ---------------------------------------------------------------- fetch

@dataclass
class FetchOptions:
    retries: int = 3
    backoff: float = 1.0
    timeout: float = 60.0
    progress: bool | None = None


@dataclass(frozen=True)
class Obtained:
    """A file's canonical content, where it came from, and whether that was an original."""
    content: bytes
    source: str
    from_original: bool = False


def _from_mirror(f: SourceFile, mirror: Path, tried: list) -> Obtained | None:
    gz = mirror / f.mirror
    if gz.is_file() and f.sha256:
        return Obtained(gunzip(gz.read_bytes(), str(gz)), str(gz))
    tried.append(f"{gz} exists but no sha256 is recorded to check it" if gz.is_file() else f"no {gz}")
    plain = mirror / f.mirror.removesuffix(".gz")
    if plain == gz:
        return None
    if plain.is_file() and f.original.checkable:
        data = plain.read_bytes()
        check_original(data, f, str(plain))
        return Obtained(to_canonical(data, f, str(plain)), str(plain), True)
    tried.append(f"no {plain}")
    return None


def _from_url(f: SourceFile, part: Path, opts: FetchOptions, tried: list) -> Obtained | None:
    try:
        data = download(f.url, part, label=f.label, expected_bytes=f.original.bytes, retries=opts.retries,
                        backoff=opts.backoff, timeout=opts.timeout, progress=opts.progress)
    except DownloadError as exc:
        tried.append(f"downloading {f.url}: {exc}")
        return None
    check_original(data, f, f.url)
    return Obtained(to_canonical(data, f, f.url), f.url, True)


def _from_recbole(f: SourceFile) -> Obtained:
    import recbole
    path = Path(recbole.__file__).resolve().parent / f.recbole
    if not path.is_file():
        raise SpecbenchError(f"{path} is missing ({f.label}): reinstall recbole==1.2.1, whose wheel ships it")
    data = path.read_bytes()
    if (f.bytes and len(data) != f.bytes) or (f.sha256 and sha256_hex(data) != f.sha256):
        raise SpecbenchError(f"{path} ({f.label}): sha256 is {sha256_hex(data)} ({len(data):,} bytes), expected "
                             f"{f.sha256} ({f.bytes} bytes): reinstall recbole==1.2.1")
    return Obtained(data, str(path))


def _missing(f: SourceFile, tried: list, mirror: Path | None) -> SpecbenchError:
    expected = f"sha256 {f.sha256} (after conversion)" if f.sha256 else "no sha256 is recorded"
    place = (mirror / f.mirror.removesuffix(".gz")) if mirror and f.mirror else f"<mirror>/{f.mirror}"
    return SpecbenchError(
        f"{f.label} is missing: " + "; ".join(tried or ["no source is configured"]) + f". Expected: {expected}; "
        f"the original file: {f.original.describe()}. Get it from {f.url or 'a mirror'} and save it as {place} "
        f"(or in any folder given by {MIRROR_ENV} or the study's data_mirror), then rerun. Nothing was written.")


def obtain(f: SourceFile, raw_dir: Path, mirror: Path | None, opts: FetchOptions) -> Obtained:
    """The canonical content of one file from its first available source, checked as an original
    where it is one; raises the missing-file message when no source has it."""
    existing = raw_dir / f.raw_name
    if f.sha256 and existing.is_file():
        data = existing.read_bytes()
        if sha256_hex(data) == f.sha256:
            return Obtained(data, str(existing))
    if f.recbole:
        return _from_recbole(f)
    tried = [] if mirror else [f"no mirror folder is set ({MIRROR_ENV})"]
    found = _from_mirror(f, mirror, tried) if mirror and f.mirror else None
    if found is None and f.url:
        raw_dir.mkdir(parents=True, exist_ok=True)
        found = _from_url(f, raw_dir / f".{f.raw_name}.part", opts, tried)
    if found is None:
        raise _missing(f, tried, mirror)
    return found


def _check_content(ds: Dataset, f: SourceFile, got: Obtained) -> int:
    """Rows of an obtained file after every content check (structure first, then sha256)."""
    where = f"{f.label} (from {got.source})"
    if f.format == "recbole_inter":
        rows = got.content.count(b"\n") - 1
    else:
        rows = len(read_pairs(got.content, where, f.rows, ds.id_space))
    if not (got.from_original and f.reconstructed):  # the authors' row order is not the mirror's
        check_canonical(got.content, f, where)
    return rows


def fetch(ds: Dataset, raw_root: Path, mirror: Path | None = None, opts: FetchOptions | None = None) -> Path:
    """Obtain and check every file of ``ds``, then write them to ``raw_root/<ds>/`` and ``fetched.json``.

    Nothing is written unless every file is available and correct; folders this call created are
    removed again on failure.
    """
    opts = opts or FetchOptions()
    folder = Path(raw_root) / ds.name
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        staged = {}
        for key, f in ds.files.items():
            got = obtain(f, folder, mirror, opts)
            staged[key] = (got, _check_content(ds, f, got))
        record = {"dataset": ds.name, "files": {}}
        for key, (got, rows) in staged.items():
            f = ds.files[key]
            atomic_write_bytes(folder / f.raw_name, got.content)
            record["files"][key] = {"file": f.raw_name, "sha256": sha256_hex(got.content),
                                    "bytes": len(got.content), "rows": rows, "source": got.source}
        atomic_write_text(folder / FETCHED, json.dumps(record, indent=2) + "\n")
        return folder / FETCHED
    except BaseException:
        for p in made:  # deepest first: only folders this call created, and only when empty
            try:
                p.rmdir()
            except OSError:
                break
        raise


def fetched_files(ds: Dataset, raw_root: Path) -> dict[str, tuple[Path, bytes]]:
    """The raw files ``fetch`` wrote for ``ds``, checked against fetched.json (read by prepare)."""
    folder = Path(raw_root) / ds.name
    record_path = folder / FETCHED
    if not record_path.is_file():
        raise SpecbenchError(f"{record_path} is missing: dataset {ds.name!r} is not fetched. "
                             f"Run `specbench fetch {ds.name}` (or `snakemake {record_path}`) first.")
    record = json.loads(record_path.read_text())
    out = {}
    for key, f in ds.files.items():
        entry = record.get("files", {}).get(key)
        path = folder / f.raw_name
        if entry is None or not path.is_file():
            raise SpecbenchError(f"{path} is not listed in {record_path} or is missing: rerun `specbench fetch {ds.name}`")
        data = path.read_bytes()
        if sha256_hex(data) != entry["sha256"]:
            raise SpecbenchError(f"{path} changed since it was fetched: sha256 {sha256_hex(data)}, {record_path} "
                                 f"says {entry['sha256']}. Delete {folder} and rerun `specbench fetch {ds.name}`.")
        out[key] = (path, data)
    return out
