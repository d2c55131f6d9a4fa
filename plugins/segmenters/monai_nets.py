"""MONAI's segmentation networks as benchbox segmenters (``monai-<arch>``), 2D or 3D.

One :class:`MonaiSegmenter` factory per architecture of ``monai.networks.nets``, in the
spirit of ``smp-<arch>``: the MONAI model itself is built (no wrapper, so its state dict
is MONAI's own), with every constructor argument of the class a segmenter parameter
(``--seg-opt channels=[16,32,64]``) except those the run sets: ``spatial_dims`` (2, or 3
with ``--patch-size``), ``in_channels``, ``out_channels`` and, for UNETR, ``img_size``
(the training patch). The defaults are MONAI's, except where :data:`ARCHS` sizes a
network for a CPU (``benchbox plugins --params monai-unet`` shows the values used).

Input sizes are checked before each forward pass, with one line naming what divides
(:func:`input_multiple`): the windows of a 3D run and the slices of a 2D run have the
training size, so this only catches a patch size the network cannot take.

``monai-dynunet`` is nnU-Net's architecture (MONAI's ``DynUNet``) configured as
nnU-Net's planner configures it: kernel sizes and strides from the patch size and the
spacing (:mod:`benchbox_plugins.segmenters.dynunet_plan`), ``filters_base * 2**stage``
feature maps capped at ``max_filters``, instance norm and leaky ReLU (0.01). Two
differences from nnU-Net: no deep supervision (the segmenter contract has one output),
and the spacing is ``--spacing`` (isotropic 1 mm when not given) rather than the
dataset's median, so the network is rebuilt from the run's config alone.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from benchbox import ConfigError

__all__ = ["ARCHS", "MonaiSegmenter", "input_multiple"]

#: name -> (MONAI class, benchbox's defaults over MONAI's, one-line description).
ARCHS: Mapping[str, tuple[str, Mapping[str, Any], str]] = {
    "unet": (
        "UNet",
        {"channels": (16, 32, 64, 128), "strides": (2, 2, 2), "num_res_units": 1},
        "MONAI UNet: residual U-Net (Kerfoot et al., 2018)",
    ),
    "basicunet": (
        "BasicUNet",
        {"features": (16, 16, 32, 64, 128, 16)},
        "MONAI BasicUNet: a plain U-Net with four downsamplings",
    ),
    "segresnet": (
        "SegResNet",
        {"init_filters": 8},
        "MONAI SegResNet: residual encoder-decoder (Myronenko, BraTS 2018)",
    ),
    "swinunetr": (
        "SwinUNETR",
        {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (3, 6, 12, 24)},
        "MONAI SwinUNETR: Swin transformer encoder, CNN decoder (Hatamizadeh et al., 2022)",
    ),
    "unetr": (
        "UNETR",
        {"feature_size": 8, "hidden_size": 192, "mlp_dim": 384, "num_heads": 4},
        "MONAI UNETR: ViT encoder on 16-voxel patches, CNN decoder (Hatamizadeh et al., 2022)",
    ),
    "attentionunet": (
        "AttentionUnet",
        {"channels": (16, 32, 64, 128), "strides": (2, 2, 2)},
        "MONAI AttentionUnet: U-Net with attention gates (Oktay et al., 2018)",
    ),
}
#: Constructor arguments the run sets (or, for ``norm_layer``, a class, that a command
#: line cannot write). SwinUNETR's own ``patch_size`` (its patch embedding, 2 voxels) is
#: left at MONAI's default: the name is the run's training patch here.
_HIDDEN = frozenset(
    {"self", "spatial_dims", "in_channels", "out_channels", "img_size", "norm_layer", "patch_size"}
)
#: Architectures whose forward and backward pass on the contract's tiny inputs takes
#: more than about a second on a CPU (``monai-dynunet`` too: nnU-Net's 32 to 320 maps).
SLOW = frozenset({"swinunetr", "unetr", "dynunet"})


def _monai_class(class_name: str) -> type:
    try:
        from monai.networks import nets
    except ImportError as exc:
        raise ConfigError(
            f"MONAI is not installed ({exc}); the monai-* segmenters need it: "
            "pip install 'monai>=1.4'"
        ) from None
    cls: type = getattr(nets, class_name)
    return cls


def input_multiple(arch: str, params: Mapping[str, Any], dims: int) -> int | None:
    """What every spatial side of an input must be divisible by (``None``: UNETR, whose
    input must be its ``img_size`` exactly)."""
    if arch in ("unet", "attentionunet"):
        return math.prod(int(s) for s in params["strides"])
    if arch == "basicunet":
        return 16
    if arch == "segresnet":
        return 2 ** (len(params.get("blocks_down", (1, 2, 2, 4))) - 1)
    if arch == "swinunetr":
        return 2 * 2 ** len(params.get("depths", (2, 2, 2, 2)))
    return None


def _required(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` requires the argument ``name`` (it has no default)."""
    param = inspect.signature(cls.__init__).parameters.get(name)  # type: ignore[misc]
    return param is not None and param.default is param.empty


class MonaiSegmenter:
    """The factory of ``monai-<arch>``: ``factory(in_channels, num_classes, spatial_dims,
    patch_size, **arch_params)`` builds the MONAI network."""

    def __init__(self, arch: str) -> None:
        self.arch = arch
        self.class_name, self.defaults, self.__doc__ = ARCHS[arch]
        self.__name__ = f"monai_{arch}"
        self.__module__ = __name__

    @property
    def __signature__(self) -> inspect.Signature:  # type: ignore[override]
        cls = _monai_class(self.class_name)
        params = [
            inspect.Parameter("in_channels", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("num_classes", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("spatial_dims", inspect.Parameter.KEYWORD_ONLY, default=3),
            inspect.Parameter("patch_size", inspect.Parameter.KEYWORD_ONLY, default=None),
        ]
        for p in inspect.signature(cls.__init__).parameters.values():  # type: ignore[misc]
            if p.name in _HIDDEN or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            default = self.defaults.get(p.name, p.default)
            params.append(
                inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=default)
            )
        return inspect.Signature(params)

    def __call__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        spatial_dims: int = 3,
        patch_size: Sequence[int] | None = None,
        **params: Any,
    ) -> Any:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
        cls = _monai_class(self.class_name)
        sig = self.__signature__
        missing = [p.name for p in sig.parameters.values() if p.default is p.empty]
        missing = [n for n in missing if n not in ("in_channels", "num_classes")]
        if missing:  # pragma: no cover - every required argument has a default above
            raise ValueError(f"monai-{self.arch} needs {', '.join(missing)}")
        kwargs = {**self.defaults, **params}
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        size: tuple[int, ...] | None = None
        if self.class_name == "UNETR":
            if patch_size is None:
                raise ValueError("monai-unetr needs patch_size (its fixed input size)")
            size = tuple(int(n) for n in patch_size)
            kwargs["img_size"] = size
        if self.class_name == "SwinUNETR" and _required(cls, "img_size"):
            # MONAI 1.4 requires img_size, and uses it only to check that a size divides
            # by 32 (1.5 removed it): any multiple of 32 will do; the input guard below
            # checks the real input.
            kwargs["img_size"] = (32,) * spatial_dims
        model = cls(
            spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes, **kwargs
        )
        multiple = input_multiple(self.arch, kwargs, spatial_dims)
        guard = _InputGuard(
            f"monai-{self.arch}",
            in_channels,
            spatial_dims,
            multiple,
            size,
            bottleneck=self.arch == "swinunetr",
        )
        model.register_forward_pre_hook(guard)
        return model


class _InputGuard:
    """A forward pre-hook: the input's rank, channels and size, one clear line if wrong.
    A hook rather than a wrapper keeps the state dict MONAI's own."""

    def __init__(
        self,
        name: str,
        channels: int,
        dims: int,
        multiple: int | None,
        exact: tuple[int, ...] | None,
        bottleneck: bool = False,
    ) -> None:
        self.name, self.channels, self.dims = name, channels, dims
        self.multiple, self.exact, self.bottleneck = multiple, exact, bottleneck

    def __call__(self, _module: Any, args: tuple[Any, ...]) -> None:
        x = args[0]
        axes = "D, H, W" if self.dims == 3 else "H, W"
        if x.dim() != self.dims + 2 or x.shape[1] != self.channels:
            raise ConfigError(
                f"{self.name} expects (B, {self.channels}, {axes}) input, got {tuple(x.shape)}"
            )
        size = tuple(int(n) for n in x.shape[2:])
        if self.exact is not None and size != self.exact:
            raise ConfigError(
                f"{self.name} takes inputs of exactly {self.exact} (its img_size, the "
                f"training patch), got {size}"
            )
        if self.multiple and any(n % self.multiple for n in size):
            raise ConfigError(
                f"{self.name} needs every side divisible by {self.multiple}, got {size}"
            )
        if self.bottleneck and self.multiple and math.prod(size) <= self.multiple**self.dims:
            # SwinUNETR normalises its bottleneck (1/multiple of the input) per instance,
            # which needs more than one voxel there, in training and in evaluation.
            raise ConfigError(
                f"{self.name} needs an input larger than {self.multiple} along at least "
                f"one side (its bottleneck is 1/{self.multiple} of the input), got {size}"
            )


def monai_dynunet(
    in_channels: int,
    num_classes: int,
    *,
    spatial_dims: int = 3,
    patch_size: Sequence[int] | None = None,
    spacing: Sequence[float] | None = None,
    filters_base: int = 32,
    max_filters: int = 320,
    min_edge: int = 4,
    res_block: bool = False,
) -> Any:
    """nnU-Net-like DynUNet: kernels and strides planned from the patch and spacing.

    Args:
        in_channels: input channels.
        num_classes: logit channels, background included.
        spatial_dims: 2 or 3; set by the run.
        patch_size: the training patch (3D) or slice (2D) the plan is made for; set by
            the run.
        spacing: the voxel size in mm (``--spacing``); isotropic when ``None``.
        filters_base: feature maps of the first stage, doubled per stage (nnU-Net: 32).
        max_filters: the cap on feature maps (nnU-Net: 320 in 3D, 512 in 2D).
        min_edge: the smallest feature-map edge at the bottleneck (nnU-Net: 4).
        res_block: residual blocks (nnU-Net ResEnc-like) instead of plain ones.
    """
    from benchbox_plugins.segmenters.dynunet_plan import filters, plan

    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    if filters_base < 1 or max_filters < filters_base or min_edge < 1:
        raise ValueError("filters_base >= 1, max_filters >= filters_base and min_edge >= 1")
    patch = tuple(int(n) for n in (patch_size or (128,) * spatial_dims))
    if len(patch) != spatial_dims:
        raise ValueError(f"patch_size {patch} does not have {spatial_dims} sides")
    if spacing is not None and len(spacing) != spatial_dims:
        spacing = tuple(spacing)[-spatial_dims:]  # a 2D run on slices: the in-plane spacing
    layout = plan(patch, spacing, min_edge)
    cls = _monai_class("DynUNet")
    model = cls(
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        out_channels=num_classes,
        kernel_size=[list(k) for k in layout.kernels],
        strides=[list(s) for s in layout.strides],
        upsample_kernel_size=[list(s) for s in layout.strides[1:]],
        filters=list(filters(len(layout.strides), filters_base, max_filters)),
        norm_name=("INSTANCE", {"affine": True}),
        act_name=("leakyrelu", {"inplace": True, "negative_slope": 0.01}),
        deep_supervision=False,
        res_block=res_block,
    )
    model.plan = layout  # what `benchbox plugins` and the record show of it
    divisor = math.lcm(*layout.divisor)
    model.register_forward_pre_hook(
        _InputGuard("monai-dynunet", in_channels, spatial_dims, divisor, None)
    )
    return model
