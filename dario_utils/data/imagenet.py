"""ImageNet-1k class names and WordNet ids, in the standard (sorted-wnid) class order.

Both come from maintained packages rather than a hand-typed list: the names from
torchvision's weight metadata, the wnids from timm's bundled ``imagenet_synsets.txt``.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=None)
def imagenet_class_names() -> tuple[str, ...]:
    """Short English name of each of the 1000 classes (``"tench"``, ``"goldfish"``, ...)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


@lru_cache(maxsize=None)
def imagenet_wnids() -> tuple[str, ...]:
    """WordNet id of each of the 1000 classes (``"n01440764"``, ...), index = class index."""
    from timm.data import ImageNetInfo

    wnids = tuple(ImageNetInfo("imagenet-1k").label_names())
    if len(wnids) != 1000 or list(wnids) != sorted(wnids):
        raise RuntimeError("timm's ImageNet-1k synset list is not the 1000 sorted wnids")
    return wnids
