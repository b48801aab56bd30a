"""--backend ray: the per-source stages as tasks on a real local Ray (2 CPUs, started once for
the module), the same manifest byte for byte, the same work-dir entry, and faults: a source that
cannot be read is the local path's one line; a worker killed mid-task is retried by Ray."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import polars as pl
import pytest
from scurate.cli import app
from typer.testing import CliRunner

from conftest import TYPES, make_adata, type_programs
from plugin_helpers import install_plugin

# Ray (2.x) warns of its own deprecations at start; they are not scurate's
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A local Ray of 2 CPUs. Started from a folder of its own: Ray puts the driver's folder
    first on its workers' path, where the repository's scurate (no built core) would hide the
    installed one the tests must use."""
    ray = pytest.importorskip("ray")
    here = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("ray"))
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        os.chdir(here)
    yield
    ray.shutdown()


def write_labs(root: Path, *, suffix: str = ".h5ad", cells: int = 1) -> list[Path]:
    """Three labs of raw counts with a stored embedding; lab_c holds copies of 30 cells of
    lab_a."""
    rng = np.random.default_rng(7)
    programs = type_programs(np.random.default_rng(42), len(TYPES))
    a = make_adata(rng, programs, TYPES, [120 * cells, 90, 80, 100, 6], prefix="a_")
    b = make_adata(rng, programs, TYPES, [100, 80 * cells, 60, 90, 0], prefix="b_")
    c = make_adata(rng, programs, TYPES, [60, 0, 40 * cells, 50, 4], prefix="c_")
    c = ad.concat([c, a[:30]])
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, lab in zip("abc", (a, b, c), strict=True):
        lab.obsm["X_emb"] = rng.normal(size=(lab.n_obs, 8)).astype(np.float32)
        paths.append(root / f"lab_{name}{suffix}")
        lab.write_h5ad(paths[-1], compression="gzip")
    return paths


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_labs(tmp_path_factory.mktemp("labs"))


def select(paths: list[Path], out: Path, *extra: str) -> object:
    args = ["select", *map(str, paths), "-b", "60", "-o", str(out), "--json", *extra]
    return CliRunner().invoke(app, args)


def manifest_bytes(out: Path) -> bytes:
    return (out / "manifest.parquet").read_bytes()


@pytest.mark.parametrize(
    "embedding",
    [[], ["--obsm-key", "X_emb"], ["--obsm-key", "X_emb", "--index-factory", "IVF16,Flat"]],
    ids=["pca", "obsm", "obsm-ivf"],  # ivf: the neighbour search in pieces held by actors
)
def test_the_manifest_is_byte_identical(
    ray_cluster: None, labs: list[Path], tmp_path: Path, embedding: list[str]
) -> None:
    local = select(labs, tmp_path / "local", "--no-cache", *embedding)
    on_ray = select(labs, tmp_path / "ray", "--no-cache", "--backend", "ray", *embedding)
    assert local.exit_code == 0, local.output
    assert on_ray.exit_code == 0, on_ray.output
    assert manifest_bytes(tmp_path / "local") == manifest_bytes(tmp_path / "ray")


def test_the_python_api_takes_the_backend(ray_cluster: None, labs: list[Path]) -> None:
    import scurate

    def quiet(stage: str, done: int, total: int) -> None:
        return None

    runs = {
        backend: scurate.select(labs, 40, obsm_key="X_emb", backend=backend, progress=quiet)
        for backend in ("local", "ray")
    }
    assert runs["local"].manifest.equals(runs["ray"].manifest)
    assert runs["ray"].report["parameters"]["backend"] == "ray"


def test_score_is_the_same_on_ray(ray_cluster: None, labs: list[Path], tmp_path: Path) -> None:
    for backend in ("local", "ray"):
        args = ["score", *map(str, labs), "-o", str(tmp_path / backend), "--no-cache"]
        args += ["--obsm-key", "X_emb"]
        res = CliRunner().invoke(app, [*args, "--backend", backend, "--json"])
        assert res.exit_code == 0, res.output
    for name in ("manifest.parquet", "neighbours.parquet"):
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes()


def test_local_and_ray_runs_share_the_work_dir(
    ray_cluster: None, labs: list[Path], tmp_path: Path
) -> None:
    import json

    work = ["--work-dir", str(tmp_path / "work"), "--obsm-key", "X_emb"]
    runs = [("ray", "first"), ("local", "second"), ("ray", "third")]
    reports = []
    for backend, out in runs:
        res = select(labs, tmp_path / out, *work, "--backend", backend)
        assert res.exit_code == 0, res.output
        reports.append(json.loads((tmp_path / out / "report.json").read_text()))
    entries = {r["work_dir"]["entry"] for r in reports}
    assert len(entries) == 1  # one key, whichever backend
    assert [r["work_dir"]["reused"] for r in reports] == [False, True, True]
    assert manifest_bytes(tmp_path / "first") == manifest_bytes(tmp_path / "second")


def corrupt_late_chunk(path: Path) -> None:
    """Overwrite the last compressed chunk of X's values: the file opens and its first rows
    read (the checks at open), but reading all of X fails."""
    with h5py.File(path, "r") as f:
        data = f["X/data"]
        last = data.id.get_chunk_info(data.id.get_num_chunks() - 1)
    with path.open("r+b") as handle:
        handle.seek(last.byte_offset)
        handle.write(b"\xff" * last.size)


def test_an_unreadable_source_is_the_same_line(ray_cluster: None, tmp_path: Path) -> None:
    paths = write_labs(tmp_path / "in", cells=25)  # lab_a: more rows than are checked at open
    corrupt_late_chunk(paths[0])
    lines = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        res = select(paths, out, "--no-cache", "--obsm-key", "X_emb", "--backend", backend)
        assert res.exit_code == 1, res.output
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
        lines[backend] = res.stderr
        assert not (out / "manifest.parquet").exists() and not (out / "report.json").exists()
    assert lines["local"] == lines["ray"]
    assert str(paths[0]) in lines["ray"] and "cannot read X" in lines["ray"]


KILL_ONCE = """
    import os
    import signal
    from pathlib import Path

    from scurate import hookimpl
    from scurate._data.anndata_store import H5adSource


    class KillOnce(H5adSource):
        # an h5ad whose first read of X in a Ray worker kills that worker (once)
        suffix = ".once"
        marker = Path(os.environ["SCURATE_TEST_MARKERS"])

        def iter_x(self, chunk_rows=8192):
            driver = int((self.marker / "driver").read_text())
            killed = self.marker / "killed"
            if os.getpid() != driver and not killed.exists():
                killed.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            return super().iter_x(chunk_rows)


    @hookimpl
    def scurate_register_sources(register):
        register(".once", KillOnce, summary="h5ad that kills its first Ray worker")
"""


def test_a_killed_worker_is_retried(
    ray_cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray.cloudpickle

    markers = tmp_path / "markers"
    markers.mkdir()
    (markers / "driver").write_text(str(os.getpid()))
    monkeypatch.setenv("SCURATE_TEST_MARKERS", str(markers))
    install_plugin(monkeypatch, tmp_path / "site", "kill-once", KILL_ONCE)
    import scurate_kill_once  # noqa: F401  (the workers cannot import it: sent by value)

    ray.cloudpickle.register_pickle_by_value(sys.modules["scurate_kill_once"])
    paths = write_labs(tmp_path / "in", suffix=".once")
    try:
        # a stored embedding: the first read of X is a hash task
        local = select(paths, tmp_path / "local", "--no-cache", "--obsm-key", "X_emb")
        ray_run = ["--no-cache", "--obsm-key", "X_emb", "--backend", "ray"]
        on_ray = select(paths, tmp_path / "ray", *ray_run)
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules["scurate_kill_once"])
    assert local.exit_code == 0, local.output
    assert on_ray.exit_code == 0, on_ray.output
    killed = int((markers / "killed").read_text())
    assert killed != os.getpid()  # a worker died, the task ran again elsewhere
    assert manifest_bytes(tmp_path / "local") == manifest_bytes(tmp_path / "ray")


def test_without_ray_the_backend_is_one_line_naming_the_extra(
    labs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    res = select(labs, tmp_path / "out", "--backend", "ray")
    assert res.exit_code == 1
    assert res.stderr == (
        "scurate: error: --backend ray: Ray is not installed (pip install 'scurate[ray]')\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--backend", "spark"], "--backend spark: expected local or ray"),
        (["--ray-address", "auto"], "--ray-address auto: needs --backend ray"),
    ],
)
def test_backend_options_are_checked(
    labs: list[Path], tmp_path: Path, extra: list[str], says: str
) -> None:
    res = select(labs, tmp_path / "out", *extra)
    assert res.exit_code == 1
    assert res.stderr == f"scurate: error: {says}\n"


def planted_ties(n: int = 3000, dims: int = 12) -> np.ndarray:
    """Clustered rows with exact copies: many neighbours at the same distance."""
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=4.0, size=(20, dims))
    x = (centres[rng.integers(0, 20, n)] + rng.normal(size=(n, dims))).astype(np.float32)
    x[rng.integers(0, n, 300)] = x[rng.integers(0, n, 300)]
    x[100:140] = x[7]  # 41 copies of one cell: more ties than neighbours searched
    return x


def test_the_search_in_pieces_is_the_whole_index_search(ray_cluster: None) -> None:
    from scurate import _backend as backend
    from scurate._compute import faiss_index

    x = planted_ties()
    index, info = faiss_index.build_index(x, factory="IVF30,Flat")
    assert info["nprobe"] == 10  # a third of the lists probed: pieces skip the others
    assert len(list(faiss_index.pieces(index, 2) or [])) == 2
    local = list(faiss_index.search_blocks(index, x, 25, rows=700))
    with backend.using(backend.connect("ray")):
        on_ray = list(faiss_index.search_blocks(index, x, 25, rows=700))
    assert [start for start, _, _ in on_ray] == list(range(0, len(x), 700))
    for (_, d_local, rows_local), (_, d_ray, rows_ray) in zip(local, on_ray, strict=True):
        np.testing.assert_array_equal(rows_ray, rows_local)  # the ties in FAISS's order too
        np.testing.assert_array_equal(d_ray, d_local)
    assert (local[0][2][7, :25] == np.r_[7, np.arange(100, 124)]).all()


def kill_first_call(markers: str, held: int, item: int) -> int:
    """A piece's call that kills its own worker the first time any call runs."""
    marker = Path(markers) / "killed"
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return held * 1000 + item


def test_a_killed_piece_holder_is_restarted(ray_cluster: None, tmp_path: Path) -> None:
    import ray.cloudpickle
    from scurate import _backend as backend

    kill = partial(kill_first_call, str(tmp_path))
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import it
    try:
        run = backend.connect("ray")
        answers = list(run.over_pieces(int, ["1", "2"], kill, range(5)))
    finally:
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert answers == [[1000 + i, 2000 + i] for i in range(5)]
    assert int((tmp_path / "killed").read_text()) != os.getpid()  # a holder died, came back


def test_soma_experiments_give_the_same_manifest_on_ray(ray_cluster: None, tmp_path: Path) -> None:
    pytest.importorskip("tiledbsoma")
    from test_soma import census_like, write_soma

    for seed, name in ((0, "lung_atlas"), (1, "liver_atlas")):
        write_soma(census_like(seed), tmp_path / "in" / name)
    args = [str(tmp_path / "in"), "--obs-filter", "tissue != 'blood'", "--no-cache"]
    local = select([], tmp_path / "local", *args)
    on_ray = select([], tmp_path / "ray", *args, "--backend", "ray")
    assert local.exit_code == 0, local.output
    assert on_ray.exit_code == 0, on_ray.output
    assert manifest_bytes(tmp_path / "local") == manifest_bytes(tmp_path / "ray")
    manifest = pl.read_parquet(tmp_path / "ray" / "manifest.parquet")
    assert set(manifest["dataset_id"]) == {"lung_atlas", "liver_atlas"}
    assert "blood" not in set(manifest["tissue"]) and manifest["selected"].sum() == 60
