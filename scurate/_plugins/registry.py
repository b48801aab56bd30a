"""Plugin discovery: entry points of the ``scurate`` group, where one failure never hides the
others, and the registries that each hook fills."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy

from scurate._plugins import hookspecs
from scurate.errors import PluginError, ScurateError

ENTRY_POINT_GROUP = "scurate"
KINDS = {
    "policies": "scurate_register_policies",
    "harmonizers": "scurate_register_harmonizers",
    "embedders": "scurate_register_embedders",
    "sources": "scurate_register_sources",
}
SINGULAR = {
    "policies": "policy",
    "harmonizers": "harmonizer",
    "embedders": "embedder",
    "sources": "source reader",
}


@contextlib.contextmanager
def calling(who: str) -> Iterator[None]:
    """Call into a plugin (``who`` names it: "policy 'x' (plugin 'y')"): a ScurateError passes
    as the plugin's own one-line message; any other exception, ``sys.exit`` included, becomes a
    :class:`PluginError` naming the plugin, never a traceback or a silent exit."""
    try:
        yield
    except ScurateError:
        raise
    except SystemExit as exc:  # a plugin must not end the run in silence, nor with its code
        msg = f"{who} called sys.exit({exc.code!r})"
        raise PluginError(msg) from exc
    except Exception as exc:
        msg = f"{who} failed: {type(exc).__name__}: {exc}"
        raise PluginError(msg) from exc


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that failed to load or whose hook raised, with its error on one line."""

    plugin: str
    error: str

    def __str__(self) -> str:
        return f"plugin '{self.plugin}' failed ({self.error})"


@dataclass(frozen=True)
class Registered:
    """One thing a plugin registered: a policy, harmonizer, embedder or source reader."""

    name: str
    plugin: str
    obj: Any
    summary: str = ""


@dataclass
class PluginInfo:
    """What ``scurate plugins`` shows for one plugin."""

    name: str
    version: str | None
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Loaded:
    """The plugin manager after discovery, with what failed and where each plugin came from."""

    pm: pluggy.PluginManager
    failures: list[PluginFailure]
    versions: dict[str, str | None]
    first_party: frozenset[str]  # plugins shipped in scurate's own distribution


def load_plugins(extra: dict[str, object] | None = None) -> Loaded:
    """Register every entry point of the ``scurate`` group, and ``extra`` modules by name."""
    pm = pluggy.PluginManager("scurate")
    pm.add_hookspecs(hookspecs)
    failures: list[PluginFailure] = []
    versions: dict[str, str | None] = {}
    first_party: set[str] = set()
    for ep in sorted(
        importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
    ):
        if pm.has_plugin(ep.name) or ep.name in versions:
            continue  # the same distribution seen twice on sys.path
        dist = ep.dist
        versions[ep.name] = None if dist is None else dist.version
        if dist is not None and dist.name == "scurate":
            first_party.add(ep.name)
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # noqa: BLE001 - a plugin must not take the others down
            failures.append(PluginFailure(ep.name, f"{type(exc).__name__}: {exc}"))
    for name, module in (extra or {}).items():
        versions.setdefault(name, None)
        try:
            pm.register(module, name=name)
        except Exception as exc:  # noqa: BLE001
            failures.append(PluginFailure(name, f"{type(exc).__name__}: {exc}"))
    return Loaded(pm, failures, versions, frozenset(first_party))


def _register(
    found: dict[str, Registered], plugin: str, name: str, obj: Any, *, summary: str = ""
) -> None:
    if not isinstance(name, str) or not name:
        msg = f"registered a name that is not a non-empty string: {name!r}"
        raise TypeError(msg)
    if not callable(obj):
        msg = f"registered '{name}' as {type(obj).__name__}, which is not callable"
        raise TypeError(msg)
    if name in found:
        msg = f"'{name}' is already registered by plugin '{found[name].plugin}'"
        raise ValueError(msg)
    found[name] = Registered(name, plugin, obj, summary)


def collect(
    pm: pluggy.PluginManager, hook: str, first: frozenset[str] = frozenset()
) -> tuple[dict[str, Registered], list[PluginFailure]]:
    """Call one hook plugin by plugin, so that an error names the plugin that raised it.

    Plugins named in ``first`` (scurate's own) register first, then the others by name, so a
    third-party plugin cannot take a built-in name.
    """
    found: dict[str, Registered] = {}
    failures: list[PluginFailure] = []
    impls = sorted(
        getattr(pm.hook, hook).get_hookimpls(),
        key=lambda i: (i.plugin_name not in first, i.plugin_name),
    )
    for impl in impls:
        register: Callable[..., None] = functools.partial(_register, found, impl.plugin_name)
        try:
            impl.function(register=register)
        except Exception as exc:  # noqa: BLE001 - a plugin must not take the others down
            failures.append(PluginFailure(impl.plugin_name, f"{type(exc).__name__}: {exc}"))
    return found, failures


@dataclass
class Plugins:
    """Everything the installed plugins provide, and what failed on the way."""

    registries: dict[str, dict[str, Registered]]
    failures: list[PluginFailure]
    info: list[PluginInfo]

    def get(self, kind: str, name: str, *, option: str) -> Registered:
        """The registered ``name`` of ``kind``, or a one-line error naming ``option`` (the
        parameter that named it: ``policy``, ``embedder``...)."""
        registry = self.registries[kind]
        if name in registry:
            return registry[name]
        for failure in self.failures:
            if failure.plugin == name:
                msg = f"{option}={name!r}: {failure}"
                raise PluginError(msg)
        available = ", ".join(sorted(registry)) or "none"
        broken = "".join(f"; {f}" for f in self.failures)
        msg = (
            f"{option}={name!r} is not a registered {SINGULAR[kind]} "
            f"(available: {available}){broken}"
        )
        raise PluginError(msg)


def discover(extra: dict[str, object] | None = None) -> Plugins:
    """Load every plugin and collect what each hook registers."""
    loaded = load_plugins(extra)
    pm, failures, versions = loaded.pm, loaded.failures, loaded.versions
    infos = {
        name: PluginInfo(name, versions.get(name))
        for name, _ in pm.list_name_plugin()
        if name is not None
    }
    for failure in failures:
        infos[failure.plugin] = PluginInfo(failure.plugin, versions.get(failure.plugin))
        infos[failure.plugin].error = failure.error
    registries: dict[str, dict[str, Registered]] = {}
    for kind, hook in KINDS.items():
        found, hook_failures = collect(pm, hook, loaded.first_party)
        registries[kind] = found
        failures.extend(hook_failures)
        for impl in getattr(pm.hook, hook).get_hookimpls():
            infos[impl.plugin_name].hooks.append(hook)
        for item in found.values():
            infos[item.plugin].provides.setdefault(kind, []).append(item.name)
        for failure in hook_failures:
            infos[failure.plugin].error = failure.error
    return Plugins(registries, failures, sorted(infos.values(), key=lambda i: i.name))
