"""Hostile inputs against the installed ``scurate`` command: the cases of issue 16 and their
neighbours, each checked against the contract of the README's "Errors" and "Outputs" sections.

    .venv/bin/python tools/hostile_cases.py                  # inputs in a temporary folder
    .venv/bin/python tools/hostile_cases.py --keep /tmp/h    # keep the inputs (to reproduce)
    .venv/bin/python tools/hostile_cases.py -k seed -k nan   # only cases whose name has these

The contract for a user's mistake: exit status 1, exactly one line on stderr starting with
``scurate: error: `` that names the file, column or option, no traceback, and nothing left in
the output folder that looks complete (a ``report.json``/``bench.json`` whose ``written`` record
matches its files, a materialize ``index.json`` marked complete, an index's
``scurate-index.json``). Cases that are legitimately accepted (``--overwrite``) expect exit 0
and a complete output.

Every input is built here, small (a few hundred cells; a few thousand for the thread-count
comparison, sixty thousand rows of a 16-wide obsm for the Ctrl-C timing), with anndata and
h5py; plugins are installed as pip lays them out (a module and a dist-info on ``PYTHONPATH``).
Not run in CI: it takes a few minutes on two cores. It prints a markdown table (case, expected,
what came back, held or failed), a summary line, and the command that reproduces each failure.
The exit status is always 0: this is a report, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp

SCURATE = Path(sys.executable).with_name("scurate")
PREFIX = "scurate: error: "
REPO = Path(__file__).resolve().parents[1]
N_GENES = 120
TYPE_NAMES = ("T cell", "B cell", "natural killer cell", "monocyte")
SHOWN = 110  # characters of the stderr line shown in the table
BENCH = "--holdout dataset_id=good2 --label cell_type --budgets 20 --policies random --seeds 1"
BY_OBSM = "--no-cache --obsm-key X_emb"

# ------------------------------------------------------------------------------- plugins

SWAP_READER = """
    import os
    from pathlib import Path
    from scurate import hookimpl
    from scurate.plugin import H5adSource

    CALLS = {}

    class Swapped(H5adSource):
        # an h5ad whose file is atomically replaced by NAME.next (a valid h5ad, or not) once
        # obs and genes were read: as X starts to stream (.h5swap), or as its second pass
        # starts (.h5swap2, the first pass having read the old file whole)
        when = 1

        def iter_x(self, chunk_rows=8192):
            CALLS[self.path] = CALLS.get(self.path, 0) + 1
            swap = Path(f"{self.path}.next")
            if CALLS[self.path] >= self.when and swap.exists():
                os.replace(swap, self.path)
            return super().iter_x(chunk_rows)

    class SwappedLater(Swapped):
        when = 2

    class Vanishing(H5adSource):
        # an h5ad removed once obs and genes were read
        def iter_x(self, chunk_rows=8192):
            self.path.unlink(missing_ok=True)
            return super().iter_x(chunk_rows)

    @hookimpl
    def scurate_register_sources(register):
        register(".h5swap", Swapped, summary="h5ad replaced as X streams")
        register(".h5swap2", SwappedLater, summary="h5ad replaced before X's second pass")
        register(".h5gone", Vanishing, summary="h5ad removed as X streams")
"""

BAD_READERS = """
    import sys
    from scurate import hookimpl

    def broken(path, dataset_id):
        raise ValueError("unsupported compression")

    def leaves(path, dataset_id):
        sys.exit(4)

    def nothing(path, dataset_id):
        return None

    def liar(path, dataset_id):
        return object()

    @hookimpl
    def scurate_register_sources(register):
        register(".brk", broken)
        register(".bye", leaves)
        register(".none", nothing)
        register(".liar", liar)
"""

BAD_EMBEDDERS = """
    import sys
    import numpy as np
    from scurate import hookimpl
    from scurate.plugin import Embedding

    def _values(sources, rng, rows=None, width=4):
        n = sum(s.n_obs for s in sources) if rows is None else rows
        return rng.normal(size=(n, width)).astype(np.float32)

    def raises(sources, *, rng, progress):
        raise RuntimeError("no GPU found")

    def exits(sources, *, rng, progress):
        sys.exit(2)

    def nan(sources, *, rng, progress):
        values = _values(sources, rng)
        values[7, 1] = np.nan
        return Embedding(values)

    def inf(sources, *, rng, progress):
        values = _values(sources, rng)
        values[9, 0] = np.inf
        return Embedding(values)

    def short(sources, *, rng, progress):
        return Embedding(_values(sources, rng, rows=sum(s.n_obs for s in sources) - 1))

    def aslist(sources, *, rng, progress):
        return _values(sources, rng).tolist()

    def flat(sources, *, rng, progress):
        return Embedding(_values(sources, rng)[:, 0].copy())

    @hookimpl
    def scurate_register_embedders(register):
        for f in (raises, exits, nan, inf, short, aslist, flat):
            register(f"e-{f.__name__}", f)
"""

BAD_POLICIES = """
    import sys
    import numpy as np
    from scurate import hookimpl

    def exit3(ctx, budget):
        sys.exit(3)

    def exit0(ctx, budget):
        sys.exit(0)

    def raises(ctx, budget):
        raise RuntimeError("licence server down")

    def repeats(ctx, budget):
        return [0] * budget

    def short(ctx, budget):
        return list(range(budget - 1))

    def outside(ctx, budget):
        return list(range(budget - 1)) + [10**9]

    def negative(ctx, budget):
        return [-1] + list(range(budget - 1))

    def floats(ctx, budget):
        return np.linspace(0.0, 1.5, budget)

    @hookimpl
    def scurate_register_policies(register):
        for f in (exit3, exit0, raises, repeats, short, outside, negative, floats):
            register(f"p-{f.__name__}", f)
"""


def install_plugin(site: Path, name: str, code: str) -> Path:
    """``code`` as module ``scurate_<name>`` of distribution ``scurate-<name>`` in ``site``,
    with the entry point ``<name>`` in the ``scurate`` group (as pip lays it out)."""
    module = f"scurate_{name.replace('-', '_')}"
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"scurate_{name.replace('-', '_')}-0.3.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: scurate-{name}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[scurate]\n{name} = {module}\n")
    return site


# ------------------------------------------------------------------------------- data


def programs() -> np.ndarray:
    rng = np.random.default_rng(42)
    base = rng.gamma(0.6, 1.0, size=N_GENES)
    out = np.tile(base, (len(TYPE_NAMES), 1))
    for t in range(len(TYPE_NAMES)):
        markers = rng.choice(N_GENES, size=15, replace=False)
        out[t, markers] *= rng.uniform(8.0, 20.0, size=15)
    return out / out.sum(axis=1, keepdims=True)


def make(n: int, seed: int, prefix: str, *, scale: float = 1.0) -> ad.AnnData:
    """``n`` cells of raw counts (CSR float32) on ``N_GENES`` genes, four cell types, and an
    8-wide obsm ``X_emb``."""
    rng = np.random.default_rng(seed)
    types = rng.integers(0, len(TYPE_NAMES), size=n)
    depth = rng.lognormal(np.log(1500.0), 0.3, size=n)
    counts = rng.poisson(programs()[types] * depth[:, None] * scale).astype(np.float32)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(np.asarray(TYPE_NAMES)[types])},
        index=[f"{prefix}{i:05d}" for i in range(n)],
    )
    var = pd.DataFrame(index=[f"G{i:04d}" for i in range(N_GENES)])
    adata = ad.AnnData(sp.csr_matrix(counts), obs=obs, var=var)
    adata.obsm["X_emb"] = rng.normal(size=(n, 8)).astype(np.float32)
    return adata


def poke(adata: ad.AnnData, value: float, row: int = 117) -> ad.AnnData:
    """``adata`` with its CSR X's second stored value of ``row`` set to ``value``."""
    adata = adata.copy()
    x = adata.X.tocsr()
    x.data[x.indptr[row] + 1] = value
    adata.X = x
    return adata


def normalized(adata: ad.AnnData) -> ad.AnnData:
    """X log-normalized, the counts in ``.raw`` (as CELLxGENE keeps them)."""
    out = adata.copy()
    out.raw = adata.copy()
    x = adata.X.toarray()
    out.X = sp.csr_matrix(np.log1p(x / x.sum(1, keepdims=True) * 1e4).astype(np.float32))
    return out


def add_obsm(path: Path, key: str, values: np.ndarray) -> None:
    with h5py.File(path, "a") as f:
        f["obsm"].create_dataset(key, data=values)


def digest(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def snapshot(folder: Path) -> dict[str, str]:
    """Name -> SHA-256 of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def looks_complete(folder: Path) -> str | None:
    """What in ``folder`` passes for a complete output, or None."""
    if not folder.is_dir():
        return None
    for name in ("report.json", "bench.json"):
        record = folder / name
        if not record.is_file():
            continue
        try:
            data = json.loads(record.read_text())
        except ValueError:
            continue
        written = data.get("written") if isinstance(data, dict) else None
        if not isinstance(written, dict):
            return f"{name} (no `written` record)"
        if all((folder / f).is_file() and digest(folder / f) == d for f, d in written.items()):
            return f"{name} matching its files"
    index = folder / "index.json"
    if index.is_file():
        try:
            data = json.loads(index.read_text())
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("complete") is True:
            return "index.json marked complete"
    if (folder / "scurate-index.json").is_file():
        return "scurate-index.json"
    return None


# ------------------------------------------------------------------------------- running
def words(*parts: Any) -> list[Any]:
    """Command-line words: a string split on spaces, a list or tuple item by item, anything
    else (a path, a number) as one word."""
    out: list[Any] = []
    for part in parts:
        if isinstance(part, str):
            out.extend(part.split())
        elif isinstance(part, (list, tuple)):
            out.extend(part)
        else:
            out.append(part)
    return out


@dataclass
class Outcome:
    rc: int | None
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Result:
    case: str
    expected: str
    got: str
    problems: list[str]
    command: str
    stderr: str

    @property
    def held(self) -> bool:
        return not self.problems


class FixtureError(Exception):
    """A run that builds a case's inputs failed: the case cannot be tried."""


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    chosen = next((line for line in lines if line.startswith(PREFIX)), lines[-1])
    return chosen.strip()


def shown(outcome: Outcome) -> str:
    if outcome.rc is None:
        return f"timed out after {outcome.seconds:.0f} s"
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    text = error_line(outcome.stderr)
    if len(text) > SHOWN:
        text = text[: SHOWN - 1] + "…"
    more = f" ({len(lines)} lines)" if len(lines) > 1 else ""
    trace = " [traceback]" if "Traceback" in outcome.stderr + outcome.stdout else ""
    return f"exit {outcome.rc}: {text}{more}{trace}" if text else f"exit {outcome.rc}"


def contract(outcome: Outcome, expect: int | set[int], names: Sequence[str]) -> list[str]:
    """What in ``outcome`` breaks the contract (empty: it held)."""
    wanted = {expect} if isinstance(expect, int) else expect
    problems = []
    if outcome.rc is None:
        return [f"timed out after {outcome.seconds:.0f} s"]
    if outcome.rc not in wanted:
        problems.append(f"exit {outcome.rc}, not {' or '.join(map(str, sorted(wanted)))}")
    if "Traceback" in outcome.stderr or "Traceback" in outcome.stdout:
        problems.append("traceback")
    if outcome.rc == 1:
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr")
        if not lines or not lines[0].startswith(PREFIX):
            problems.append(f"stderr does not start with {PREFIX!r}")
        problems.extend(f"does not name {n!r}" for n in names if n not in outcome.stderr)
    return problems


class Runner:
    def __init__(self, root: Path, only: Sequence[str]) -> None:
        self.root = root
        self.data = root / "data"
        self.only = [o.lower() for o in only]
        self.results: list[Result] = []
        self.pythonpath: dict[str, str] = {}
        self.data.mkdir(parents=True, exist_ok=True)

    # -- running scurate

    def env(self, extra: dict[str, str] | None) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env.update({"COLUMNS": "200", "NO_COLOR": "1"})
        env.update(extra or {})
        return env

    def command(
        self, args: Sequence[Any], env: dict[str, str] | None = None, before: str = ""
    ) -> str:
        """The shell command that runs ``scurate args`` as a case does (``before``: what the
        case's setup does first, in shell words)."""
        prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in (env or {}).items())
        run = shlex.join([str(SCURATE), *map(str, args)])
        return f"cd {self.root} && {before + ' && ' if before else ''}{prefix}{run}"

    def scurate(
        self, args: Sequence[Any], *, env: dict[str, str] | None = None, timeout: float = 300
    ) -> Outcome:
        start = time.monotonic()
        try:
            done = subprocess.run(
                [str(SCURATE), *map(str, args)],
                capture_output=True,
                text=True,
                env=self.env(env),
                cwd=self.root,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            return Outcome(None, out, err, time.monotonic() - start)
        return Outcome(done.returncode, done.stdout, done.stderr, time.monotonic() - start)

    def fixture(self, args: Sequence[Any], env: dict[str, str] | None = None) -> Outcome:
        """A run that must succeed for a case to be tried."""
        outcome = self.scurate(args, env=env)
        if outcome.rc != 0:
            msg = f"fixture `scurate {' '.join(map(str, args))}`: {shown(outcome)}"
            raise FixtureError(msg)
        return outcome

    # -- cases

    def wanted(self, name: str) -> bool:
        return not self.only or any(o in name.lower() for o in self.only)

    def add(
        self,
        name: str,
        expected: str,
        got: str,
        problems: list[str],
        command: str,
        stderr: str = "",
    ) -> None:
        result = Result(name, expected, got, problems, command, stderr)
        self.results.append(result)
        mark = "held" if result.held else "FAILED: " + "; ".join(problems)
        print(f"  {name}: {got} -> {mark}", file=sys.stderr, flush=True)

    def case(
        self,
        name: str,
        args: Sequence[Any] | Callable[[], Sequence[Any]],
        *,
        expect: int | set[int] = 1,
        names: Sequence[str] = (),
        out: Path | None = None,
        env: dict[str, str] | None = None,
        setup: Callable[[], None] | None = None,
        after: Callable[[Outcome], list[str]] | None = None,
        expected: str | None = None,
        before: str = "",
    ) -> None:
        """Run ``scurate args`` (after ``setup``, which ``before`` says in shell words for the
        command printed) and check the contract: ``expect`` the exit status, ``names`` what the
        line must name, ``out`` a folder that must not look complete afterwards (or must, where
        exit 0 is expected), ``after`` any further check."""
        if not self.wanted(name):
            return
        zero_ok = expect == 0 or (isinstance(expect, set) and 0 in expect)
        if expected is None:
            expected = "exit 0, complete output" if expect == 0 else "exit 1, one line"
            if isinstance(expect, set):
                expected = "exit 0 or 1 (one line)"
        command = ""
        try:
            if setup is not None:
                setup()
            argv = list(args() if callable(args) else args)
            command = self.command(argv, env, before)
            outcome = self.scurate(argv, env=env)
            problems = contract(outcome, expect, names)
            if out is not None:
                found = looks_complete(out)
                if outcome.rc == 0 and zero_ok and found is None:
                    problems.append(f"{out.name}: no complete output after exit 0")
                if outcome.rc != 0 and found is not None:
                    problems.append(f"{out.name} looks complete: {found}")
            if after is not None:
                problems.extend(after(outcome))
            self.add(name, expected, shown(outcome), problems, command, outcome.stderr)
        except FixtureError as exc:
            self.add(name, expected, "not tried", [str(exc)], command)
        except Exception as exc:  # noqa: BLE001 - the harness's own failure is reported, too
            tb = traceback.format_exc(limit=3)
            self.add(name, expected, "harness error", [f"{type(exc).__name__}: {exc}"], command, tb)

    def custom(self, name: str, expected: str, body: Callable[[], tuple[str, list[str], str]]):
        """A case that runs its own processes: ``body`` returns (got, problems, command)."""
        if not self.wanted(name):
            return
        try:
            got, problems, command = body()
            self.add(name, expected, got, problems, command)
        except FixtureError as exc:
            self.add(name, expected, "not tried", [str(exc)], "")
        except Exception as exc:  # noqa: BLE001
            self.add(name, expected, "harness error", [f"{type(exc).__name__}: {exc}"], "")

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)


# ------------------------------------------------------------------------------- inputs


def build_inputs(r: Runner) -> dict[str, Path]:
    """The source files every group of cases reads (written once)."""
    d = r.data
    files: dict[str, Path] = {}

    def write(name: str, adata: ad.AnnData) -> Path:
        path = d / name
        adata.write_h5ad(path)
        files[name] = path
        return path

    good = make(200, 0, "a")
    write("good.h5ad", good)
    write("good2.h5ad", make(150, 1, "b"))
    write("nan.h5ad", poke(good, np.nan))
    write("inf.h5ad", poke(good, np.inf))
    write("ninf.h5ad", poke(good, -np.inf))
    dense = good.copy()
    x = dense.X.toarray()
    x[50, 3] = np.nan
    dense.X = x
    write("nan_dense.h5ad", dense)
    csc = poke(good, np.nan, row=60)
    csc.X = sp.csc_matrix(csc.X)
    write("nan_csc.h5ad", csc)
    negative = poke(good, -5.0, row=70)
    write("negative.h5ad", negative)
    x = good.X.toarray()
    cpm = good.copy()
    cpm.X = sp.csr_matrix((x / x.sum(1, keepdims=True) * 1e6).astype(np.float32))
    write("cpm.h5ad", cpm)
    scaled = good.copy()
    logged = np.log1p(x / x.sum(1, keepdims=True) * 1e4)
    scaled.X = ((logged - logged.mean(0)) / (logged.std(0) + 1e-6)).astype(np.float32)
    write("scaled.h5ad", scaled)
    poke(good, np.nan).write_zarr(d / "nan.zarr")
    files["nan.zarr"] = d / "nan.zarr"
    raw_nan = normalized(good)
    raw_x = raw_nan.raw.X.tocsr().copy()
    raw_x.data[raw_x.indptr[40] + 1] = np.nan
    raw_nan.raw = ad.AnnData(raw_x, obs=raw_nan.obs, var=raw_nan.raw.var)
    write("raw_nan.h5ad", raw_nan)
    layer_nan = normalized(good)
    counts = good.X.tocsr().copy()
    counts.data[counts.indptr[30] + 1] = np.nan
    layer_nan.layers["counts"] = counts
    del layer_nan.raw
    write("layer_nan.h5ad", layer_nan)
    ref_nan = poke(make(150, 1, "b"), np.nan, row=12)
    write("ref_nan.h5ad", ref_nan)

    rng = np.random.default_rng(7)
    for key, values in {
        "short": rng.normal(size=(150, 8)),
        "long": rng.normal(size=(250, 8)),
        "flat": rng.normal(size=200),
        "nan": np.where(np.arange(200)[:, None] == 33, np.nan, rng.normal(size=(200, 8))),
        "inf": np.where(np.arange(200)[:, None] == 34, np.inf, rng.normal(size=(200, 8))),
    }.items():
        path = write(f"obsm_{key}.h5ad", good)
        add_obsm(path, f"X_{key}", values.astype(np.float32))
    narrow = good.copy()
    narrow.obsm["X_emb"] = narrow.obsm["X_emb"][:, :6]
    write("obsm_narrow.h5ad", narrow)

    # the thread-count comparison: a few thousand cells
    big = ad.concat([make(1500, 11, "d"), make(1500, 12, "e")])
    big.obs_names = [f"x{i:05d}" for i in range(big.n_obs)]
    write("big3000.h5ad", big)

    # replaced while read: the originals are kept as templates, restored before each case
    tpl = d / "templates"
    tpl.mkdir()
    make(200, 0, "s").write_h5ad(tpl / "swap200.h5ad")
    make(100, 3, "s").write_h5ad(tpl / "swap100.h5ad")
    make(300, 4, "s").write_h5ad(tpl / "swap300.h5ad")
    for layout in ("dense", "csc"):
        for n in (200, 100):
            a = make(n, 0 if n == 200 else 3, "s")
            a.X = a.X.toarray() if layout == "dense" else sp.csc_matrix(a.X)
            a.write_h5ad(tpl / f"swap{n}_{layout}.h5ad")
    raw = (tpl / "swap100.h5ad").read_bytes()
    (tpl / "swap_truncated.h5ad").write_bytes(raw[: len(raw) // 2])

    for suffix in (".brk", ".bye", ".none", ".liar"):
        path = d / f"lab{suffix}"
        path.write_bytes(b"not read by any real reader\n")
        files[path.name] = path
    return files


def restore_swap(r: Runner, name: str, first: str, second: str) -> Callable[[], None]:
    def setup() -> None:
        tpl = r.data / "templates"
        target = r.data / name
        shutil.copyfile(tpl / first, target)
        shutil.copyfile(tpl / second, Path(f"{target}.next"))

    return setup


def swap_words(name: str, first: str, second: str) -> str:
    """:func:`restore_swap` in shell words."""
    return f"cp data/templates/{first} data/{name} && cp data/templates/{second} data/{name}.next"


def no_nan_blamed(o: Outcome) -> list[str]:
    """The replacement files hold no NaN or inf: a line that says so read rows never written."""
    if "NaN or inf" in error_line(o.stderr):
        return ["blames NaN/inf the files do not hold (rows past the new file's end)"]
    return []


# ------------------------------------------------------------------------------- groups


def bad_values(r: Runner, f: dict[str, Path]) -> None:
    for name, file, cell in [
        ("NaN in X (CSR)", "nan.h5ad", "a00117"),
        ("inf in X", "inf.h5ad", "a00117"),
        ("-inf in X", "ninf.h5ad", "a00117"),
        ("NaN in dense X", "nan_dense.h5ad", "a00050"),
        ("NaN in CSC X", "nan_csc.h5ad", "a00060"),
    ]:
        out = r.path("out", f"bv-{file}")
        r.case(
            f"select: {name}",
            ["select", f[file], "-b", 10, "-o", out, "--no-cache"],
            names=(str(f[file]), cell),
            out=out,
        )
    out = r.path("out", "bv-nan-score")
    r.case(
        "score: NaN in X",
        ["score", f["nan.h5ad"], "-o", out, "--no-cache"],
        names=(str(f["nan.h5ad"]), "a00117"),
        out=out,
    )
    out = r.path("out", "bv-nan-index")
    r.case(
        "index build: NaN in X",
        ["index", "build", f["nan.h5ad"], "-o", out],
        names=(str(f["nan.h5ad"]), "a00117"),
        out=out,
    )
    out = r.path("out", "bv-nan-mix")
    r.case(
        "select: NaN in X of the second of two sources",
        ["select", f["good2.h5ad"], f["nan.h5ad"], "-b", 10, "-o", out, "--no-cache"],
        names=(str(f["nan.h5ad"]), "a00117"),
        out=out,
    )
    out = r.path("out", "bv-nan-ref")
    r.case(
        "select: NaN in X of a --reference h5ad",
        words(
            "select", f["good.h5ad"], "-b 10 -o", out, "--no-cache --reference", f["ref_nan.h5ad"]
        ),
        names=(str(f["ref_nan.h5ad"]), "b00012"),
        out=out,
    )
    out = r.path("out", "bv-neg")
    r.case(
        "select: one negative value in a counts X",
        ["select", f["negative.h5ad"], "-b", 10, "-o", out, "--no-cache"],
        expect={0, 1},
        out=out,
    )
    for file, what in [
        ("cpm.h5ad", "X normalized to CPM, not logged (no counts anywhere)"),
        ("scaled.h5ad", "X scaled to z-scores, dense (no counts anywhere)"),
        ("nan.zarr", "NaN in X of a zarr store"),
    ]:
        out = r.path("out", f"bv-{file}")
        r.case(
            f"select: {what}",
            ["select", f[file], "-b", 10, "-o", out, "--no-cache"],
            expect=1 if file.endswith(".zarr") else {0, 1},
            names=(str(f[file]), "a00117") if file.endswith(".zarr") else (),
            out=out,
        )
    out = r.path("out", "bv-raw-nan")
    r.case(
        "select --counts-layer raw: NaN in .raw.X",
        ["select", f["raw_nan.h5ad"], "-b", 10, "-o", out, "--no-cache", "--counts-layer", "raw"],
        names=(str(f["raw_nan.h5ad"]),),
        out=out,
    )
    out = r.path("out", "bv-layer-nan")
    r.case(
        "select --counts-layer counts: NaN in layers['counts']",
        words("select", f["layer_nan.h5ad"], "-b 10 -o", out, "--no-cache --counts-layer counts"),
        names=(str(f["layer_nan.h5ad"]),),
        out=out,
    )
    for key, text in [
        ("short", "obsm with fewer rows than obs"),
        ("long", "obsm with more rows than obs"),
        ("flat", "obsm of one dimension"),
        ("nan", "NaN in obsm"),
        ("inf", "inf in obsm"),
    ]:
        out = r.path("out", f"bv-obsm-{key}")
        file = f[f"obsm_{key}.h5ad"]
        r.case(
            f"select --obsm-key: {text}",
            ["select", file, "-b", 10, "-o", out, "--no-cache", "--obsm-key", f"X_{key}"],
            names=(str(file), f"X_{key}"),
            out=out,
        )
    out = r.path("out", "bv-obsm-short-score")
    r.case(
        "score --obsm-key: obsm with fewer rows than obs",
        ["score", f["obsm_short.h5ad"], "-o", out, "--no-cache", "--obsm-key", "X_short"],
        names=(str(f["obsm_short.h5ad"]), "X_short"),
        out=out,
    )
    out = r.path("out", "bv-obsm-short-index")
    r.case(
        "index build --obsm-key: obsm with fewer rows than obs",
        ["index", "build", f["obsm_short.h5ad"], "-o", out, "--obsm-key", "X_short"],
        names=(str(f["obsm_short.h5ad"]), "X_short"),
        out=out,
    )
    out = r.path("out", "bv-obsm-widths")
    r.case(
        "select --obsm-key: widths that differ between sources",
        words("select", f["good.h5ad"], f["obsm_narrow.h5ad"], "-b 10 -o", out, BY_OBSM),
        names=("X_emb",),
        out=out,
    )
    out = r.path("out", "bv-obsm-missing")
    r.case(
        "select --obsm-key: a key no source has",
        ["select", f["good.h5ad"], "-b", 10, "-o", out, "--no-cache", "--obsm-key", "X_none"],
        names=("X_none",),
        out=out,
    )


def bad_options(r: Runner, f: dict[str, Path]) -> None:
    src = [f["good.h5ad"], f["good2.h5ad"]]

    def sel(tag: str, *extra: Any, budget: int = 10) -> tuple[list[Any], Path]:
        out = r.path("out", f"opt-{tag}")
        return ["select", *src, "-b", budget, "-o", out, "--no-cache", *extra], out

    for tag, extra, names in [
        ("unknown --param bogus=1 (kcenter)", ["--param", "bogus=1"], ("bogus",)),
        ("unknown --param bogus=1 (random)", ["--policy", "random", "--param", "bogus=1"], ()),
        ("another policy's --param k=5 (kcenter)", ["--param", "k=5"], ("k",)),
        ("--param without '='", ["--param", "bogus"], ("bogus",)),
        ("--param first=nowhere (a bad value)", ["--param", "first=nowhere"], ("nowhere",)),
        ("--param k=abc (facility)", ["--policy", "facility", "--param", "k=abc"], ("abc",)),
        ("--param k=-3 (facility)", ["--policy", "facility", "--param", "k=-3"], ("k",)),
        ("unknown --policy", ["--policy", "nope"], ("nope",)),
        ("--seed -1", ["--seed", "-1"], ("--seed",)),
        ("--threads 0", ["--threads", "0"], ("--threads",)),
        ("--threads -2", ["--threads", "-2"], ("--threads",)),
        ("--near-dup-eps -1", ["--near-dup-eps", "-1"], ("--near-dup-eps",)),
        ("--near-dup-eps nan", ["--near-dup-eps", "nan"], ("--near-dup-eps",)),
        ("--dup-min-genes -1", ["--dup-min-genes", "-1"], ("--dup-min-genes",)),
        ("--index-factory Bogus99", ["--index-factory", "Bogus99"], ("Bogus99",)),
        ("--strata no_such_column", ["--strata", "no_such_column"], ("no_such_column",)),
        ("--quota min:1000", ["--strata", "dataset_id", "--quota", "min:1000"], ("--quota",)),
        ("--quota bogus", ["--strata", "dataset_id", "--quota", "bogus"], ("--quota",)),
        ("--set nofield=1", ["--set", "nofield=1"], ("nofield",)),
        ("--counts-layer nolayer", ["--counts-layer", "nolayer"], ("nolayer",)),
        ("--obs-filter without a SOMA source", ["--obs-filter", "a == 'b'"], ("--obs-filter",)),
    ]:
        args, out = sel(re.sub(r"\W+", "_", tag), *extra)
        r.case(f"select: {tag}", args, names=names, out=out)
    for tag, budget in [("0", 0), ("-5", -5), ("above the pool (10000)", 10000)]:
        args, out = sel(f"budget{budget}", budget=budget)
        r.case(f"select: --budget {tag}", args, names=("--budget",), out=out)
    args, out = sel("seedhuge", "--seed", str(2**70))
    r.case("select: --seed 2**70", args, expect={0, 1}, out=out)

    out = r.path("out", "opt-score-seed")
    r.case(
        "score: --seed -1",
        ["score", *src, "-o", out, "--no-cache", "--seed", "-1"],
        names=("--seed",),
        out=out,
    )
    out = r.path("out", "opt-index-seed")
    r.case(
        "index build: --seed -1",
        ["index", "build", *src, "-o", out, "--seed", "-1"],
        names=("--seed",),
        out=out,
    )
    out = r.path("out", "opt-index-threads")
    r.case(
        "index build: --threads 0",
        ["index", "build", *src, "-o", out, "--threads", "0"],
        names=("--threads",),
        out=out,
    )
    bench = ["bench", *src, "--holdout", "dataset_id=good2", "--label", "cell_type"]
    for tag, extra, names in [
        ("--seeds 0", ["--seeds", "0"], ("--seeds",)),
        ("--seeds -1", ["--seeds", "-1"], ("--seeds",)),
        ("--budgets 0", ["--budgets", "0"], ("--budgets",)),
        ("--budgets abc", ["--budgets", "abc"], ("abc",)),
        ("--param bogus=1", ["--param", "bogus=1", "--seeds", "1"], ("bogus",)),
        ("--holdout matching no cell", ["--holdout", "dataset_id=nowhere"], ("nowhere",)),
        ("--label no_such_column", ["--label", "no_such_column"], ("no_such_column",)),
    ]:
        out = r.path("out", "opt-bench-" + re.sub(r"\W+", "_", tag))
        r.case(
            f"bench: {tag}",
            [*bench, "-o", out, "--budgets", "20", "--policies", "random", *extra],
            names=names,
            out=out,
        )


def unwritable(r: Runner, f: dict[str, Path]) -> None:
    src = [f["good.h5ad"], f["good2.h5ad"]]
    under_file = f["good.h5ad"] / "out"
    in_proc = Path("/proc/scurate-hostile-out")
    a_file = r.path("out", "a-file")
    a_file.parent.mkdir(parents=True, exist_ok=True)
    a_file.write_text("not a folder\n")
    for where, out in [("a path under a file", under_file), ("a folder in /proc", in_proc)]:
        for cmd, args in [
            ("select", ["select", *src, "-b", 10, "-o", out, "--no-cache"]),
            ("score", ["score", *src, "-o", out, "--no-cache"]),
            ("index build", ["index", "build", *src, "-o", out]),
            ("materialize", lambda out=out: ["materialize", selection(r, "unwritable"), "-o", out]),
            ("bench", words("bench", src, BENCH, "-o", out)),
        ]:
            r.case(f"{cmd}: -o {where}", args, names=(str(out),), out=None)
    r.case(
        "select: -o an existing file",
        ["select", *src, "-b", 10, "-o", a_file, "--no-cache"],
        names=(str(a_file),),
        after=lambda o: [] if a_file.read_text() == "not a folder\n" else ["the file changed"],
    )
    r.case(
        "select: --work-dir a path under a file",
        words(
            "select", src, "-b 10 -o", r.path("out", "wd-dir"), "--work-dir", f["good.h5ad"] / "wd"
        ),
        expect={0, 1},
        names=(str(f["good.h5ad"] / "wd"),),
        out=r.path("out", "wd-dir"),
    )
    if os.geteuid() != 0:
        ro = r.path("out", "read-only")
        ro.mkdir(exist_ok=True)
        ro.chmod(0o555)
        r.case(
            "select: -o a read-only folder",
            ["select", *src, "-b", 10, "-o", ro / "run", "--no-cache"],
            names=(str(ro),),
        )


def plugins(r: Runner, f: dict[str, Path]) -> None:
    sites = r.path("sites")
    emb = {"PYTHONPATH": str(install_plugin(sites / "emb", "odd-embedders", BAD_EMBEDDERS))}
    pol = {"PYTHONPATH": str(install_plugin(sites / "pol", "odd-policies", BAD_POLICIES))}
    rdr = {"PYTHONPATH": str(install_plugin(sites / "rdr", "odd-readers", BAD_READERS))}
    swp = {"PYTHONPATH": str(install_plugin(sites / "swp", "swapping", SWAP_READER))}
    src = [f["good.h5ad"], f["good2.h5ad"]]

    for embedder, policy in [
        ("e-raises", "kcenter"),
        ("e-exits", "kcenter"),
        ("e-nan", "random"),
        ("e-nan", "kcenter"),
        ("e-nan", "facility"),
        ("e-inf", "kcenter"),
        ("e-short", "kcenter"),
        ("e-aslist", "kcenter"),
        ("e-flat", "kcenter"),
    ]:
        out = r.path("out", f"emb-{embedder}-{policy}")
        what = {
            "e-raises": "raises",
            "e-exits": "calls sys.exit(2)",
            "e-nan": "returns NaN",
            "e-inf": "returns inf",
            "e-short": "returns one row too few",
            "e-aslist": "returns a list, not an Embedding",
            "e-flat": "returns 1-D values",
        }[embedder]
        r.case(
            f"select: embedder plugin that {what} (--policy {policy})",
            words(
                "select",
                src,
                "-b 10 -o",
                out,
                "--no-cache --embedder",
                embedder,
                "--policy",
                policy,
            ),
            names=(embedder,),
            out=out,
            env=emb,
            after=lambda o, p=policy: (
                [f"blames {p}"] if p != "random" and f"'{p}'" in error_line(o.stderr) else []
            ),
        )
    out = r.path("out", "emb-score-nan")
    r.case(
        "score: embedder plugin that returns NaN",
        ["score", *src, "-o", out, "--no-cache", "--embedder", "e-nan"],
        names=("e-nan",),
        out=out,
        env=emb,
    )
    out = r.path("out", "emb-unknown")
    r.case(
        "select: unknown --embedder",
        ["select", *src, "-b", 10, "-o", out, "--no-cache", "--embedder", "nope"],
        names=("nope",),
        out=out,
    )

    for policy, what in [
        ("p-exit3", "calls sys.exit(3)"),
        ("p-exit0", "calls sys.exit(0)"),
        ("p-raises", "raises"),
        ("p-repeats", "returns a cell twice"),
        ("p-short", "returns fewer cells than the budget"),
        ("p-outside", "returns a row past the pool"),
        ("p-negative", "returns row -1"),
        ("p-floats", "returns floats"),
    ]:
        out = r.path("out", f"pol-{policy}")
        r.case(
            f"select: policy plugin that {what}",
            ["select", *src, "-b", 10, "-o", out, "--no-cache", "--policy", policy],
            names=(policy,),
            out=out,
            env=pol,
        )
    out = r.path("out", "pol-strata-exit3")
    r.case(
        "select --strata: policy plugin that calls sys.exit(3)",
        words("select", src, "-b 10 -o", out, "--no-cache --policy p-exit3 --strata dataset_id"),
        names=("p-exit3",),
        out=out,
        env=pol,
    )

    for suffix, what in [
        (".brk", "raises"),
        (".bye", "calls sys.exit(4)"),
        (".none", "returns None"),
        (".liar", "returns an object that is no Source"),
    ]:
        out = r.path("out", f"rdr{suffix}")
        file = f[f"lab{suffix}"]
        r.case(
            f"select: source-reader plugin that {what}",
            ["select", f["good.h5ad"], file, "-b", 10, "-o", out, "--no-cache"],
            names=(str(file),),
            out=out,
            env=rdr,
        )
    out = r.path("out", "rdr-index")
    r.case(
        "index build: source-reader plugin that raises",
        ["index", "build", f["good.h5ad"], f["lab.brk"], "-o", out],
        names=(str(f["lab.brk"]),),
        out=out,
        env=rdr,
    )

    for tag, suffix, first, second, what in [
        ("csr-smaller", ".h5swap", "swap200.h5ad", "swap100.h5ad", "a smaller valid h5ad"),
        ("csr-bigger", ".h5swap", "swap200.h5ad", "swap300.h5ad", "a bigger valid h5ad"),
        ("dense-smaller", ".h5swap", "swap200_dense.h5ad", "swap100_dense.h5ad", "smaller, dense"),
        ("csc-smaller", ".h5swap", "swap200_csc.h5ad", "swap100_csc.h5ad", "smaller, CSC"),
        ("truncated", ".h5swap", "swap200.h5ad", "swap_truncated.h5ad", "a truncated file"),
        ("second-pass", ".h5swap2", "swap200.h5ad", "swap100.h5ad", "smaller, at X's 2nd pass"),
    ]:
        name = f"swap-{tag}{suffix}"
        out = r.path("out", f"swap-{tag}")
        r.case(
            f"select: source replaced while X streams ({what})",
            ["select", f["good2.h5ad"], r.data / name, "-b", 10, "-o", out, "--no-cache"],
            names=(str(r.data / name),),
            out=out,
            env=swp,
            setup=restore_swap(r, name, first, second),
            before=swap_words(name, first, second),
            after=no_nan_blamed,
        )
    name = "gone.h5gone"
    out = r.path("out", "gone")
    r.case(
        "select: source removed while X streams",
        ["select", f["good2.h5ad"], r.data / name, "-b", 10, "-o", out, "--no-cache"],
        names=(str(r.data / name),),
        out=out,
        env=swp,
        setup=lambda: shutil.copyfile(r.data / "templates" / "swap200.h5ad", r.data / name),
        before=f"cp data/templates/swap200.h5ad data/{name}",
    )
    name = "swap-score.h5swap"
    out = r.path("out", "swap-score")
    r.case(
        "score: source replaced while X streams (a smaller valid h5ad)",
        ["score", r.data / name, "-o", out, "--no-cache"],
        names=(str(r.data / name),),
        out=out,
        env=swp,
        setup=restore_swap(r, name, "swap200.h5ad", "swap100.h5ad"),
        before=swap_words(name, "swap200.h5ad", "swap100.h5ad"),
        after=no_nan_blamed,
    )
    name = "swap-index.h5swap"
    out = r.path("out", "swap-index")
    r.case(
        "index build: source replaced while X streams (a smaller valid h5ad)",
        ["index", "build", r.data / name, "-o", out],
        names=(str(r.data / name),),
        out=out,
        env=swp,
        setup=restore_swap(r, name, "swap200.h5ad", "swap100.h5ad"),
        before=swap_words(name, "swap200.h5ad", "swap100.h5ad"),
        after=no_nan_blamed,
    )


def references(r: Runner, f: dict[str, Path]) -> None:
    good = r.path("ref", "good.idx")
    made: list[bool] = []

    def base() -> Path:
        if not made:
            good.parent.mkdir(exist_ok=True)
            r.fixture(["index", "build", f["good.h5ad"], "-o", good])
            made.append(True)
        return good

    def damaged(tag: str, damage: Callable[[Path], None]) -> Callable[[], None]:
        def setup() -> None:
            target = r.path("ref", f"{tag}.idx")
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(base(), target)
            damage(target)

        return setup

    def marker(**changes: Any) -> Callable[[Path], None]:
        def damage(folder: Path) -> None:
            path = folder / "scurate-index.json"
            meta = json.loads(path.read_text())
            meta.update(changes)
            path.write_text(json.dumps(meta))

        return damage

    def text(name: str, content: str | bytes) -> Callable[[Path], None]:
        def damage(folder: Path) -> None:
            target = folder / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)

        return damage

    def npz(edit: Callable[[dict[str, np.ndarray]], None]) -> Callable[[Path], None]:
        def damage(folder: Path) -> None:
            with np.load(folder / "pca.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            edit(arrays)
            np.savez(folder / "pca.npz", **arrays)  # type: ignore[arg-type]

        return damage

    def set_key(key: str, fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict], None]:
        def edit(arrays: dict[str, np.ndarray]) -> None:
            arrays[key] = fn(arrays[key])

        return edit

    def remove(name: str) -> Callable[[Path], None]:
        return lambda folder: (folder / name).unlink()

    def cells(fn: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Path], None]:
        def damage(folder: Path) -> None:
            frame = pl.read_parquet(folder / "cells.parquet")
            fn(frame).write_parquet(folder / "cells.parquet")

        return damage

    def nan_first(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float32).copy()
        a.flat[0] = np.nan
        return a

    def out_of_range(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[0] = 10**6
        return a

    def minus_one(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[0] = -1
        return a

    def objects(arrays: dict[str, np.ndarray]) -> None:
        arrays["genes"] = np.array([{"gene": g} for g in arrays["genes"]], dtype=object)

    cases: list[tuple[str, Callable[[Path], None]]] = [
        ("n_dims 'x'", marker(n_dims="x")),
        ("n_dims 0", marker(n_dims=0)),
        ("n_dims -3", marker(n_dims=-3)),
        ("n_dims true", marker(n_dims=True)),
        ("n_dims 7 (not the index's)", marker(n_dims=7)),
        ("n_dims 1.5", marker(n_dims=1.5)),
        ("scurate-index.json a JSON list", text("scurate-index.json", "[1, 2, 3]")),
        ("scurate-index.json not JSON", text("scurate-index.json", "{not json")),
        ("scurate-index.json empty", text("scurate-index.json", "")),
        ("index_version 99", marker(index_version=99)),
        ("obsm_key a number", marker(obsm_key=5)),
        ("short loadings", npz(set_key("loadings", lambda a: a[:-1]))),
        ("loadings of one dimension", npz(set_key("loadings", lambda a: a[:, 0]))),
        ("out-of-range variable ids", npz(set_key("variable", out_of_range))),
        ("negative variable id", npz(set_key("variable", minus_one))),
        ("NaN in loadings", npz(set_key("loadings", nan_first))),
        ("short center", npz(set_key("center", lambda a: a[:-1]))),
        ("genes as a pickled object array", npz(objects)),
        ("pca.npz missing", remove("pca.npz")),
        ("pca.npz not a zip", text("pca.npz", b"PK\x03\x04 garbage")),
        ("index.faiss missing", remove("index.faiss")),
        ("index.faiss garbage", text("index.faiss", b"\x00" * 64)),
        ("cells.parquet missing", remove("cells.parquet")),
        ("cells.parquet one row short", cells(lambda c: c.head(c.height - 1))),
        ("cells.parquet without cell_id", cells(lambda c: c.drop("cell_id"))),
        ("cells.parquet not parquet", text("cells.parquet", "cell_id\n")),
    ]
    for tag, damage in cases:
        folder = r.path("ref", re.sub(r"\W+", "_", tag) + ".idx")
        out = r.path("out", "ref-" + folder.stem)
        r.case(
            f"select --reference: index with {tag}",
            ["select", f["good2.h5ad"], "-b", 10, "-o", out, "--no-cache", "--reference", folder],
            names=(str(folder),),
            out=out,
            setup=damaged(folder.stem, damage),
        )
    folder = r.path("ref", "score_list.idx")
    out = r.path("out", "ref-score-list")
    r.case(
        "score --reference: scurate-index.json a JSON list",
        ["score", f["good2.h5ad"], "-o", out, "--no-cache", "--reference", folder],
        names=(str(folder),),
        out=out,
        setup=damaged("score_list", text("scurate-index.json", "[]")),
    )
    folder = r.path("ref", "score_var.idx")
    out = r.path("out", "ref-score-var")
    r.case(
        "score --reference: out-of-range variable ids",
        ["score", f["good2.h5ad"], "-o", out, "--no-cache", "--reference", folder],
        names=(str(folder),),
        out=out,
        setup=damaged("score_var", npz(set_key("variable", out_of_range))),
    )
    out = r.path("out", "ref-obsm-vs-pca")
    r.case(
        "select --reference: PCA index with --obsm-key",
        lambda: words("select", f["good2.h5ad"], "-b 10 -o", out, "--reference", base(), BY_OBSM),
        names=("X_emb",),
        out=out,
    )
    out = r.path("out", "ref-missing")
    missing = r.path("ref", "no-such.idx")
    r.case(
        "select --reference: a path that does not exist",
        ["select", f["good2.h5ad"], "-b", 10, "-o", out, "--no-cache", "--reference", missing],
        names=(str(missing),),
        out=out,
    )


def index_build(r: Runner, f: dict[str, Path]) -> None:
    idx = r.path("idx")
    idx.mkdir(exist_ok=True)
    src = f["good.h5ad"]

    target = idx / "target-empty"
    link = idx / "link.idx"

    def symlink_setup() -> None:
        target.mkdir(exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(target)

    r.case(
        "index build: -o a symlink to an empty folder",
        ["index", "build", src, "-o", link],
        names=(str(link),),
        setup=symlink_setup,
        after=lambda o: (
            ([] if link.is_symlink() else ["the link was replaced"])
            + ([] if not any(target.iterdir()) else ["wrote through the link"])
        ),
    )
    earlier = idx / "earlier.idx"
    link2 = idx / "link-to-index.idx"

    def symlink_index_setup() -> None:
        if not earlier.exists():
            r.fixture(["index", "build", src, "-o", earlier])
        if not link2.is_symlink():
            link2.symlink_to(earlier)

    r.case(
        "index build: -o a symlink to an earlier index",
        ["index", "build", src, "-o", link2],
        names=(str(link2),),
        setup=symlink_index_setup,
        after=lambda o: [] if link2.is_symlink() else ["the link was replaced"],
    )
    dangling = idx / "dangling.idx"

    def dangling_setup() -> None:
        if not dangling.is_symlink():
            dangling.symlink_to(idx / "nowhere")

    r.case(
        "index build: -o a dangling symlink",
        ["index", "build", src, "-o", dangling],
        names=(str(dangling),),
        setup=dangling_setup,
        after=lambda o: [] if not (idx / "nowhere").exists() else ["wrote through the link"],
    )
    users = idx / "users-folder"

    def users_setup() -> None:
        users.mkdir(exist_ok=True)
        (users / "thesis.txt").write_text("a user's file\n")
        (users / "scurate-index.json").write_text("{}")

    r.case(
        "index build: -o a folder with a user's file and a scurate-index.json",
        ["index", "build", src, "-o", users],
        names=(str(users),),
        setup=users_setup,
        after=lambda o: [] if (users / "thesis.txt").is_file() else ["the user's file was deleted"],
    )
    a_file = idx / "a-file.idx"
    a_file.write_text("x\n")
    r.case(
        "index build: -o an existing file",
        ["index", "build", src, "-o", a_file],
        names=(str(a_file),),
        after=lambda o: [] if a_file.read_text() == "x\n" else ["the file changed"],
    )
    sel_like = idx / "select-output"

    def sel_like_setup() -> None:
        if not (sel_like / "manifest.parquet").exists():
            r.fixture(["select", src, "-b", 10, "-o", sel_like, "--no-cache"])

    r.case(
        "index build: -o a select output folder",
        ["index", "build", src, "-o", sel_like],
        names=(str(sel_like),),
        setup=sel_like_setup,
        after=lambda o: (
            [] if (sel_like / "manifest.parquet").is_file() else ["the select output was removed"]
        ),
    )
    again = idx / "again.idx"

    def again_setup() -> None:
        if not again.exists():
            r.fixture(["index", "build", src, "-o", again])

    r.case(
        "index build: -o an earlier index (replaced: accepted)",
        ["index", "build", src, "-o", again],
        expect=0,
        out=again,
        setup=again_setup,
    )


def outputs(r: Runner, f: dict[str, Path]) -> None:
    src = [f["good.h5ad"], f["good2.h5ad"]]
    earlier = r.path("runs", "earlier")
    state: dict[str, dict[str, str]] = {}

    def make_earlier(folder: Path, cmd: str = "select") -> Callable[[], None]:
        def setup() -> None:
            if not (folder / "report.json").exists():
                extra = ["-b", 20] if cmd == "select" else []
                r.fixture([cmd, *src, *extra, "-o", folder, "--no-cache"])
            state[str(folder)] = snapshot(folder)

        return setup

    def unchanged(folder: Path) -> Callable[[Outcome], list[str]]:
        return lambda o: [] if snapshot(folder) == state[str(folder)] else ["earlier run changed"]

    r.case(
        "select -o over an earlier run, without --overwrite",
        ["select", *src, "-b", 30, "-o", earlier, "--no-cache"],
        names=(str(earlier), "--overwrite"),
        setup=make_earlier(earlier),
        after=unchanged(earlier),
    )
    r.case(
        "select -o over an earlier run, same options, without --overwrite",
        ["select", *src, "-b", 20, "-o", earlier, "--no-cache"],
        names=(str(earlier),),
        setup=make_earlier(earlier),
        after=unchanged(earlier),
    )
    r.case(
        "score -o over an earlier select run",
        ["score", *src, "-o", earlier, "--no-cache"],
        names=(str(earlier),),
        setup=make_earlier(earlier),
        after=unchanged(earlier),
    )
    r.case(
        "bench -o over an earlier select run",
        words("bench", src, BENCH, "-o", earlier),
        names=(str(earlier),),
        setup=make_earlier(earlier),
        after=unchanged(earlier),
    )
    earlier_score = r.path("runs", "earlier-score")
    r.case(
        "score -o over an earlier score run",
        ["score", *src, "-o", earlier_score, "--no-cache"],
        names=(str(earlier_score),),
        setup=make_earlier(earlier_score, "score"),
        after=unchanged(earlier_score),
    )
    stray = r.path("runs", "stray-report")

    def stray_setup() -> None:
        stray.mkdir(parents=True, exist_ok=True)
        (stray / "report.json").write_text('{"a user": "file"}')

    r.case(
        "select -o a folder holding only a report.json",
        ["select", *src, "-b", 10, "-o", stray, "--no-cache"],
        names=(str(stray),),
        setup=stray_setup,
        after=lambda o: (
            [] if (stray / "report.json").read_text() == '{"a user": "file"}' else ["replaced"]
        ),
    )
    over = r.path("runs", "overwritten")
    r.case(
        "select -o over an earlier run with --overwrite (accepted)",
        ["select", *src, "-b", 30, "-o", over, "--no-cache", "--overwrite"],
        expect=0,
        out=over,
        setup=make_earlier(over),
        after=lambda o: (
            []
            if pl.read_parquet(over / "manifest.parquet")["selected"].sum() == 30
            else ["not the new run"]
        ),
    )


def selection(r: Runner, tag: str, n: tuple[int, int] = (200, 150), budget: int = 60) -> Path:
    """A select output over its own copies of two sources (``runs/TAG``)."""
    folder = r.path("runs", tag)
    if (folder / "sel" / "report.json").exists():
        return folder / "sel"
    folder.mkdir(parents=True, exist_ok=True)
    make(n[0], 0, "a").write_h5ad(folder / "a.h5ad")
    make(n[1], 1, "b").write_h5ad(folder / "b.h5ad")
    files = [folder / "a.h5ad", folder / "b.h5ad"]
    r.fixture(words("select", files, "-b", budget, "-o", folder / "sel", "--no-cache"))
    return folder / "sel"


def rewrite_record(folder: Path) -> None:
    """Make ``folder``'s report.json record its (edited) manifest again: a folder that looks
    complete, as a hostile user could leave one."""
    report = json.loads((folder / "report.json").read_text())
    report["written"] = {"manifest.parquet": digest(folder / "manifest.parquet")}
    (folder / "report.json").write_text(json.dumps(report))


def materialize_cases(r: Runner, f: dict[str, Path]) -> None:
    # a source rewritten since the selection: same obs names, new X
    def rewritten(tag: str, change: Callable[[Path], None]) -> Callable[[], list[Any]]:
        def args() -> list[Any]:
            sel = selection(r, tag)
            change(sel.parent / "a.h5ad")
            return ["materialize", sel, "-o", sel.parent / "shards"]

        return args

    def new_x(path: Path) -> None:
        a = make(200, 0, "a", scale=2.0)
        a.write_h5ad(path)

    def fewer(path: Path) -> None:
        make(120, 0, "a").write_h5ad(path)

    def shuffled(path: Path) -> None:
        a = make(200, 0, "a")
        a[np.random.default_rng(0).permutation(200)].copy().write_h5ad(path)

    def same_size_new_x(path: Path) -> None:
        before = path.stat()
        a = make(200, 0, "a")
        x = a.X.tocsr()
        x.data = x.data[::-1].copy()  # as many values, other values: most likely the same size
        a.X = x
        a.write_h5ad(path)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old mtime

    for tag, change, what in [
        ("rw-newx", new_x, "rewritten (same obs names, new X)"),
        ("rw-samesize", same_size_new_x, "rewritten (same obs names, size and mtime; new X)"),
        ("rw-fewer", fewer, "rewritten with fewer cells"),
        ("rw-shuffled", shuffled, "rewritten (the same cells in another order)"),
        ("rw-deleted", lambda p: p.unlink(), "deleted"),
    ]:
        shards = r.path("runs", tag, "shards")
        r.case(
            f"materialize: a source {what} since the selection",
            rewritten(tag, change),
            names=("a.h5ad",),
            out=shards,
        )

    def resumed_args() -> list[Any]:
        sel = selection(r, "rw-resume")
        shards = sel.parent / "shards"
        if not shards.exists():
            r.fixture(["materialize", sel, "-o", shards, "--shard-size", 20])
            index = json.loads((shards / "index.json").read_text())
            index["complete"] = False
            index["shards"] = index["shards"][:1]
            (shards / "index.json").write_text(json.dumps(index))
            new_x(sel.parent / "a.h5ad")
        return ["materialize", sel, "-o", shards, "--shard-size", 20]

    r.case(
        "materialize: resumed after a source was rewritten",
        resumed_args,
        names=("a.h5ad",),
        out=r.path("runs", "rw-resume", "shards"),
    )

    # a manifest whose sources lead elsewhere
    def edited(tag: str, to: Callable[[str], str]) -> Callable[[], list[Any]]:
        def args() -> list[Any]:
            sel = selection(r, tag)
            frame = pl.read_parquet(sel / "manifest.parquet")
            sources = pl.Series("source", [to(s) for s in frame["source"].to_list()])
            frame = frame.with_columns(sources)
            frame.write_parquet(sel / "manifest.parquet", statistics=False)
            rewrite_record(sel)
            return ["materialize", sel, "-o", sel.parent / "shards"]

        return args

    def dotdot(source: str) -> str:
        p = Path(source)
        return f"{p.parent}/../{p.parent.name}/{p.name}"

    for tag, to, what in [
        ("dotdot-abs", dotdot, "an absolute path with '../'"),
        ("dotdot-rel", lambda s: f"../{Path(s).parent.name}/{Path(s).name}", "'../x.h5ad'"),
        ("elsewhere", lambda s: "/etc/hostname", "/etc/hostname"),
        ("nowhere", lambda s: s + ".missing", "a missing file"),
    ]:
        shards = r.path("runs", tag, "shards")
        r.case(
            f"materialize: manifest source {what}",
            edited(tag, to),
            names=("source",) if tag.startswith("dotdot") else (),
            out=shards,
            after=lambda o, s=shards: (
                [] if not any(s.glob("shard-*")) else ["shards written from it"]
            ),
        )

    # a selection folder that does not look complete
    def killed_args() -> list[Any]:
        sel = selection(r, "no-report")
        (sel / "report.json").unlink(missing_ok=True)
        return ["materialize", sel, "-o", sel.parent / "shards"]

    r.case(
        "materialize: a selection folder without report.json",
        killed_args,
        names=("report.json",),
        out=r.path("runs", "no-report", "shards"),
    )

    def mixed_args() -> list[Any]:
        one = selection(r, "mixed-a")
        two = selection(r, "mixed-b", budget=40)
        shutil.copyfile(one / "report.json", two / "report.json")
        return ["materialize", two, "-o", two.parent / "shards"]

    r.case(
        "materialize: a manifest next to another run's report.json",
        mixed_args,
        names=("manifest.parquet",),
        out=r.path("runs", "mixed-b", "shards"),
    )

    # index.json of an earlier materialize that points elsewhere
    def shard_index(tag: str, edit: Callable[[dict[str, Any], Path], None]):
        def args() -> list[Any]:
            sel = selection(r, tag)
            shards = sel.parent / "shards"
            if not shards.exists():
                r.fixture(["materialize", sel, "-o", shards, "--shard-size", 20])
            index = json.loads((shards / "index.json").read_text())
            edit(index, shards)
            (shards / "index.json").write_text(json.dumps(index))
            return ["materialize", sel, "-o", shards, "--shard-size", 20]

        return args

    victims: dict[str, str] = {}

    def outside(tag: str, rel: bool) -> Callable[[dict[str, Any], Path], None]:
        def edit(index: dict[str, Any], shards: Path) -> None:
            name = "x.h5ad" if rel else f"x-{tag}.h5ad"
            victim = shards.parent.parent / name  # runs/x.h5ad: outside the shards folder
            shutil.copyfile(shards / "shard-00000.h5ad", victim)
            victims[tag] = hashlib.sha256(victim.read_bytes()).hexdigest()
            (shards / "shard-00000.h5ad").unlink()
            index["complete"] = False
            index["shards"][0]["file"] = f"../../{name}" if rel else str(victim)

        return edit

    def victim_unchanged(tag: str, rel: bool) -> Callable[[Outcome], list[str]]:
        def check(o: Outcome) -> list[str]:
            victim = r.path("runs", "x.h5ad" if rel else f"x-{tag}.h5ad")
            if not victim.is_file():
                return ["the file outside the folder was removed"]
            if hashlib.sha256(victim.read_bytes()).hexdigest() != victims[tag]:
                return ["the file outside the folder changed"]
            return []

        return check

    for tag, rel, what in [
        ("shard-dotdot", True, "'../../x.h5ad' as a shard"),
        ("shard-abs", False, "an absolute path outside as a shard"),
    ]:
        r.case(
            f"materialize: index.json lists {what}",
            shard_index(tag, outside(tag, rel)),
            names=("index.json",),
            after=victim_unchanged(tag, rel),
        )
    r.case(
        "materialize: index.json lists shard '0' (a string)",
        shard_index("shard-str", lambda i, s: i["shards"][0].update(shard="0")),
        names=("index.json",),
    )

    def list_index() -> list[Any]:
        sel = selection(r, "shard-list")
        shards = sel.parent / "shards"
        if not shards.exists():
            r.fixture(["materialize", sel, "-o", shards, "--shard-size", 20])
        (shards / "index.json").write_text("[1, 2]")
        return ["materialize", sel, "-o", shards, "--shard-size", 20]

    r.case(
        "materialize: index.json a JSON list",
        list_index,
        names=("index.json",),
    )

    state: dict[str, str] = {}

    def symlinked_shard() -> list[Any]:
        sel = selection(r, "shard-link")
        shards = sel.parent / "shards"
        outside_file = sel.parent / "precious.h5ad"
        if not shards.exists():
            r.fixture(["materialize", sel, "-o", shards, "--shard-size", 20])
            make(5, 9, "z").write_h5ad(outside_file)
            (shards / "shard-00001.h5ad").unlink()
            (shards / "shard-00001.h5ad").symlink_to(outside_file)
        state["precious"] = hashlib.sha256(outside_file.read_bytes()).hexdigest()
        return ["materialize", sel, "-o", shards, "--shard-size", 20]

    def link_after(o: Outcome) -> list[str]:
        base = r.path("runs", "shard-link")
        problems = []
        if hashlib.sha256((base / "precious.h5ad").read_bytes()).hexdigest() != state["precious"]:
            problems.append("the file the link pointed to changed")
        if o.rc == 0 and (base / "shards" / "shard-00001.h5ad").is_symlink():
            problems.append("a link kept as a complete shard")
        return problems

    r.case(
        "materialize: a shard replaced by a symlink outside (rewritten or refused)",
        symlinked_shard,
        expect={0, 1},
        after=link_after,
    )
    sel_dir = r.path("runs", "mat-opts")
    for tag, extra, names in [
        ("--seed -1", ["--shuffle", "--seed", "-1"], ("--seed",)),
        ("--seed -1 without --shuffle", ["--seed", "-1"], ("--seed",)),
        ("--shard-size 0", ["--shard-size", "0"], ("--shard-size",)),
        ("--budget 0", ["--budget", "0"], ("--budget",)),
        ("--budget above the selection", ["--budget", "100000"], ("--budget",)),
        ("--format parquet", ["--format", "parquet"], ("--format",)),
        ("--genes a missing file", ["--genes", str(sel_dir / "nope.txt")], ("nope.txt",)),
    ]:
        shards = sel_dir / ("shards-" + re.sub(r"\W+", "_", tag))
        r.case(
            f"materialize: {tag}",
            lambda extra=extra, shards=shards: [
                "materialize",
                selection(r, "mat-opts"),
                "-o",
                shards,
                *extra,
            ],
            names=names,
            out=shards,
        )
    other = r.path("runs", "mat-opts", "users-folder")

    def users_folder() -> list[Any]:
        other.mkdir(parents=True, exist_ok=True)
        (other / "notes.txt").write_text("mine\n")
        return ["materialize", selection(r, "mat-opts"), "-o", other]

    r.case(
        "materialize: -o a folder holding a user's file",
        users_folder,
        names=(str(other),),
        after=lambda o: [] if (other / "notes.txt").is_file() else ["the user's file was removed"],
    )


def shards_consistent(folder: Path) -> list[str]:
    """A materialize folder holds the shards of one run: an index marked complete listing
    exactly the shard files there, each as long as it says, ranks 0..n-1 in order."""
    index_path = folder / "index.json"
    if not index_path.is_file():
        return ["no index.json"]
    index = json.loads(index_path.read_text())
    problems = []
    if index.get("complete") is not True:
        problems.append("index.json not complete")
    listed = [s["file"] for s in index.get("shards", [])]
    there = sorted(p.name for p in folder.iterdir() if p.name != "index.json")
    if sorted(listed) != there:
        problems.append(f"files {there} but index lists {sorted(listed)}")
    ranks = []
    for shard in index.get("shards", []):
        path = folder / shard["file"]
        if not path.is_file():
            continue
        with h5py.File(path, "r") as h:
            n_obs = int(h["X"].attrs["shape"][0])
            ranks.extend(ad.io.read_elem(h["obs"])["selection_rank"].tolist())
        if n_obs != shard["n_obs"]:
            problems.append(f"{shard['file']} holds {n_obs} cells, index says {shard['n_obs']}")
    if ranks != list(range(len(ranks))) or len(ranks) != index.get("n_cells"):
        problems.append(f"ranks are not 0..{index.get('n_cells')} in order (mixed shards)")
    return problems


def concurrent(r: Runner, f: dict[str, Path]) -> None:
    for tag, sizes in [("other options", (10, 15, 20)), ("same options", (10, 10, 10))]:

        def body(tag: str = tag, sizes: tuple[int, ...] = sizes) -> tuple[str, list[str], str]:
            sel = selection(r, "concurrent", budget=300)
            shards = sel.parent / ("shards-" + tag.replace(" ", "-"))
            shutil.rmtree(shards, ignore_errors=True)
            argvs = [
                [str(SCURATE), "materialize", str(sel), "-o", str(shards), "--shard-size", str(s)]
                for s in sizes
            ]
            procs = [
                subprocess.Popen(
                    a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=r.env(None)
                )
                for a in argvs
            ]
            outcomes = []
            for p in procs:
                out, err = p.communicate(timeout=300)
                outcomes.append(Outcome(p.returncode, out, err, 0.0))
            problems = []
            for i, o in enumerate(outcomes):
                problems += [f"run {i}: {p}" for p in contract(o, {0, 1}, ())]
            if not any(o.rc == 0 for o in outcomes):
                problems.append("no run succeeded")
            problems += shards_consistent(shards)
            got = "; ".join(shown(o) for o in outcomes)
            command = " & ".join(shlex.join(a) for a in argvs) + " & wait"
            return got, problems, command

        r.custom(
            f"materialize: three concurrent runs into one folder ({tag})",
            "each exit 0/1 one line; one consistent set of shards",
            body,
        )


KILLER = """
import os, sys
from pathlib import Path
import scurate._data.atomic as atomic
_write_json = atomic.write_json
def dying(data, path, *args, **kwargs):
    if Path(path).name == "report.json":
        os._exit(9)  # killed after the manifest was renamed, before the report
    return _write_json(data, path, *args, **kwargs)
atomic.write_json = dying
from scurate.cli import main
sys.argv = ["scurate", *sys.argv[1:]]
main()
"""


def killed(r: Runner, f: dict[str, Path]) -> None:
    src = [f["good.h5ad"], f["good2.h5ad"]]

    def body(reused: bool) -> tuple[str, list[str], str]:
        folder = r.path("runs", "killed-reused" if reused else "killed-fresh")
        shutil.rmtree(folder, ignore_errors=True)
        if reused:
            r.fixture(["select", *src, "-b", 20, "-o", folder, "--no-cache"])
        argv = ["select", *map(str, src), "-b", "30", "-o", str(folder), "--no-cache"]
        argv += ["--overwrite"] if reused else []
        kill = subprocess.run(
            [sys.executable, "-c", KILLER, *argv],
            capture_output=True,
            text=True,
            env=r.env(None),
            cwd=r.root,
            check=False,
        )
        problems = []
        if kill.returncode != 9:
            problems.append(f"the killed run exited {kill.returncode}, not 9 (not simulated)")
        if not (folder / "manifest.parquet").exists():
            problems.append("no new manifest (not killed after the manifest)")
        if found := looks_complete(folder):
            problems.append(f"the folder looks complete: {found}")
        shards = folder.parent / (folder.name + "-shards")
        shutil.rmtree(shards, ignore_errors=True)
        args = ["materialize", folder, "-o", shards]
        outcome = r.scurate(args)
        problems += contract(outcome, 1, ("report.json",))
        if looks_complete(shards):
            problems.append("materialize left complete shards")
        command = (
            f'cd {r.root} && {shlex.quote(sys.executable)} -c "$KILLER" {shlex.join(argv)}; '
            + r.command(args)
        )
        return f"killed: exit {kill.returncode}; then {shown(outcome)}", problems, command

    r.custom(
        "killed between manifest and report over an earlier run, then materialize",
        "no complete-looking folder; materialize exit 1, one line",
        lambda: body(True),
    )
    r.custom(
        "killed between manifest and report (new folder), then materialize",
        "no complete-looking folder; materialize exit 1, one line",
        lambda: body(False),
    )

    def kill9() -> tuple[str, list[str], str]:
        folder = r.path("runs", "kill9")
        shutil.rmtree(folder, ignore_errors=True)
        big = f["big3000.h5ad"]
        r.fixture(["select", big, "-b", 100, "-o", folder, "--no-cache"])
        before = (folder / "manifest.parquet").stat().st_mtime_ns
        argv = [str(SCURATE), "select", str(big), "-b", "300", "-o", str(folder)]
        argv += ["--no-cache", "--overwrite"]
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=r.env(None)
        )
        partial, manifest = folder / ".manifest.parquet.partial", folder / "manifest.parquet"

        def writing() -> bool:
            try:
                return partial.exists() or manifest.stat().st_mtime_ns != before
            except FileNotFoundError:
                return True

        while proc.poll() is None and not writing():
            time.sleep(0.0002)
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        found = looks_complete(folder)
        problems = ["the run finished before the kill (not tried)"] if finished else []
        if found is not None:
            selected = pl.read_parquet(manifest)["selected"].sum()
            if selected != 300:
                problems.append(f"the earlier run still looks complete: {found}")
        shards = r.path("runs", "kill9-shards")
        shutil.rmtree(shards, ignore_errors=True)
        outcome = r.scurate(["materialize", folder, "-o", shards])
        problems += contract(outcome, 0 if found else 1, ())
        state = f"folder {'looks complete' if found else 'incomplete'} after the kill"
        command = shlex.join(argv) + "  (over an earlier run; kill -9 as it writes the manifest)"
        return f"{state}; then materialize {shown(outcome)}", problems, command

    r.custom(
        "select --overwrite killed -9 as it writes the manifest, then materialize",
        "nothing complete-looking, materialize exit 1, one line",
        kill9,
    )


def determinism(r: Runner, f: dict[str, Path]) -> None:
    big = f["big3000.h5ad"]

    def compare(
        cmd: str, tag: str, a: dict[str, str], b: dict[str, str], flags: tuple[list[str], ...]
    ) -> Callable[[], tuple[str, list[str], str]]:
        def body() -> tuple[str, list[str], str]:
            outs = []
            commands = []
            for i, (env, extra) in enumerate(((a, flags[0]), (b, flags[1]))):
                out = r.path("det", f"{cmd}-{tag}-{i}")
                shutil.rmtree(out, ignore_errors=True)
                argv = [cmd, big, "-o", out, "--no-cache", *extra]
                argv += ["-b", 300] if cmd == "select" else []
                r.fixture(argv, env=env)
                outs.append(out / "manifest.parquet")
                commands.append(r.command(argv, env))
            one, two = (p.read_bytes() for p in outs)
            if one == two:
                return "byte-identical", [], " ; ".join(commands)
            x, y = (pl.read_parquet(p) for p in outs)
            differ = []
            for column in x.columns:
                if not x[column].equals(y[column]):
                    n = int((x[column] != y[column]).fill_null(True).sum())
                    differ.append(f"{column} ({n} rows)")
            got = "differ: " + (", ".join(differ) or "bytes only")
            return got, ["manifests differ"], " ; ".join(commands)

        return body

    one, two = {"OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "2"}
    r.custom(
        "determinism: select manifest at OMP_NUM_THREADS=1 vs 2",
        "byte-identical manifest.parquet",
        compare("select", "omp", one, two, ([], [])),
    )
    r.custom(
        "determinism: select manifest at --threads 1 vs 2",
        "byte-identical manifest.parquet",
        compare("select", "threads", {}, {}, (["--threads", "1"], ["--threads", "2"])),
    )
    r.custom(
        "determinism: score manifest at --threads 1 vs 2",
        "byte-identical manifest.parquet",
        compare("score", "threads", {}, {}, (["--threads", "1"], ["--threads", "2"])),
    )


def safety(r: Runner, f: dict[str, Path]) -> None:
    def grep() -> tuple[str, list[str], str]:
        import importlib.util

        roots = [REPO / "scurate", REPO / "plugins"]
        for module in ("scurate", "scurate_harmonizers", "scurate_policies"):
            spec = importlib.util.find_spec(module)
            if spec is not None and spec.submodule_search_locations:
                roots.extend(Path(p) for p in spec.submodule_search_locations)
        pattern = re.compile(
            r"^\s*(import\s+(c?pickle|dill|shelve|marshal)\b|from\s+(c?pickle|dill|shelve)\s+import)"
            r"|pickle\.loads?\(|allow_pickle\s*=\s*True|read_pickle\(|joblib\.load\(",
            re.MULTILINE,
        )
        hits = []
        for root in dict.fromkeys(roots):
            for path in sorted(root.rglob("*.py")):
                for m in pattern.finditer(path.read_text(errors="replace")):
                    line = path.read_text(errors="replace")[: m.start()].count("\n") + 1
                    hits.append(f"{path}:{line}: {m.group(0).strip()}")
        command = "grep -rnE '^\\s*(import|from) (c?pickle|dill|shelve)|pickle\\.load' " + " ".join(
            map(str, dict.fromkeys(roots))
        )
        return (
            f"{len(hits)} hits" + (f": {hits[0]}" if hits else ""),
            [f"pickle use: {h}" for h in hits],
            command,
        )

    r.custom("safety: no pickle import or load under scurate/", "no hits", grep)

    def bomb() -> tuple[str, list[str], str]:
        cache = r.path("cache")
        shutil.rmtree(cache, ignore_errors=True)
        env = {"SCURATE_CACHE_DIR": str(cache)}
        args = ["harmonize", f["good.h5ad"]]
        r.fixture(args, env=env)
        marker = r.path("PICKLE-RAN")
        shutil.rmtree(marker, ignore_errors=True)

        class Bomb:
            def __reduce__(self) -> tuple[Any, ...]:
                return (os.mkdir, (str(marker),))

        payload = pickle.dumps(Bomb())
        files = [p for p in cache.rglob("*") if p.is_file()]
        for path in files:
            path.write_bytes(payload)
            path.with_suffix(".pickle").write_bytes(payload)  # an older cache's name
        for fmt in range(1, 6):  # old format names
            for path in files:
                stem = re.sub(r"-f\d+$", f"-f{fmt}", path.stem)
                path.with_name(stem + ".pickle").write_bytes(payload)
        outcome = r.scurate(args, env=env)
        problems = contract(outcome, 0, ())
        if marker.exists():
            problems.append("the planted pickle ran (it made a folder)")
        return (
            f"exit {outcome.rc}; planted pickle {'ran' if marker.exists() else 'not run'}",
            problems,
            r.command(args, env) + "  (after overwriting each cache file with a pickle)",
        )

    r.custom(
        "safety: ontology cache files replaced by a pickle that runs code",
        "exit 0 (cache rebuilt), the pickle never runs",
        bomb,
    )


def sigint(r: Runner, f: dict[str, Path]) -> None:
    def body() -> tuple[str, list[str], str]:
        path = r.data / "wide60k.h5ad"
        if not path.exists():
            n = 60_000
            rng = np.random.default_rng(0)
            a = ad.AnnData(
                sp.csr_matrix((n, 5), dtype=np.float32),
                obs=pd.DataFrame(index=[f"w{i}" for i in range(n)]),
                var=pd.DataFrame(index=[f"G{i}" for i in range(5)]),
            )
            a.obsm["X_emb"] = rng.normal(size=(n, 16)).astype(np.float32)
            a.write_h5ad(path)
        work = r.path("sigint", "work")
        # the pool scored once (kept in the work dir): the next run goes straight to k-center
        warm = r.path("sigint", "warm")
        r.fixture(words("select", path, "--obsm-key X_emb -b 10 -o", warm, "--work-dir", work))
        out = r.path("sigint", "interrupted")
        shutil.rmtree(out, ignore_errors=True)
        argv = [str(SCURATE), "select", str(path), "--obsm-key", "X_emb", "-b", "40000"]
        argv += ["-o", str(out), "--work-dir", str(work)]
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=r.env(None)
        )
        time.sleep(4.0)
        if proc.poll() is not None:
            out_, err = proc.communicate()
            o = Outcome(proc.returncode, out_, err, 4.0)
            return shown(o), ["finished before the interrupt (make the run longer)"], ""
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            return "still running 60 s after SIGINT", ["did not stop"], shlex.join(argv)
        took = time.monotonic() - sent
        o = Outcome(proc.returncode, stdout, stderr, took)
        problems = []
        if took > 2.0:
            problems.append(f"took {took:.1f} s to stop")
        if proc.returncode == 0:
            problems.append("exit 0 after SIGINT")
        if "Traceback" in stderr + stdout:
            problems.append("traceback")
        if len([line for line in stderr.splitlines() if line.strip()]) > 1:
            problems.append("more than one line on stderr")
        if found := looks_complete(out):
            problems.append(f"the folder looks complete: {found}")
        return (
            f"stopped {took:.1f} s after SIGINT; {shown(o)}",
            problems,
            shlex.join(argv) + "  (SIGINT 4 s after start, the pool already in --work-dir)",
        )

    r.custom(
        "SIGINT during native k-center (60k cells, budget 40k)",
        "stops within 2 s, no traceback, no complete output",
        body,
    )


# ------------------------------------------------------------------------------- report


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report(results: Sequence[Result]) -> None:
    print("| # | case | expected | got | verdict |")
    print("|---|---|---|---|---|")
    for i, res in enumerate(results, 1):
        verdict = "held" if res.held else "**failed**: " + "; ".join(res.problems)
        print(
            f"| {i} | {cell(res.case)} | {cell(res.expected)} | {cell(res.got)} | {cell(verdict)} |"
        )
    held = sum(r.held for r in results)
    print()
    print(f"{len(results)} cases tried, {held} held, {len(results) - held} failed")
    failed = [r for r in results if not r.held]
    if failed:
        print("\n## Failures\n")
        for i, res in enumerate(results, 1):
            if res.held:
                continue
            print(f"### {i}. {res.case}\n")
            print(f"- problems: {'; '.join(res.problems)}")
            if res.command:
                print(f"- command: `{res.command}`")
            if res.stderr.strip():
                tail = "\n".join(res.stderr.strip().splitlines()[-12:])
                print("- stderr:\n\n```\n" + tail + "\n```")
            print()


GROUPS: dict[str, Callable[[Runner, dict[str, Path]], None]] = {
    "bad values": bad_values,
    "bad options": bad_options,
    "unwritable -o": unwritable,
    "plugins": plugins,
    "reference indexes": references,
    "index build -o": index_build,
    "outputs": outputs,
    "materialize": materialize_cases,
    "concurrency": concurrent,
    "killed runs": killed,
    "determinism": determinism,
    "safety": safety,
    "interrupts": sigint,
}


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="build the inputs here and keep them")
    parser.add_argument(
        "-k", action="append", default=[], help="only cases whose name holds this (repeatable)"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not SCURATE.exists():
        print(f"no scurate command next to {sys.executable}", file=sys.stderr)
        return 0
    if args.keep:
        shutil.rmtree(args.keep, ignore_errors=True)
        args.keep.mkdir(parents=True)
        root = args.keep.resolve()
    else:
        root = Path(tempfile.mkdtemp(prefix="scurate-hostile-"))
    started = time.monotonic()
    try:
        runner = Runner(root, args.k)
        print(f"inputs in {root}", file=sys.stderr)
        files = build_inputs(runner)
        for group, run in GROUPS.items():
            print(f"[{group}]", file=sys.stderr, flush=True)
            run(runner, files)
        report(runner.results)
        print(f"\n(took {time.monotonic() - started:.0f} s; inputs in {root})", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
