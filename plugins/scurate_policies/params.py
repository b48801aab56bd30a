"""Reading a policy's numeric ``--param`` values, with one line naming the key when a value is
not what the policy takes."""

from __future__ import annotations

import numpy as np
from scurate import OptionError, SelectionContext


def number(ctx: SelectionContext, key: str, default: str, *, integer: bool = False) -> float:
    """``params[key]`` (or ``default``) as a positive number, or a positive integer."""
    text = ctx.param(key, default)
    try:
        value = float(int(text)) if integer else float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or not np.isfinite(value):
        kind = "a positive integer" if integer else "a positive number"
        msg = f"params[{key!r}]={text!r}: expected {kind}"
        raise OptionError(msg)
    return value


def non_negative(ctx: SelectionContext, key: str, default: str) -> float:
    """``params[key]`` (or ``default``) as a finite number >= 0."""
    text = ctx.param(key, default)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value >= 0 and np.isfinite(value)):
        msg = f"params[{key!r}]={text!r}: expected a number >= 0"
        raise OptionError(msg)
    return value
