"""segmentation-models-pytorch architectures as benchbox segmenters (``smp-<arch>``).

One :class:`SmpSegmenter` factory per architecture that the installed smp exports. It
builds the smp model itself (no wrapper, so its state dict is smp's own), with
``encoder_weights=None`` so nothing is ever downloaded, and loads local weights through
:mod:`benchbox.records.weights`.

Input sizes (H and W), checked before each forward pass with a clear
:class:`~benchbox.errors.ConfigError`:

* most architectures need H and W divisible by the encoder's output stride (32 with
  the default encoders, 8 or 16 for DeepLabV3 / DeepLabV3+ / PAN, which dilate it);
  ``smp-unet`` accepts any size; ``smp-dpt`` with a ViT needs twice its patch size (32);
* ``smp-pan`` pools its deepest features (at 1/``encoder_output_stride``) three more
  times, so it needs at least ``8 * encoder_output_stride`` pixels (128 by default):
  smaller inputs are zero-padded, centred, to that size and the logits cropped back.
"""

from __future__ import annotations

import difflib
import inspect
import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from benchbox import ConfigError, WeightsError, apply_state_dict, load_weights, read_state_dict
from benchbox_plugins.backbones._timm import build_timm, check_timm_model, close_names

if TYPE_CHECKING:
    import torch
    from torch import nn

#: resnet18 (11 M parameters in the encoder) is small, fast on a CPU, and available
#: natively in smp and as ``tu-resnet18``; every architecture but DPT accepts it.
DEFAULT_ENCODER = "resnet18"

#: Per-architecture defaults where the common ones do not work. DPT takes only timm
#: ViT-style encoders; ``dynamic_img_size`` lets the ViT accept any multiple of 16.
ARCH_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "dpt": {"encoder": "tu-vit_tiny_patch16_224", "encoder_params": {"dynamic_img_size": True}},
}

#: smp constructor arguments benchbox sets itself or forbids: ``activation`` would turn
#: logits into probabilities and ``aux_params`` makes the output a tuple.
_HIDDEN = frozenset(
    {
        "self",
        "encoder_name",
        "encoder_weights",
        "in_channels",
        "classes",
        "activation",
        "aux_params",
    }
)


def _model_class(class_name: str) -> type[nn.Module]:
    import segmentation_models_pytorch as smp

    cls: type[nn.Module] = getattr(smp, class_name)
    return cls


def _arch_parameters(cls: type) -> list[inspect.Parameter]:
    """The architecture's own keyword parameters (decoder options...), as keyword-only."""
    return [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
        if p.name not in _HIDDEN and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def check_encoder(encoder: str, what: str) -> None:
    """Raise :class:`ConfigError` with close names unless smp or timm knows ``encoder``."""
    import segmentation_models_pytorch as smp

    if not isinstance(encoder, str):
        raise ConfigError(f"{what}: encoder must be a string, not {encoder!r}")
    if encoder.startswith("tu-"):
        check_timm_model(encoder[3:], f"{what} encoder {encoder!r}")
        return
    names = smp.encoders.get_encoder_names()
    if encoder in names:
        return
    import timm

    close = close_names(encoder, names)
    close += [n for n in close_names(encoder, timm.list_models(), n=3) if f"tu-{n}" not in close]
    close = [n if n in names else f"tu-{n}" for n in close][:5]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"{what}: unknown encoder {encoder!r}{hint} (smp encoders: "
        "smp.encoders.get_encoder_names(); any timm model as 'tu-<name>')"
    )


class InputGuard:
    """Forward hooks: check the input, and pad it to a minimum size (then crop back).

    Hooks rather than a wrapper module keep the model's state dict identical to smp's.
    """

    def __init__(self, name: str, in_channels: int, multiple: int, min_size: int) -> None:
        self.name, self.in_channels = name, in_channels
        self.multiple, self.min_size = multiple, min_size
        self._sizes: list[tuple[int, int]] = []

    def before(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        import torch.nn.functional as F

        x = args[0]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ConfigError(
                f"{self.name} expects (B, {self.in_channels}, H, W) input, got {tuple(x.shape)}"
            )
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ConfigError(
                f"{self.name} needs H and W divisible by {self.multiple}, got {h}x{w}"
            )
        if self.min_size <= 1:
            return None
        self._sizes.append((h, w))
        ph, pw = max(0, self.min_size - h), max(0, self.min_size - w)
        if not ph and not pw:
            return None
        padded = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        return (padded, *args[1:])

    def after(self, module: nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor:
        h, w = self._sizes.pop()
        top, left = (out.shape[-2] - h) // 2, (out.shape[-1] - w) // 2
        return out[..., top : top + h, left : left + w]

    def install(self, model: nn.Module) -> None:
        model.register_forward_pre_hook(self.before)
        if self.min_size > 1:
            model.register_forward_hook(self.after)


def _load_encoder_weights(encoder: nn.Module, state: dict[str, Any], source: str) -> None:
    """Fill a native smp encoder from a classification checkpoint (e.g. torchvision's).

    Keys the encoder lacks (the classifier) are ignored, every encoder key must be in the
    file, and a 3-channel first convolution is adapted to the encoder's input channels
    as smp and timm do (summed for 1 channel, repeated and rescaled otherwise).
    """
    from timm.models import adapt_input_conv

    own = encoder.state_dict()
    state = dict(state)
    for key, value in state.items():
        target = own.get(key)
        if (
            target is not None
            and value.dim() == 4
            and target.dim() == 4
            and value.shape[1] == 3
            and value.shape[1] != target.shape[1]
            and (value.shape[0], *value.shape[2:]) == (target.shape[0], *target.shape[2:])
        ):
            state[key] = adapt_input_conv(target.shape[1], value)
    apply_state_dict(encoder, state, allow_unexpected=True, source=source)


class SmpSegmenter:
    """Factory of one smp architecture; its signature lists that architecture's options."""

    def __init__(self, arch: str, class_name: str) -> None:
        self.arch = arch
        self.class_name = class_name
        self.name = f"smp-{arch}"
        defaults = ARCH_DEFAULTS.get(arch, {})
        self.default_encoder: str = defaults.get("encoder", DEFAULT_ENCODER)
        self.default_encoder_params: dict[str, Any] = dict(defaults.get("encoder_params", {}))
        self.__doc__ = (
            f"{class_name} from segmentation-models-pytorch; encoder= any smp encoder or "
            "tu-<timm model>."
        )

    def __repr__(self) -> str:
        return f"SmpSegmenter({self.arch!r}, {self.class_name!r})"

    @property
    def __signature__(self) -> inspect.Signature:
        """Shown by ``benchbox plugins -p``; computed on demand because it imports smp."""
        P = inspect.Parameter
        common = [
            P("in_channels", P.POSITIONAL_OR_KEYWORD, default=1, annotation="int"),
            P("num_classes", P.POSITIONAL_OR_KEYWORD, default=2, annotation="int"),
            P("encoder", P.KEYWORD_ONLY, default=self.default_encoder, annotation="str"),
            P("encoder_weights", P.KEYWORD_ONLY, default=None, annotation="str | None"),
            P("weights", P.KEYWORD_ONLY, default=None, annotation="str | None"),
            P(
                "encoder_params",
                P.KEYWORD_ONLY,
                default=self.default_encoder_params or None,
                annotation="dict | None",
            ),
        ]
        return inspect.Signature(common + _arch_parameters(_model_class(self.class_name)))

    def __call__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        *,
        encoder: str | None = None,
        encoder_weights: str | os.PathLike[str] | None = None,
        weights: str | os.PathLike[str] | None = None,
        encoder_params: Mapping[str, Any] | None = None,
        **arch_params: Any,
    ) -> nn.Module:
        """Build the model.

        Args:
            in_channels: input channels: 1 behind a fusion model, the number of
                modalities with ``--fusion none``.
            num_classes: output channels (logits), background included.
            encoder: an smp encoder name, or ``tu-<timm model>`` for any timm model.
            encoder_weights: a local file of pretrained encoder weights (a timm
                checkpoint for ``tu-`` encoders; an smp-hub or torchvision one for
                native encoders). Never a name to download such as ``"imagenet"``.
            weights: a local file with the whole model's state dict (e.g. the
                ``model.safetensors`` that smp's ``save_pretrained`` writes); loaded
                strictly, after building.
            encoder_params: extra ``timm.create_model`` arguments (``tu-`` encoders).
            **arch_params: the architecture's own options (``decoder_channels``...).
        """
        what = self.name
        encoder = self.default_encoder if encoder is None else encoder
        check_encoder(encoder, what)
        implicit = self.default_encoder_params if encoder_params is None else {}
        if encoder_params is None:
            encoder_params = implicit if encoder.startswith("tu-") else {}
        if not isinstance(encoder_params, Mapping):
            raise ConfigError(f"{what}: encoder_params must be a dict, not {encoder_params!r}")
        if encoder_params and not encoder.startswith("tu-"):
            raise ConfigError(f"{what}: encoder_params applies to 'tu-' encoders only")
        for key, path in (("encoder_weights", encoder_weights), ("weights", weights)):
            if path is not None and not isinstance(path, (str, os.PathLike)):
                raise ConfigError(
                    f"{what}: {key} must be the path of a local file or None, not {path!r} "
                    "(benchbox never downloads weights)"
                )
        if weights is not None and encoder_weights is not None:
            raise ConfigError(f"{what}: give weights= (whole model) or encoder_weights=, not both")
        for key, count in (("in_channels", in_channels), ("num_classes", num_classes)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ConfigError(f"{what}: {key} must be a positive integer, not {count!r}")

        cls = _model_class(self.class_name)
        known = [p.name for p in _arch_parameters(cls)]
        for key in arch_params:
            if key not in known:
                close = difflib.get_close_matches(key, known, n=3)
                hint = f"did you mean {', '.join(close)}?" if close else f"parameters: {known}"
                raise ConfigError(f"{what} has no parameter {key!r}; {hint}")

        extra: dict[str, Any] = dict(encoder_params)

        def build(pretrained: bool = False, **overlay: Any) -> nn.Module:
            kwargs = {**arch_params, **extra, **overlay}
            with warnings.catch_warnings():
                # DPT advises readout="ignore" for encoders without a class token; the
                # choice stays the user's (decoder_readout=...), the advice is noise.
                warnings.filterwarnings("ignore", message=".*decoder_readout.*")
                return cls(
                    encoder_name=encoder,
                    encoder_weights=True if pretrained else None,
                    in_channels=in_channels,
                    classes=num_classes,
                    **kwargs,
                )

        def build_any(pretrained: bool = False, **overlay: Any) -> nn.Module:
            try:
                return build(pretrained, **overlay)
            except TypeError as exc:
                # The architecture's default encoder_params (dynamic_img_size for DPT's
                # ViT) do not apply to every encoder; drop them unless the user set them.
                if not implicit or not any(k in str(exc) for k in implicit):
                    raise
                extra.clear()
                return build(pretrained, **overlay)

        native_state = None
        try:
            if encoder.startswith("tu-"):
                model = build_timm(
                    f"{what} encoder {encoder!r}", encoder[3:], encoder_weights, build_any
                )
            else:
                if encoder_weights is not None:
                    native_state = read_state_dict(encoder_weights)
                model = build_any()
        except (WeightsError, ConfigError):
            raise
        except (ValueError, KeyError, TypeError, AssertionError, NotImplementedError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ConfigError(f"{what} with encoder {encoder!r}: {message}") from exc
        if native_state is not None:
            _load_encoder_weights(
                model.encoder, native_state, f"{what}: encoder weights file {encoder_weights}"
            )
        if weights is not None:
            load_weights(model, weights)

        InputGuard(what, in_channels, *input_constraints(self.arch, model)).install(model)
        return model


def input_constraints(arch: str, model: nn.Module) -> tuple[int, int]:
    """``(multiple, min_size)`` that H and W must satisfy for a built smp model."""
    stride = int(getattr(model.encoder, "output_stride", 32))
    multiple = stride if getattr(model, "requires_divisible_input_shape", True) else 1
    if arch == "dpt" and len(set(getattr(model.encoder, "output_strides", [0, 1]))) == 1:
        # With a ViT (one token grid for every level) the decoder resamples the grid to
        # 4x, 2x, 1x and 1/2x and adds neighbours, so the grid must be even.
        multiple = 2 * stride
    # PAN's feature pyramid attention pools its deepest map three more times.
    min_size = 8 * stride if arch == "pan" else 1
    return multiple, min_size
