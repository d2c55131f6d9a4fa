"""What a case is made of and how it is preprocessed: the inputs of the volume pipeline.

* :class:`CaseFiles`: the files of one case, as a layout reader finds them;
* :class:`LabelSpec`: the label values a dataset declares and the regions to score;
* :class:`Preprocessing`: the parameters that change the preprocessed arrays (part of
  the cache key).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchbox.errors import ConfigError

__all__ = ["NORMS", "CaseFiles", "LabelSpec", "Preprocessing", "default_norm"]

NORMS = ("ct", "mri", "none")


@dataclass
class CaseFiles:
    """The files of one case.

    Attributes:
        case_id: the case's name, unique in the dataset.
        images: modality name -> image file or DICOM series folder (every modality the
            layout declares; only the two fused ones are read).
        label: the label file, or ``None`` for an unlabelled case.
        foreground: an optional mask file (e.g. a brain mask) for normalisation and crop.
    """

    case_id: str
    images: dict[str, Path]
    label: Path | None = None
    foreground: Path | None = None


@dataclass
class Preprocessing:
    """The parameters that change the preprocessed arrays (part of the cache key).

    Attributes:
        image_size: the side of the square training slices.
        fit: ``"resize"`` scales the crop's longer side to ``image_size``; ``"pad"``
            only pads (and scales down a crop that does not fit).
        norms: modality -> ``"ct"`` (HU window), ``"mri"`` (percentiles) or ``"none"``
            (values already in ``[0, 1]``, clipped).
        ct_window: the HU window mapped to ``[0, 1]``.
        percentiles: the MRI percentiles mapped to 0 and 1, within the foreground.
        crop: crop to the foreground's bounding box (in 3D) before fitting.
        crop_margin: voxels kept around the foreground.
        resample: resample a modality, label or foreground mask whose grid differs from
            the reference modality (``a``) onto it, instead of failing.
        geometry_tolerance: see :func:`benchbox.data.io.compare_geometry`.
    """

    image_size: int = 128
    fit: str = "resize"
    norms: dict[str, str] = field(default_factory=dict)
    ct_window: tuple[float, float] = (-1000.0, 1000.0)
    percentiles: tuple[float, float] = (0.5, 99.5)
    crop: bool = True
    crop_margin: int = 2
    resample: bool = False
    geometry_tolerance: float = 1e-3

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, int) or self.image_size < 16:
            raise ConfigError(f"image_size must be an integer >= 16, got {self.image_size!r}")
        if self.fit not in ("resize", "pad"):
            raise ConfigError(f"fit must be 'resize' or 'pad', not {self.fit!r}")
        for mod, norm in self.norms.items():
            if norm not in NORMS:
                raise ConfigError(f"normalisation of {mod} must be one of {NORMS}, not {norm!r}")
        lo, hi = self.percentiles
        if not 0 <= lo < hi <= 100:
            raise ConfigError(f"percentiles must satisfy 0 <= low < high <= 100, got {lo}, {hi}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_norm(modality: str) -> str:
    """``"ct"`` for a modality named CT (any case), else ``"mri"``."""
    return "ct" if modality.strip().upper() in ("CT", "CECT", "NCCT") else "mri"


@dataclass(frozen=True)
class LabelSpec:
    """The label values of a dataset and the regions to score.

    Attributes:
        values: label value in the files -> name; must hold 0 (background).
        regions: region name -> the label values it unites.
    """

    values: Mapping[int, str]
    regions: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if 0 not in self.values:
            raise ConfigError("labels must include 0, the background")
        if min(self.values) < 0 or max(self.values) > 65535:
            raise ConfigError("label values must be within 0..65535")
        for region, members in self.regions.items():
            unknown = sorted(set(members) - set(self.values))
            if unknown:
                raise ConfigError(f"region {region!r} names undeclared labels {unknown}")

    @property
    def sorted_values(self) -> list[int]:
        return sorted(self.values)
