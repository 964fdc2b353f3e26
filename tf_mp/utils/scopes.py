"""Scopes that may be absent."""

import contextlib


def optional_scope(distribution):
    """`distribution.scope()`, or a context that does nothing for `None`."""
    return (
        distribution.scope() if distribution is not None else contextlib.nullcontext()
    )
