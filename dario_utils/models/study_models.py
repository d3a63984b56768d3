"""The study's models, in Table 1's order: one registry that every table, note and figure reads.

Each model has a key, which names it in result files (the ``model`` column of every CSV)
and in file names (``per_class_<key>.csv``), and a display name, which every human-facing
output (tables, notes, report lines, figures) shows instead. Each knows how it makes the image
the classifier sees (:meth:`StudyModel.image`): the original itself, the small image upsampled,
or the small image through an SR net whose weights (:attr:`StudyModel.sr_weights`) evaluation loads.

The key ``esrgan`` is the profile's pretrained SR net, whatever its weights (Real-ESRGAN
x4plus, ESRGAN's RRDB_PSNR, a file of one's own): it is shown as "pretrained SR" and keeps its key only
because the committed result files use it.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn, Tensor

from dario_utils.data.degrade import reconstruct, upsample

ORIGINAL, BILINEAR, BICUBIC, PRETRAINED_SR, DARIONET = "original", "bilinear", "bicubic", "esrgan", "darionet"
"""The models' keys."""
PRETRAINED, FINE_TUNED = "pretrained", "fine-tuned"
"""Where an SR net's weights come from: the profile's ``sr.pretrained``, or DarioNet's checkpoint (notebook 03)."""


@dataclass(frozen=True)
class StudyModel:
    """One model of the study."""

    key: str
    """Its name in result files and file names."""
    name: str
    """Its name in every table, note and figure."""
    row: str
    """Its row of Table 1 (the report's numbering; bicubic, not in the report, is 2b)."""
    colour: str
    """Its colour in every figure."""
    description: str
    """Table 1's description, with ``{size}``, ``{small}`` (px) and ``{sr}`` (the SR net's start) to fill in."""
    upsampling: str | None = None
    """The interpolation that brings the small image back up (:data:`dario_utils.data.degrade.UPSAMPLERS`)."""
    sr_weights: str | None = None
    """The weights of the SR net that brings the small image back up: :data:`PRETRAINED` or :data:`FINE_TUNED`."""

    def image(self, x: Tensor, small: Tensor, nets: dict[str, nn.Module]) -> Tensor:
        """The image this model shows the classifier: the original ``x``, or ``small`` brought back to x's
        size by its upsampling or by its SR net, ``nets[key]``."""
        if self.upsampling:
            return upsample(small, x.shape[-1], self.upsampling)
        if self.sr_weights:
            return reconstruct(nets[self.key], small, x.shape[-1])
        return x


STUDY_MODELS: tuple[StudyModel, ...] = (
    StudyModel(ORIGINAL, "original", "1", "#4c4c4c", "the {size} px image"),
    StudyModel(BILINEAR, "bilinear", "2", "#8fb0d6", "bilinear upscaling of the {small} px image",
               upsampling="bilinear"),
    StudyModel(BICUBIC, "bicubic", "2b", "#2f6db5", "bicubic upscaling of the {small} px image",
               upsampling="bicubic"),
    StudyModel(PRETRAINED_SR, "pretrained SR", "3", "#e1a03a", "SR net ({sr}) on the {small} px image",
               sr_weights=PRETRAINED),
    StudyModel(DARIONET, "DarioNet", "4", "#c0392b",
               "pretrained SR fine-tuned with the teacher's logits, on the {small} px image", sr_weights=FINE_TUNED),
)
"""Every model, in Table 1's order."""

BY_KEY: dict[str, StudyModel] = {model.key: model for model in STUDY_MODELS}
MODELS: tuple[str, ...] = tuple(BY_KEY)
"""The keys, in Table 1's order."""
BASELINES: tuple[str, ...] = tuple(key for key in MODELS if key != DARIONET)
"""The models DarioNet is compared with (notebook 02)."""


def display_name(key: str) -> str:
    """The name shown for model ``key``; other keys (e.g. ``downsampled``) as they are."""
    return BY_KEY[key].name if key in BY_KEY else key
