"""Where the per-source work of a run happens: in this process (``local``) or as Ray tasks
(``ray``) on whatever cluster ``ray.init`` reaches. The only module that imports Ray.

A backend has one method, ``map(fn, items)``: ``fn(item)`` for every item, results yielded in
the order of ``items``. The local backend is a plain loop; the Ray backend submits each item as
a task (a few ahead of the one the caller is waiting for, so finished results do not pile up
in the object store), ``fn`` shipped once, and yields each result as soon as it and those
before it are done. What crosses to a task must pickle: a source's reader state (path, which
matrix holds the counts, obs names; never an open file) and small models. Each task limits
OpenMP (the native core's and FAISS's) and BLAS to the CPUs Ray gave it, so tasks side by
side never oversubscribe a node; Ray retries a task whose worker died (``max_retries``).

The backend in force is ambient (:func:`using`, :func:`current`): the jobs set it once from
their options, and the per-source loops deep in the stages (obs, obsm, counts hashes and QC,
the PCA projection) ask for it, so the embedder and scoring signatures stay as they are. A Ray
worker itself always runs its task locally. Callers that write each chunk where it belongs as
it is read (the projection, the hashes) keep that loop for the local backend
(``in_process``), so a local run holds no more than it did before Ray existed.
"""

from __future__ import annotations

import collections
import importlib.util
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from scurate.errors import InputError, OptionError, ScurateError

T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P")  # a piece as shipped (bytes of an index)
H = TypeVar("H")  # a piece as held (the index loaded from them)
log = logging.getLogger(__name__)

BACKENDS = ("local", "ray")
RAY_EXTRA = "pip install 'scurate[ray]'"
MAX_RETRIES = 3  # a task whose worker died (killed, out of memory) is run again this often
AHEAD = 2  # tasks in flight per CPU of the cluster beyond the one whose result is awaited


class Backend(Protocol):
    name: str
    in_process: bool  # fn runs in this process: a callback or a shared array may be closed over

    def map(
        self, fn: Callable[[T], R], items: Iterable[T], *, label: Callable[[T], str] = str
    ) -> Iterator[R]: ...

    def slots(self) -> int:
        """Tasks of this backend that run side by side."""
        ...

    def over_pieces(
        self,
        load: Callable[[P], H],
        pieces: Iterable[P],
        fn: Callable[[H, T], R],
        items: Iterable[T],
        *,
        label: Callable[[T], str] = str,
    ) -> Iterator[list[R]]:
        """``fn(load(piece), item)`` for every piece and every item: per item, in the order of
        ``items``, the list of its results in the order of ``pieces``. Each piece is loaded
        once and held while the items pass (on Ray: by an actor of its own), so a large object
        cut in pieces (an index) is spread over the cluster, not copied to every task."""
        ...


class Local:
    """Every item in this process, one after the other."""

    name = "local"
    in_process = True

    def map(
        self, fn: Callable[[T], R], items: Iterable[T], *, label: Callable[[T], str] = str
    ) -> Iterator[R]:
        return (fn(item) for item in items)

    def slots(self) -> int:
        return 1

    def over_pieces(
        self,
        load: Callable[[P], H],
        pieces: Iterable[P],
        fn: Callable[[H, T], R],
        items: Iterable[T],
        *,
        label: Callable[[T], str] = str,
    ) -> Iterator[list[R]]:
        held = [load(piece) for piece in pieces]
        return ([fn(one, item) for one in held] for item in items)


LOCAL = Local()
_current: ContextVar[Backend] = ContextVar("scurate_backend", default=LOCAL)


def current() -> Backend:
    """The backend the running job chose (local outside a job)."""
    return _current.get()


@contextmanager
def using(backend: Backend) -> Iterator[Backend]:
    """Run the block with ``backend`` as :func:`current`."""
    token = _current.set(backend)
    try:
        yield backend
    finally:
        _current.reset(token)


def check_backend(backend: str, ray_address: str | None) -> None:
    """``backend`` is local or ray; ``ray_address`` comes with ray only; ray needs Ray
    installed (one line naming the extra, before any work)."""
    if backend not in BACKENDS:
        msg = f"backend={backend!r}: expected {' or '.join(BACKENDS)}"
        raise OptionError(msg)
    if ray_address is not None and backend != "ray":
        msg = f"ray_address={ray_address!r}: needs backend='ray'"
        raise OptionError(msg)
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        msg = f"backend='ray': Ray is not installed ({RAY_EXTRA})"
        raise OptionError(msg)


def connect(backend: str, ray_address: str | None = None, *, cpus: int = 1) -> Backend:
    """The backend named: local, or Ray on the cluster at ``ray_address`` (default: a local
    Ray with ``cpus`` CPUs, or the one this process already started)."""
    if backend == "local":
        return LOCAL
    ray = _ray()

    if not ray.is_initialized():
        if ray_address is None:
            log.info("starting a local Ray with %d CPUs", cpus)
            ray.init(
                num_cpus=cpus,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        else:
            log.info("connecting to the Ray cluster at %s", ray_address)
            try:
                ray.init(address=ray_address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                msg = f"ray_address={ray_address!r}: cannot connect ({type(exc).__name__}: {exc})"
                raise OptionError(msg) from exc
    elif ray_address is not None:
        log.info("Ray already initialized in this process: ray_address=%s not used", ray_address)
    return RayBackend()


class RayBackend:
    """Each item a Ray task of ``cpus_per_task`` CPUs, results in order (see the module doc)."""

    name = "ray"
    in_process = False

    def __init__(self, cpus_per_task: int = 1, max_retries: int = MAX_RETRIES) -> None:
        self.cpus_per_task = cpus_per_task
        self.max_retries = max_retries

    def map(
        self, fn: Callable[[T], R], items: Iterable[T], *, label: Callable[[T], str] = str
    ) -> Iterator[R]:
        ray = _ray()
        task = ray.remote(_in_worker).options(
            num_cpus=self.cpus_per_task, max_retries=self.max_retries, retry_exceptions=False
        )
        slots = self.slots()
        window = slots * AHEAD + 1
        shipped = ray.put(fn)  # once, however many tasks: a PCA model goes to the store once
        todo = iter(items)
        pending: collections.deque[tuple[Any, str]] = collections.deque()

        def submit() -> None:
            for item in todo:
                pending.append((task.remote(shipped, item), label(item)))
                return

        for _ in range(window):
            submit()
        try:
            while pending:
                ref, name = pending.popleft()
                result = _result(ray, ref, name, self.max_retries)
                submit()
                yield result
        finally:  # an error, or the caller stopped: nothing keeps running for nobody
            for ref, _ in pending:
                ray.cancel(ref, force=True)

    def slots(self) -> int:
        return max(1, int(_ray().cluster_resources().get("CPU", 1)) // self.cpus_per_task)

    def over_pieces(
        self,
        load: Callable[[P], H],
        pieces: Iterable[P],
        fn: Callable[[H, T], R],
        items: Iterable[T],
        *,
        label: Callable[[T], str] = str,
    ) -> Iterator[list[R]]:
        ray = _ray()
        holder = ray.remote(_Holder).options(
            num_cpus=self.cpus_per_task,
            max_restarts=self.max_retries,  # a dead holder loads its piece again...
            max_task_retries=self.max_retries,  # ...and runs the calls it had not answered
        )
        # one piece in this process at a time, put in the object store; the refs are held here
        # until the last item is answered and go to each call boxed (fetched by the actor, not
        # by Ray): an actor restarted after its worker died loads its piece from them again
        stored = [[ray.put(piece)] for piece in pieces]
        actors = [holder.remote() for _ in stored]
        shipped, loader = ray.put(fn), ray.put(load)
        todo = iter(items)
        pending: collections.deque[tuple[list[Any], str]] = collections.deque()

        def submit() -> None:
            for item in todo:
                ref = ray.put(item)  # once for every piece
                calls = [
                    actor.call.remote(loader, boxed, shipped, ref)
                    for actor, boxed in zip(actors, stored, strict=True)
                ]
                pending.append((calls, label(item)))
                return

        try:
            for _ in range(AHEAD + 1):
                submit()
            while pending:
                refs, name = pending.popleft()
                results = [_result(ray, ref, name, self.max_retries) for ref in refs]
                submit()
                yield results
        finally:  # done, an error, or the caller stopped: the actors give their CPUs back
            for actor in actors:
                ray.kill(actor)


class _Holder:
    """A Ray actor holding one loaded piece (loaded at its first call, and again after a
    restart); its calls run with OpenMP and BLAS limited to the CPUs Ray gave it."""

    def __init__(self) -> None:
        import scurate  # noqa: F401  (scurate._env: OpenMP waits passively, set before it loads)

        self.held: Any = None

    def call(
        self,
        load: Callable[[Any], Any],
        boxed: list[Any],
        fn: Callable[[Any, Any], Any],
        item: Any,
    ) -> Any:
        from threadpoolctl import threadpool_limits

        assigned = _ray().get_runtime_context().get_assigned_resources().get("CPU", 1)
        with threadpool_limits(limits=max(1, int(assigned))):
            if self.held is None:
                self.held = load(_ray().get(boxed[0]))
            return fn(self.held, item)


def _result(ray: Any, ref: Any, name: str, retries: int) -> Any:
    """A task's result; its user error as the same one line the local path gives; a task
    that failed for good (its worker died more than ``retries`` times) as one line naming the
    item."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, ScurateError):
            raise cause from None
        raise
    except ray.exceptions.RayError as exc:
        msg = (
            f"{name}: its Ray task failed {retries + 1} times ({type(exc).__name__}); "
            "a worker may have run out of memory"
        )
        raise InputError(msg) from exc


def _ray() -> Any:
    """The ray module (imported here only, when a Ray backend is used)."""
    import ray

    return ray


def _in_worker(fn: Callable[[T], R], item: T) -> R:
    """In a Ray worker: ``fn(item)`` with OpenMP and BLAS threads limited to the CPUs Ray gave
    this task."""
    from threadpoolctl import threadpool_limits

    import scurate  # noqa: F401  (scurate._env: OpenMP waits passively, set before it loads)

    assigned = _ray().get_runtime_context().get_assigned_resources().get("CPU", 1)
    with threadpool_limits(limits=max(1, int(assigned))):
        return fn(item)
