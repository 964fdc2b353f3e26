"""The settings `search_student` groups: what a student may cost (`Budget`)
and what the teacher's knowledge transfers through (`TransferData`)."""

import dataclasses
import warnings

from tf_mp.utils.checks import check_number

# The value of the `transfer` hyperparameter that trains on `train` alone.
NO_TRANSFER = "none"


@dataclasses.dataclass(frozen=True)
class Budget:
    """What a student may cost. A trial whose student is over budget fails
    before any training, with its figures in the reason.

    Args:
        max_params: largest number of student *encoder* parameters
            (embeddings and head excluded, as in
            `tf_mp.distillation.encoder_parameters`).
        max_latency_ms: largest student latency at batch 1, in ms per
            example, measured on this machine.
    """

    max_params: float | None = None
    max_latency_ms: float | None = None

    def __post_init__(self):
        for name in ("max_params", "max_latency_ms"):
            value = getattr(self, name)
            check_number(name, value, low=0, low_open=True, optional=True)


@dataclasses.dataclass(frozen=True)
class TransferData:
    """What the teacher's knowledge transfers through: its outputs on the
    search's rows, and sets of unlabelled rows it labels.

    Args:
        sets: optional `{name: unlabelled inputs}`: rows without labels (more
            of the task's text, or `augment`ed copies of the training texts),
            tokenized like `train`'s inputs: arrays, a dict of arrays or a
            dataset of input batches. The search then tunes a `"transfer"`
            hyperparameter: `"none"` or one set's name, whose rows the teacher
            labels, mixed with `train`'s rows (see `TransferChoices`: the
            labels loss stays a mean over labelled rows, and an epoch keeps
            `train`'s number of steps).
        cache: run the teacher once per search (per process) and share its
            outputs for `train`, `validation` and `sets` with every trial
            (a `TeacherCache`). The cached `train` is served in the order of
            that one pass, in every epoch of every trial. `False` runs the
            teacher in every step instead (a `train` that reshuffles each
            epoch is then reshuffled).
        cache_directory: optional directory for the cache: it scores a chunk
            of rows at a time and keeps the outputs on disk (memory stays
            bounded with many augmented rows), and later searches or Keras
            Tuner workers on the same data reuse them.
    """

    sets: dict | None = None
    cache: bool = True
    cache_directory: str | None = None

    def __post_init__(self):
        _check_sets(self.sets)
        if not isinstance(self.cache, bool):
            raise TypeError(
                f"`cache` must be True or False. Received: cache={self.cache!r}"
            )
        if self.cache_directory is not None and not self.cache:
            raise ValueError(
                "`cache_directory` keeps the teacher's cached outputs: it needs "
                f"cache=True. Received: cache_directory={self.cache_directory!r}, "
                "cache=False"
            )

    @property
    def names(self):
        """The names of `sets`, in order."""
        return list(self.sets or ())


def _check_sets(sets):
    if sets is None:
        return
    if not isinstance(sets, dict) or not sets:
        raise TypeError(
            "`sets` must be a non-empty dict `{name: unlabelled inputs}`, e.g. "
            f"{{'augmented': x}}. Received: sets of type {type(sets).__name__}"
        )
    for name in sets:
        if not isinstance(name, str) or not name or name == NO_TRANSFER:
            raise ValueError(
                f"`sets` names must be strings other than {NO_TRANSFER!r} (the "
                f"choice without transfer rows). Received: {name!r}"
            )


# Keywords `search_student` took before `Budget` and `TransferData` grouped
# them, accepted with a `DeprecationWarning` for one release.
_BUDGET_KEYWORDS = ("max_params", "max_latency_ms")
_TRANSFER_KEYWORDS = {"teacher_cache": "cache", "cache_directory": "cache_directory"}


def grouped(budget, transfer_data, keywords):
    """`(budget, transfer_data)` from `search_student`'s arguments: the old
    keywords, popped from `keywords`, fold into the new objects (with a
    `DeprecationWarning`; an error when both forms are given)."""
    old = {
        k: keywords.pop(k)
        for k in (*_BUDGET_KEYWORDS, *_TRANSFER_KEYWORDS)
        if k in keywords
    }
    if isinstance(transfer_data, dict):
        old["transfer_data"] = transfer_data
        transfer_data = None
    if old:
        warnings.warn(
            f"search_student's {sorted(old)} are deprecated: pass "
            "`budget=tf_mp.automl.Budget(max_params=..., max_latency_ms=...)` "
            "and `transfer_data=tf_mp.automl.TransferData(sets=..., cache=..., "
            "cache_directory=...)`.",
            DeprecationWarning,
            stacklevel=3,
        )
    budget = _fold(
        budget, Budget, "budget", {k: (k, old[k]) for k in _BUDGET_KEYWORDS if k in old}
    )
    fields = {new: (k, old[k]) for k, new in _TRANSFER_KEYWORDS.items() if k in old}
    if "transfer_data" in old:
        fields["sets"] = ("transfer_data", old["transfer_data"])
    transfer_data = _fold(transfer_data, TransferData, "transfer_data", fields)
    return budget, transfer_data


def _fold(given, kind, argument, fields):
    """`given`, or a `kind` of `fields` (`{field: (old keyword, value)}`)."""
    if given is not None and fields:
        raise ValueError(
            f"Pass either `{argument}` or the deprecated keywords "
            f"{sorted(old for old, _ in fields.values())}, not both."
        )
    fields = {name: value for name, (_, value) in fields.items()}
    if given is None:
        return kind(**fields)
    if not isinstance(given, kind):
        raise TypeError(
            f"`{argument}` must be a `tf_mp.automl.{kind.__name__}`. "
            f"Received: {argument}={given!r}"
        )
    return given
