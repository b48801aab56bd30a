"""The errors a user can cause: each is one line naming the file, column or option."""

from __future__ import annotations


class ScurateError(Exception):
    """A mistake in what the user gave scurate; the CLI prints it as one line and exits 1."""


class InputError(ScurateError):
    """A source file, column or embedding that cannot be used as it is."""


class OptionError(ScurateError):
    """An option value that cannot work with the given inputs (budget, policy, ...)."""


class PluginError(ScurateError):
    """A plugin that failed to load or returned something a plugin must not."""
