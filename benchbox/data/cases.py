"""Case folders: one folder per case holding named modality files, described by TOML.

The layout of ``../shared/data/brats2015`` (BraTS) and of most in-house collections::

    <root>/<case>/Flair_subtrMeanDivStd.nii.gz
    <root>/<case>/T1c_subtrMeanDivStd.nii.gz
    <root>/<case>/OTMultiClass.nii.gz

A small declarative config says which file is which (``configs/brats2015.toml`` is the
reference)::

    name = "brats2015"                   # leaderboard slug (default: the folder name)
    root = "${BENCHBOX_DATA}/brats2015"  # data folder when the dataset is the config file
    cases = "*"                          # glob of case folder names
    fuse = ["FLAIR", "T1c"]              # sources a and b, two names of [modalities]
    label = "OTMultiClass.nii.gz"        # optional: unlabelled without it
    foreground = "brainmask.nii.gz"      # optional: mask for normalisation and crop

    [modalities]                         # name = glob of the file (or DICOM folder)
    FLAIR = "Flair_*.nii.gz"
    T1c = "T1c_*.nii.gz"

    [labels]                             # every value a label file may hold
    0 = "background"
    1 = "necrosis"

    [regions]                            # scored regions: label lists, or "> 0"
    whole-tumour = "> 0"
    tumour-core = [1, 3, 4]

    [preprocess]                         # any option of the dataset (see open_cases)
    norm = { FLAIR = "mri", T1c = "mri" }   # "ct", "mri" or "none" per modality

    [split]                              # case-level split
    seed = 0
    val_fraction = 0.2
    test_fraction = 0.2
    # test = ["case_a"]                  # explicit lists override the fractions

Options given on the command line (``--data-opt key=value``) override the config.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from benchbox.config.files import shipped
from benchbox.data import io
from benchbox.data.options import as_modalities
from benchbox.data.paths import expand_path, slugify
from benchbox.data.spec import CaseFiles, LabelSpec
from benchbox.data.volumes import VolumeDataset, open_volume_dataset, volume_options
from benchbox.errors import ConfigError, DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "CONFIG_NAMES",
    "discover_cases",
    "find_config",
    "label_spec",
    "load_config",
    "open_cases",
]

#: Config file names looked for in a data folder given without ``config=``.
CONFIG_NAMES = ("benchbox.toml", "dataset.toml")
_TOP_KEYS = {
    "name",
    "root",
    "cases",
    "fuse",
    "label",
    "foreground",
    "modalities",
    "labels",
    "regions",
    "preprocess",
    "sampling",
    "split",
    "description",
}
_SECTION_KEYS = {
    "preprocess": {
        "image_size",
        "norm",
        "ct_window",
        "percentiles",
        "crop",
        "crop_margin",
        "fit",
        "resample",
        "geometry_tolerance",
    },
    "sampling": {"slices_per_case", "lesion_fraction", "target"},
    "split": {"seed", "val_fraction", "test_fraction", "folds", "train", "val", "test"},
}


def find_config(value: str | Path) -> Path:
    """A config path as given, else a shipped config by name (``brats2015``, or
    ``configs/brats2015.toml`` written as in the repository: see
    :mod:`benchbox.config.files`)."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    found = shipped(path.name)
    if found is not None:
        return found
    raise DataError(f"case-folder config {value}: no such file")


def load_config(path: Path) -> dict[str, Any]:
    """Read and check a case-folder config.

    Raises:
        ConfigError: invalid TOML, unknown keys, or missing ``[modalities]``.
    """
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read case-folder config ({exc})") from exc
    unknown = sorted(set(config) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
    for section, keys in _SECTION_KEYS.items():
        extra = sorted(set(config.get(section, {})) - keys)
        if extra:
            raise ConfigError(f"{path}: unknown key(s) in [{section}]: {', '.join(extra)}")
    mods = config.get("modalities")
    if not isinstance(mods, dict) or len(mods) < 2:
        raise ConfigError(f"{path}: [modalities] must name at least two modality file patterns")
    if config.get("label") and not config.get("labels"):
        raise ConfigError(f"{path}: a label file needs a [labels] table (value = name)")
    return config


def label_spec(config: dict[str, Any], path: Path) -> LabelSpec | None:
    """The ``[labels]`` and ``[regions]`` tables as a :class:`LabelSpec`."""
    if not config.get("label"):
        return None
    try:
        values = {int(k): str(v) for k, v in config["labels"].items()}
    except ValueError:
        raise ConfigError(f"{path}: [labels] keys must be integer label values") from None
    regions: dict[str, tuple[int, ...]] = {}
    for region, members in config.get("regions", {}).items():
        if isinstance(members, str):
            text = members.replace(" ", "")
            if text not in (">0", "labels>0"):
                raise ConfigError(f"{path}: region {region} = {members!r}: use a list or '> 0'")
            regions[region] = tuple(v for v in sorted(values) if v > 0)
        elif isinstance(members, list) and all(isinstance(m, int) for m in members) and members:
            regions[region] = tuple(members)
        else:
            raise ConfigError(f"{path}: region {region} must be a list of label values")
    return LabelSpec(values, regions)


def _match(folder: Path, pattern: str, what: str) -> Path:
    hits = sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))
    if not hits:
        raise DataError(f"case {folder.name!r}: missing {what} file ({folder / pattern})")
    if len(hits) > 1:
        names = ", ".join(p.name for p in hits[:4])
        raise DataError(f"case {folder.name!r}: {what} pattern {pattern!r} matches {names}")
    if not io.is_image_path(hits[0]):
        raise DataError(f"{hits[0]}: not an image file or DICOM folder ({what})")
    return hits[0]


def discover_cases(root: Path, config: dict[str, Any]) -> list[CaseFiles]:
    """The case folders under ``root`` with their files; every declared file must exist.

    Raises:
        DataError: no case folder, or a case lacking a modality or label file.
    """
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder")
    folders = sorted(
        p
        for p in root.glob(str(config.get("cases", "*")))
        if p.is_dir() and not p.name.startswith(".")
    )
    if not folders:
        raise DataError(
            f"{root}: empty dataset, no case folder matches {config.get('cases', '*')!r}"
        )
    cases = []
    for folder in folders:
        images = {
            m: _match(folder, str(pat), f"modality {m}") for m, pat in config["modalities"].items()
        }
        label = _match(folder, str(config["label"]), "label") if config.get("label") else None
        fg = (
            _match(folder, str(config["foreground"]), "foreground")
            if config.get("foreground")
            else None
        )
        cases.append(CaseFiles(folder.name, images, label, fg))
    return cases


def open_cases(
    root: str | None = None,
    config: str | None = None,
    image_size: int | None = None,
    seed: int = 0,
    resample: bool | None = None,
    modalities: str | None = None,
    target: str | None = None,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    split_seed: int | None = None,
    folds: int | None = None,
    fold: int | None = None,
    slices_per_case: int | None = None,
    lesion_fraction: float | None = None,
    ct_window: str | None = None,
    percentiles: str | None = None,
    crop: bool | None = None,
    crop_margin: int | None = None,
    fit: str | None = None,
    geometry_tolerance: float | None = None,
    name: str | None = None,
    cache: bool = True,
) -> VolumeDataset:
    """Case folders described by a TOML config (``cases:<config.toml>`` or ``cases:<dir>``).

    Args:
        root: the config file (its ``root`` key names the data folder), a shipped config
            name (``brats2015``), or the data folder (then ``config`` or a
            ``benchbox.toml`` inside it gives the config).
        config: the config file when ``root`` is the data folder.
        image_size: side of the square training slices.
        seed: the run seed; picks the training slices (not the split).
        resample: resample modalities/labels whose grid differs from modality ``a``.
        modalities: the two fused modalities ``"A,B"`` (default: ``fuse`` of the config).
        target: train on one region or label as a binary task (e.g. ``whole-tumour``).
        val_fraction, test_fraction, split_seed, folds, fold, slices_per_case, lesion_fraction,
            ct_window, percentiles, crop, crop_margin, fit, geometry_tolerance: the
            shared dataset options (:data:`benchbox.data.options.OPTIONS`); ``None``
            takes the config's value (``[preprocess]``, ``[sampling]``, ``[split]``),
            else the default declared there.
        name: the leaderboard slug (default: the config's ``name``).
        cache: use the preprocessing cache (``BENCHBOX_CACHE``).
    """
    arguments = dict(locals())  # the options among them: volume_options()
    if root is None:
        raise ConfigError("dataset 'cases' needs a config or folder: --dataset cases:<config.toml>")
    given = Path(str(root)).expanduser()
    if given.is_dir():
        data_root = given
        inside = [given / n for n in CONFIG_NAMES if (given / n).is_file()]
        if config is None and not inside:
            raise DataError(
                f"{given}: no case-folder config; pass --data-opt config=<file.toml> "
                f"or put a {CONFIG_NAMES[0]} in the folder"
            )
        cfg_path = find_config(config) if config is not None else inside[0]
        cfg = load_config(cfg_path)
    else:
        cfg_path = find_config(str(root))
        cfg = load_config(cfg_path)
        if not cfg.get("root"):
            raise ConfigError(f"{cfg_path}: no 'root' key; use --dataset cases:<data folder>")
        data_root = expand_path(str(cfg["root"]), cfg_path.parent)

    spec = label_spec(cfg, cfg_path)
    declared = list(cfg["modalities"])
    fused = as_modalities(modalities if modalities is not None else cfg.get("fuse", declared[:2]))
    for mod in fused:
        if mod not in declared:
            raise ConfigError(
                f"modality {mod!r} is not declared in {cfg_path} (declared: {', '.join(declared)})"
            )
    pre, sampling, split = cfg.get("preprocess", {}), cfg.get("sampling", {}), cfg.get("split", {})
    norms = {str(k): str(v) for k, v in pre.get("norm", {}).items()}
    defaults = {
        **{k: v for k, v in pre.items() if k != "norm"},
        **sampling,
        "val_fraction": split.get("val_fraction"),
        "test_fraction": split.get("test_fraction"),
        "split_seed": split.get("seed"),
        "folds": split.get("folds"),
    }
    options = volume_options(arguments, defaults)
    fixed = {k: [str(c) for c in split[k]] for k in ("train", "val", "test") if split.get(k)}
    cases = discover_cases(data_root, cfg)
    return open_volume_dataset(
        name=name or str(cfg.get("name") or slugify(data_root.name)),
        layout="cases",
        root=data_root,
        cases=cases,
        modalities=fused,
        labels=spec,
        norms=norms,
        options=options,
        seed=seed,
        cache=cache,
        fixed_splits=fixed,
        source={"config": str(cfg_path), "declared_modalities": declared},
    )
