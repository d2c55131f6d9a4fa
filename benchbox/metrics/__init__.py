"""Metrics: pure functions on NumPy arrays or tensors, each defined in one place.

* :mod:`benchbox.metrics.fusion`: EN, SD, SF, AG, MI, SCD, VIF, Qabf, Nabf, SSIM,
  MS-SSIM, PSNR of a fused image and its two sources (``compute_*``);
* :mod:`benchbox.metrics.segmentation`: Dice, IoU, precision, recall, HD, HD95, ASSD,
  NSD of two masks with the voxel spacing (``compute_*``);
* :mod:`benchbox.metrics.suite`: every registered metric of one case as table columns
  (``score_fusion_case``, ``score_segmentation_case``) and the choice of metrics and
  regions (:mod:`benchbox.scoring` applies it to whole splits and folders);
* :mod:`benchbox.metrics.summary`: a table of cases summarised (:class:`Summary`);
* :mod:`benchbox.metrics.ssim`: the one SSIM implementation (torch), shared with the
  losses.

``docs/metrics.md`` defines every number. Importing this package imports nothing heavy.
"""

from __future__ import annotations

#: The public modules of metric functions (plugins register them, scripts call them).
__all__ = ["fusion", "segmentation", "ssim"]
