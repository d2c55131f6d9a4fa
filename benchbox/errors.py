"""The errors a user can cause. The CLI turns each into one line on stderr and exit 1."""

from __future__ import annotations

import traceback
from collections.abc import Iterable

__all__ = [
    "BenchboxError",
    "ConfigError",
    "DataError",
    "DataWarning",
    "DuplicatePluginError",
    "MetricInputError",
    "PluginBugError",
    "PluginError",
    "PluginWarning",
    "TrainingDivergedError",
    "UnknownComponentError",
    "UnknownDatasetError",
    "UnknownExecutorError",
    "UnknownFusionError",
    "UnknownKindError",
    "UnknownLossError",
    "UnknownMetricError",
    "UnknownRegionError",
    "UnknownSegmenterError",
    "UnknownTrackerError",
    "UnknownTransformError",
    "WeightsError",
    "WriteError",
    "describe",
    "is_out_of_memory",
]


class BenchboxError(Exception):
    """Base class of every error that benchbox reports to the user as one clear line."""


class PluginError(BenchboxError):
    """A plugin could not be loaded or registered something invalid."""


class DuplicatePluginError(PluginError):
    """Two providers registered the same name for the same kind, and a run uses it."""


class PluginBugError(PluginError):
    """A plugin's own code raised (a constructor, ``forward`` or metric), not the user.

    The message names the component, its provider and the exception in one line; the
    original exception is chained (``__cause__``) so ``--debug`` can show its traceback.
    """


class PluginWarning(UserWarning):
    """A plugin problem that does not stop the command (e.g. an unknown name in
    ``BENCHBOX_PLUGINS``, a metric left out because it raised)."""


class DataWarning(PluginWarning):
    """Input files a dataset can read but that are probably not what the user meant
    (e.g. one colour image among greyscale ones). A :class:`PluginWarning`, since every
    dataset is a plugin's, so that commands show it as one ``warning:`` line too."""


class UnknownKindError(BenchboxError):
    """A component kind that does not exist (e.g. ``--kind fusions``)."""


class UnknownComponentError(BenchboxError):
    """A lookup for a name that no loaded plugin registered."""

    kind = "component"

    def __init__(self, name: str, suggestions: Iterable[str] = (), available: int = 0) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        msg = f"unknown {self.kind} {name!r}"
        if self.suggestions:
            msg += "; did you mean " + ", ".join(repr(s) for s in self.suggestions) + "?"
        elif available:
            msg += f" (see `benchbox plugins --kind {self.kind}` for the {available} available)"
        else:
            msg += f" (no {self.kind} is registered)"
        super().__init__(msg)


class UnknownFusionError(UnknownComponentError):
    kind = "fusion"


class UnknownSegmenterError(UnknownComponentError):
    kind = "segmenter"


class UnknownLossError(UnknownComponentError):
    kind = "loss"


class UnknownDatasetError(UnknownComponentError):
    kind = "dataset"


class UnknownMetricError(UnknownComponentError):
    kind = "metric"


class UnknownExecutorError(UnknownComponentError):
    kind = "executor"


class UnknownTrackerError(UnknownComponentError):
    kind = "tracker"


class UnknownTransformError(UnknownComponentError):
    kind = "transform"


class UnknownRegionError(UnknownComponentError):
    kind = "region"


class UnknownDistillerError(UnknownComponentError):
    kind = "distiller"


class ConfigError(BenchboxError):
    """An invalid option, parameter or config file value."""


class DataError(BenchboxError):
    """Bad input data: missing or corrupt file, mismatched geometry, empty dataset..."""


class WeightsError(BenchboxError):
    """A weights file that cannot be loaded into a model."""


class MetricInputError(BenchboxError, ValueError):
    """A metric was given arguments it cannot score (shape, dtype, NaN, spacing)."""


class TrainingDivergedError(BenchboxError):
    """The loss became NaN or infinite during training."""


class WriteError(BenchboxError, OSError):
    """A file could not be written (full disk, no permission, read-only folder...).

    Its message is one line, ``<reason> writing <path>``; ``errno`` and ``filename`` are
    those of the underlying ``OSError``, so ``except OSError`` still catches it.
    """

    def __init__(self, message: str, code: int | None = None, filename: str | None = None):
        OSError.__init__(self, code, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[WriteError], tuple[str, int | None, str | None]]:
        return (type(self), (self.message, self.errno, self.filename))


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure, on any device: the one test used
    everywhere (a plugin is never blamed for one, ``benchbox bench`` retries it).

    That is Python's ``MemoryError``, PyTorch's ``OutOfMemoryError`` (CUDA; matched by
    class name, so torch is not imported here), or the ``RuntimeError`` of an allocator
    that does not raise that class: the CPU allocator's "can't allocate memory" and
    other backends' "out of memory" (MPS).
    """
    if isinstance(exc, MemoryError):
        return True
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def describe(exc: BaseException, package: str | None = None) -> str:
    """One line for an exception: its type, first message line and where it was raised.

    Args:
        exc: the exception.
        package: a top-level module name (``my_fusion``); when given, the place shown is
            the innermost frame in that package's code rather than in a library it called.
    """
    frames: list[traceback.FrameSummary] = list(traceback.extract_tb(exc.__traceback__))
    if package is not None:
        own = [
            f
            for f, (frame, _) in zip(frames, traceback.walk_tb(exc.__traceback__), strict=False)
            if str(frame.f_globals.get("__name__", "")).split(".")[0] == package
        ]
        frames = own or frames
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip()
    msg = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {msg}{where}" if msg else f"{type(exc).__name__}{where}"
