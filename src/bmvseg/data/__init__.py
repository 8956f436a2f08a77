"""Datasets (CamVid, Cityscapes, generated scenes) looked up by name; see :mod:`.registry`."""

from bmvseg.data.registry import available_datasets, get_dataset, register_dataset

__all__ = ["available_datasets", "get_dataset", "register_dataset"]
