"""Ontologies on disk: terms, labels and synonyms, ancestors, deprecations, and exact matching
of free text after normalization.

The terms come from the ``cellxgene-ontology-guide`` package, which ships pinned releases of
CL, UBERON, EFO, MONDO, PATO, HsapDv, MmusDv, NCBITaxon and Cellosaurus (CVCL) as compressed
JSON; nothing is fetched at run time. Parsing a release is slow for the big ones (NCBITaxon:
about 20 s), so the compact lexicon built from it is cached in
``$SCURATE_CACHE_DIR/ontologies`` (default ``~/.cache/scurate/ontologies``), keyed by the
package version, the release and :data:`CACHE_FORMAT`, and reused by every later run.

The cache is an SQLite file for every ontology: data only, so that whoever can write the cache
folder cannot make a harmonize run code (as a pickle could). A cache that cannot be read, or
was written in another format, is rebuilt with a warning.

Matching is exact after :func:`normalize` (case, punctuation, separators, plurals); it is never
fuzzy. Which ontology serves which canonical field is :data:`FIELD_ONTOLOGIES`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import os
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scurate._data.atomic import atomic
from scurate.errors import InputError

log = logging.getLogger(__name__)

# which ontologies each canonical field takes its terms from (CELLxGENE schema 7; cell_line is
# scurate's own field, with Cellosaurus terms)
FIELD_ONTOLOGIES: dict[str, tuple[str, ...]] = {
    "organism": ("NCBITaxon",),
    "tissue": ("UBERON", "CL"),  # CL for a cell culture, as CELLxGENE allows
    "cell_type": ("CL",),
    "assay": ("EFO",),
    "disease": ("MONDO", "PATO"),
    "sex": ("PATO",),
    "development_stage": ("HsapDv", "MmusDv", "UBERON"),
    "cell_line": ("CVCL",),
}
KNOWN_PREFIXES = frozenset(o for names in FIELD_ONTOLOGIES.values() for o in names)
# ontologies whose free text is matched: (field, ontology) pairs left out are ids only
TEXT_ONTOLOGIES: dict[str, tuple[str, ...]] = {
    **FIELD_ONTOLOGIES,
    "tissue": ("UBERON",),
    "development_stage": ("HsapDv", "MmusDv"),
}
# the only terms of an ontology a field may use, where CELLxGENE restricts them
ALLOWED_TERMS: dict[tuple[str, str], frozenset[str]] = {
    ("disease", "PATO"): frozenset({"PATO:0000461"}),  # normal
    ("sex", "PATO"): frozenset({"PATO:0000383", "PATO:0000384", "PATO:0001340"}),
}
# organisms CELLxGENE hosts: where a common name ("mouse") is also a genus's, the model wins
MODEL_ORGANISMS = frozenset(
    f"NCBITaxon:{n}"
    for n in (9606, 10090, 10116, 7955, 7227, 6239, 9544, 9541, 9598, 9483, 9823, 9986, 13616)
)
# CELLxGENE's placeholders: a value, not a term
PLACEHOLDERS = frozenset({"unknown", "na"})
# development stage ontologies by organism
STAGE_ONTOLOGY = {"NCBITaxon:9606": "HsapDv", "NCBITaxon:10090": "MmusDv"}
# CL marks some terms as specific to one organism: "alpha retinal ganglion cell (Mmus)"
TAXON_TAGS = {"mmus": "NCBITaxon:10090", "hsap": "NCBITaxon:9606"}

ID_PATTERN = re.compile(r"^(?P<prefix>[A-Za-z][A-Za-z0-9]*)(?P<sep>[:_])(?P<local>[A-Za-z0-9]+)$")
PREFIX_SEPARATOR = {"CVCL": "_"}  # every other ontology writes PREFIX:LOCAL
ANCESTORS_KEPT = frozenset({"CL", "UBERON", "EFO"})  # the others are matched, never rolled up
# EFO also holds cell lines and diseases: an assay is one of these or below them (CELLxGENE)
ASSAY_ROOTS = frozenset({"EFO:0002772", "EFO:0010183"})
CACHE_FORMAT = 5  # bump when the cache's tables change: old caches are then ignored
SQLITE_ABOVE = 100_000  # ontologies with more terms (NCBITaxon, Cellosaurus) are queried on disk
# the cache's names table: what a name is of its term (its kind column holds one of these)
SYNONYM, LABEL, REPLACED = 0, 1, 2
TERM_COLUMNS = "id, label, synonyms, deprecated, replaced_by, consider, ancestors"
Index = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Term:
    """One ontology term as scurate uses it."""

    id: str
    label: str
    synonyms: tuple[str, ...] = ()
    deprecated: bool = False
    replaced_by: str | None = None
    consider: tuple[str, ...] = ()
    ancestors: tuple[tuple[str, int], ...] = ()  # (ancestor id, distance), CL and UBERON only

    @property
    def taxon(self) -> str | None:
        """The organism a CL term is specific to, from its label's ``(Mmus)`` tag."""
        match = re.search(r"\((\w+)\)\s*$", self.label)
        return TAXON_TAGS.get(match.group(1).lower()) if match else None


_PLURAL_KEEP = ("ss", "us", "is", "ous")


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(_PLURAL_KEEP):
        return word[:-1]
    return word


def normalize(text: str) -> str:
    """Lower case, ``+`` as "positive", punctuation and separators as spaces, plurals singular:
    ``"CD4+ T-cells"`` and ``"cd4 positive T cell"`` are the same."""
    value = unicodedata.normalize("NFKC", text).casefold().replace("+", " positive ")
    value = re.sub(r"\(\s*(mmus|hsap)\s*\)\s*$", " ", value)  # organism tags, kept as Term.taxon
    value = re.sub(r"[^0-9a-z]+", " ", value)
    return " ".join(_singular(w) for w in value.split())


def compact(text: str) -> str:
    """Letters and digits only: cell-line codes ("A-549", "A549") meet on this."""
    return re.sub(r"[^0-9a-z]+", "", unicodedata.normalize("NFKC", text).casefold())


def cache_dir() -> Path:
    root = os.environ.get("SCURATE_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "scurate"
    return base / "ontologies"


@dataclass
class Ontology:
    """One ontology release: its terms and an index from normalized names to term ids.

    Small ontologies are read from their cache file into memory once; the big ones
    (NCBITaxon, 1.3M terms; Cellosaurus, 167k) stay in theirs and are queried, so that using
    them costs no load time."""

    name: str
    version: str
    terms: Mapping[str, Term] = field(default_factory=dict)
    index: dict[str, tuple[str, ...]] = field(default_factory=dict)  # names of live terms
    label_index: dict[str, tuple[str, ...]] = field(default_factory=dict)  # labels only
    replaced_index: dict[str, tuple[str, ...]] = field(default_factory=dict)  # deprecated terms
    db: Path | None = None

    def __post_init__(self) -> None:
        if self.index or self.db is not None:
            return
        self.index, self.label_index, self.replaced_index = _indexes(_names(self.name, self.terms))

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_conn", "_postings")}

    def _rows(self, query: str, args: tuple[object, ...], *, terms: bool = False) -> list[Any]:
        """Rows of a query of the cache file (as terms if ``terms``); a file damaged since it
        was opened (pages SQLite cannot read, a term whose JSON is bad) is rebuilt once."""
        assert self.db is not None
        for attempt in (1, 2):
            conn = self.__dict__.get("_conn")
            try:
                if conn is None:
                    conn = self.__dict__["_conn"] = _connect(self.db)
                rows = conn.execute(query, args).fetchall()
                return [_term(r) for r in rows] if terms else rows
            except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
                self.__dict__.pop("_conn", None)
                if conn is not None:
                    conn.close()
                if attempt == 2:
                    msg = f"{self.db}: the ontology cache cannot be read ({exc}); remove it"
                    raise InputError(msg) from exc
                _rebuild(self.name, self.version, self.db, exc)
        raise AssertionError  # pragma: no cover - the loop returns or raises

    def key(self, text: str) -> str:
        return compact(text) if self.name == "CVCL" else normalize(text)

    def get(self, term_id: str) -> Term | None:
        if self.db is None:
            return self.terms.get(term_id)
        found = self._rows(f"SELECT {TERM_COLUMNS} FROM terms WHERE id = ?", (term_id,), terms=True)
        return found[0] if found else None

    def lookup(self, text: str, *, labels_only: bool = False) -> tuple[str, ...]:
        """Ids of the live terms whose label (or a synonym) equals ``text`` after normalizing."""
        if self.db is not None:
            kind = "kind = ?" if labels_only else "kind != ?"
            query = f"SELECT DISTINCT id FROM names WHERE key = ? AND {kind}"
            args = (self.key(text), LABEL if labels_only else REPLACED)
            return tuple(sorted(r[0] for r in self._rows(query, args)))
        table = self.label_index if labels_only else self.index
        return table.get(self.key(text), ())

    def replacements(self, text: str) -> tuple[str, ...]:
        """The replacements of deprecated terms whose label equals ``text`` (the ontologies held
        in memory only: none for NCBITaxon and Cellosaurus)."""
        found = {self.terms[i].replaced_by for i in self.replaced_index.get(self.key(text), ())}
        return tuple(sorted(r for r in found if r))

    def candidates(self, text: str, limit: int = 5) -> list[str]:
        """Live terms whose name holds every word of ``text`` (shortest names first), for a
        user to choose from; never used to map."""
        if self.db is not None:
            if self.name != "CVCL" or not compact(text):
                return []  # no word search over NCBITaxon's 2.5M names
            rows = self._rows(
                "SELECT DISTINCT id, length(key) FROM names WHERE key LIKE ? AND kind != ? "
                "ORDER BY length(key), id LIMIT ?",
                (f"%{compact(text)}%", REPLACED, limit),
            )
            return [r[0] for r in rows]
        if self.name == "CVCL":
            want = compact(text)
            if not want:
                return []
            found = [(len(k), k, ids) for k, ids in self.index.items() if want in k]
        else:
            words = set(normalize(text).split()) - {"cell", "of", "the"}
            if not words:
                return []
            found = self._holding(words)
            if not found and len(words) > 1:  # "quiescent stellate": any word but one
                found = [f for w in sorted(words) for f in self._holding(words - {w})]
        out: list[str] = []
        for _, _, ids in sorted(found):
            for term_id in ids:
                if term_id not in out:
                    out.append(term_id)
        return out[:limit]

    def _holding(self, words: set[str]) -> list[tuple[int, str, tuple[str, ...]]]:
        postings = self.__dict__.get("_postings")
        if postings is None:  # word -> names holding it, built on first use
            postings = {}
            for name in self.index:
                for word in set(name.split()):
                    postings.setdefault(word, []).append(name)
            self.__dict__["_postings"] = postings
        lists = sorted((postings.get(w, []) for w in words), key=len)
        if not lists or not lists[0]:
            return []
        names = set(lists[0]).intersection(*lists[1:])
        return [(len(k), k, self.index[k]) for k in names]

    def ancestors(self, term_id: str) -> dict[str, int]:
        term = self.get(term_id)
        return dict(term.ancestors) if term else {}


def _names(name: str, terms: Mapping[str, Term]) -> Iterator[tuple[str, str, int]]:
    """``(key, term id, kind)`` of every name: ``kind`` is :data:`LABEL` or :data:`SYNONYM` for
    a live term's label and synonyms, :data:`REPLACED` for the label of a deprecated term that
    names its replacement (MmusDv's "adult stage" is now "mature stage")."""
    key = compact if name == "CVCL" else normalize
    for term in terms.values():
        if term.deprecated:
            if term.replaced_by:
                yield key(term.label), term.id, REPLACED
            continue
        yield key(term.label), term.id, LABEL
        for synonym in term.synonyms:
            yield key(synonym), term.id, SYNONYM


def _indexes(names: Iterable[tuple[str, str, int]]) -> tuple[Index, Index, Index]:
    """The name, label and replaced-label indexes of an in-memory ontology."""
    found: tuple[dict[str, set[str]], ...] = ({}, {}, {})
    index, labels, replaced = found
    for key, term_id, kind in names:
        if kind == REPLACED:
            replaced.setdefault(key, set()).add(term_id)
            continue
        index.setdefault(key, set()).add(term_id)
        if kind == LABEL:
            labels.setdefault(key, set()).add(term_id)
    out = ({k: tuple(sorted(v)) for k, v in d.items()} for d in found)
    return next(out), next(out), next(out)


def _read_index(conn: sqlite3.Connection, kinds: str) -> Index:
    """An index of a cache file, grouped by SQLite: the ids of names of ``kinds`` by key."""
    rows = conn.execute(
        "SELECT key, group_concat(id, char(9)) FROM "
        f"(SELECT DISTINCT key, id FROM names WHERE kind {kinds}) GROUP BY key"
    )
    return {k: tuple(sorted(ids.split("\t"))) if "\t" in ids else (ids,) for k, ids in rows}


def _term(row: tuple[Any, ...]) -> Term:
    """A term from its row of the cache's ``terms`` table (columns :data:`TERM_COLUMNS`); bad
    JSON there is a ValueError or a TypeError."""
    term_id, label, synonyms, deprecated, replaced_by, consider, ancestors = row
    ids, distances = json.loads(ancestors)
    return Term(
        term_id,
        label,
        tuple(json.loads(synonyms)),
        bool(deprecated),
        replaced_by,
        tuple(json.loads(consider)),
        tuple(zip(ids, distances, strict=True)),
    )


class _CachedTerms(Mapping[str, Term]):
    """The terms of a cache file, each made from its row when first asked for (a harmonize run
    asks for a few of the thousands); a row that is damaged rebuilds the file once."""

    def __init__(self, onto: tuple[str, str, Path], rows: Iterable[tuple[Any, ...]]) -> None:
        self._onto = onto  # name, version, cache file
        self._rows = {row[0]: row for row in rows}
        self._made: dict[str, Term] = {}

    def __getitem__(self, term_id: str) -> Term:
        made = self._made.get(term_id)
        if made is None:
            row = self._rows[term_id]
            try:
                made = self._made[term_id] = _term(row)
            except (ValueError, TypeError) as exc:
                self._made = _rebuild(*self._onto, exc)
                self._rows = dict.fromkeys(self._made, row)  # iteration needs the keys only
                made = self._made[term_id]
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def _rebuild(name: str, version: str, path: Path, why: Exception) -> dict[str, Term]:
    """Parse ontology ``name`` again and rewrite its cache file ``path``, which ``why`` says
    is damaged; one line if it cannot be rewritten."""
    log.warning("ontology cache %s unreadable (%s); rebuilding", path, why)
    terms = _parse(name)
    try:
        _build(name, version, path, terms, list(_names(name, terms)))
    except (OSError, sqlite3.Error) as exc:
        msg = f"{path}: the ontology cache is damaged ({why}) and cannot be rebuilt ({exc})"
        raise InputError(msg) from exc
    return terms


def _connect(path: Path) -> sqlite3.Connection:
    uri = f"{path.resolve().as_uri()}?mode=ro"  # as_uri quotes what a URI cannot hold
    return sqlite3.connect(uri, uri=True, check_same_thread=False)


def _build(
    name: str, version: str, path: Path, terms: dict[str, Term], names: list[tuple[str, str, int]]
) -> None:
    """Write the cache file of ontology ``name``: its terms, its ``names`` (see :func:`_names`),
    and what it was built from, in the ``meta`` table."""
    meta = {"format": str(CACHE_FORMAT), "name": name, "version": version}
    with atomic(path, unique=True) as tmp:  # other runs may build the same cache
        conn = sqlite3.connect(tmp)
        try:  # no journal: a file cut short is never renamed into place, or is rebuilt
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute(
                "CREATE TABLE terms (id TEXT PRIMARY KEY, label TEXT, synonyms TEXT, "
                "deprecated INTEGER, replaced_by TEXT, consider TEXT, ancestors TEXT)"
            )
            conn.execute("CREATE TABLE names (key TEXT, id TEXT, kind INTEGER)")
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            conn.executemany(
                "INSERT INTO terms VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        t.id,
                        t.label,
                        json.dumps(t.synonyms),
                        int(t.deprecated),
                        t.replaced_by,
                        json.dumps(t.consider),
                        json.dumps([[a for a, _ in t.ancestors], [d for _, d in t.ancestors]]),
                    )
                    for t in terms.values()
                ),
            )
            conn.executemany("INSERT INTO names VALUES (?, ?, ?)", names)
            conn.execute("CREATE INDEX names_key ON names (key)")
            conn.commit()
        finally:
            conn.close()


def _open(name: str, version: str, path: Path) -> Ontology:
    """The ontology in cache file ``path``: read into memory if it is small, else opened to be
    queried. Raises ``sqlite3.Error`` or ``ValueError`` where the file is not a cache of this
    format, ontology and release."""
    conn = _connect(path)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        want = {"format": str(CACHE_FORMAT), "name": name, "version": version}
        if {k: meta.get(k) for k in want} != want:
            msg = f"built for {meta}, not {want}"
            raise ValueError(msg)
        (n_terms,) = conn.execute("SELECT max(rowid) FROM terms").fetchone()
        if (n_terms or 0) > SQLITE_ABOVE:
            conn.execute("SELECT key, id, kind FROM names LIMIT 1").fetchall()
            return Ontology(name, version, db=path)
        terms = _CachedTerms(
            (name, version, path), conn.execute(f"SELECT {TERM_COLUMNS} FROM terms ORDER BY rowid")
        )
        index = _read_index(conn, f"!= {REPLACED}")
        labels = _read_index(conn, f"= {LABEL}")
        replaced = _read_index(conn, f"= {REPLACED}")
    finally:
        conn.close()
    return Ontology(name, version, terms, index, labels, replaced)


def package_version() -> str:
    try:
        return importlib.metadata.version("cellxgene-ontology-guide")
    except importlib.metadata.PackageNotFoundError as exc:  # pragma: no cover - a dependency
        msg = "the cellxgene-ontology-guide package is not installed (pip install scurate)"
        raise InputError(msg) from exc


@functools.cache
def _schema() -> object:
    from cellxgene_ontology_guide.supported_versions import CXGSchema

    return CXGSchema()


def release(name: str) -> str:
    """The release of ontology ``name`` that the installed package pins."""
    schema = _schema()
    return str(schema.supported_ontologies[name]["version"])  # type: ignore[attr-defined]


def _parse(name: str) -> dict[str, Term]:
    raw = _schema().ontology(name)  # type: ignore[attr-defined]
    keep_ancestors = name in ANCESTORS_KEPT
    terms: dict[str, Term] = {}
    for term_id, item in raw.items():
        ancestors = ()
        if keep_ancestors:
            ancestors = tuple(sorted(item.get("ancestors", {}).items(), key=lambda kv: kv[1]))
        terms[term_id] = Term(
            id=term_id,
            label=str(item.get("label", term_id)),
            synonyms=tuple(item.get("synonyms", ())),
            deprecated=bool(item.get("deprecated", False)),
            replaced_by=item.get("replaced_by"),
            consider=tuple(item.get("consider", ())),
            ancestors=ancestors,
        )
    return terms


@functools.cache
def load(name: str) -> Ontology:
    """Ontology ``name`` ("CL", "UBERON", ...), from the cache or parsed once and cached."""
    version = release(name)
    path = cache_dir() / f"{name}-{version}-guide{package_version()}-f{CACHE_FORMAT}.sqlite"
    if path.exists():
        try:
            return _open(name, version, path)
        except (sqlite3.Error, ValueError, TypeError) as exc:  # TypeError: NULL where text is
            log.warning("ontology cache %s unreadable (%s); rebuilding", path, exc)
    log.info("parsing %s %s (cached afterwards in %s)", name, version, path.parent)
    terms = _parse(name)
    names = list(_names(name, terms))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _build(name, version, path, terms, names)
    except (OSError, sqlite3.Error) as exc:  # a read-only home: parse again next time
        log.warning("cannot cache %s in %s (%s)", name, path.parent, exc)
    else:
        if len(terms) > SQLITE_ABOVE:
            return Ontology(name, version, db=path)
    return Ontology(name, version, terms, *_indexes(names))


def prefix_of(term_id: str) -> str | None:
    match = ID_PATTERN.match(term_id)
    return match.group("prefix") if match else None


def looks_like_id(value: str) -> bool:
    """Whether ``value`` is written as a term id of an ontology scurate knows."""
    match = ID_PATTERN.match(value)
    return match is not None and match.group("prefix") in KNOWN_PREFIXES


def check_term_id(field_name: str, value: str) -> Term | None:
    """The term that ``value`` names for ``field_name``, or ``None`` for a CELLxGENE
    placeholder ("unknown", "na"); a ValueError says what is wrong with it otherwise."""
    if value in PLACEHOLDERS:
        return None
    allowed = FIELD_ONTOLOGIES[field_name]
    match = ID_PATTERN.match(value)
    if match is None:
        example = f"{allowed[0]}{PREFIX_SEPARATOR.get(allowed[0], ':')}0000001"
        msg = f"'{value}' is not an ontology term id (expected the form {example})"
        raise ValueError(msg)
    prefix = match.group("prefix")
    if prefix not in allowed:
        msg = f"'{value}' is a {prefix} term; {field_name} takes {' or '.join(allowed)} terms"
        raise ValueError(msg)
    sep = PREFIX_SEPARATOR.get(prefix, ":")
    if match.group("sep") != sep:
        fixed = f"{prefix}{sep}{match.group('local')}"
        msg = f"'{value}' is malformed (write {fixed})"
        raise ValueError(msg)
    onto = load(prefix)
    term = onto.get(value)
    if term is None:
        msg = f"'{value}' is not a term of {prefix} {onto.version}"
        raise ValueError(msg)
    if term.deprecated:
        msg = f"'{value}' ({term.label}) is deprecated in {prefix} {onto.version}; " + (
            f"replaced by {term.replaced_by}{_label_of(term.replaced_by)}"
            if term.replaced_by
            else f"consider {', '.join(term.consider)}"
            if term.consider
            else "the ontology names no replacement"
        )
        raise ValueError(msg)
    if field_name == "assay" and not is_assay(term):
        msg = f"'{value}' ({term.label}) is not an assay (EFO:0002772 or EFO:0010183 or below)"
        raise ValueError(msg)
    if (only := ALLOWED_TERMS.get((field_name, prefix))) and value not in only:
        msg = f"'{value}' ({term.label}) is not one of the {prefix} terms {field_name} takes: "
        msg += ", ".join(sorted(only))
        raise ValueError(msg)
    return term


def _label_of(term_id: str) -> str:
    prefix = prefix_of(term_id)
    if prefix is None or prefix not in KNOWN_PREFIXES:
        return ""
    term = load(prefix).get(term_id)
    return f" ({term.label})" if term else ""


def term(term_id: str) -> Term | None:
    """The term with this id in the ontology its prefix names, or None."""
    prefix = prefix_of(term_id)
    if prefix is None or prefix not in KNOWN_PREFIXES:
        return None
    return load(prefix).get(term_id)


def text_ontologies(field_name: str, organism: str | None = None) -> list[Ontology]:
    """The ontologies whose labels free text of ``field_name`` is matched against (a known
    organism picks its own development-stage ontology)."""
    names: Sequence[str] = TEXT_ONTOLOGIES.get(field_name, ())
    if field_name == "development_stage" and organism in STAGE_ONTOLOGY:
        names = (STAGE_ONTOLOGY[organism],)
    return [load(n) for n in names]


def is_assay(found: Term) -> bool:
    return found.id in ASSAY_ROOTS or any(a in ASSAY_ROOTS for a, _ in found.ancestors)


def allowed(field_name: str, ids: Iterable[str]) -> list[str]:
    """``ids`` without the terms the field may not use (PATO is only male/female/normal, an
    assay is an EFO assay and not one of EFO's cell lines)."""
    out = []
    for term_id in ids:
        prefix = prefix_of(term_id) or ""
        if field_name == "assay" and ((found := term(term_id)) is None or not is_assay(found)):
            continue
        only = ALLOWED_TERMS.get((field_name, prefix))
        if only is None or term_id in only:
            out.append(term_id)
    return out
