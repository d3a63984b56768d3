"""Floor 1, data: ImageNet's classes, the split and its manifests, the Dataset, the report's downsampling."""
