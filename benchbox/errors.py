"""The errors a user can cause. The CLI turns each into one line on stderr and exit 1."""

from __future__ import annotations

from collections.abc import Iterable


class BenchboxError(Exception):
    """Base class of every error that benchbox reports to the user as one clear line."""


class PluginError(BenchboxError):
    """A plugin could not be loaded or registered something invalid."""


class DuplicatePluginError(PluginError):
    """Two providers registered the same name for the same kind."""


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
