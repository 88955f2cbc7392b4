"""Data: dataset parsers, the synthetic dataset, transforms, samplers and loaders."""

from . import cifar_synthetic, datasets  # noqa: F401  (registrations)
from .build import (
    TestSet,
    build_classification_sets,
    build_classification_test_loader,
    build_classification_train_loader,
    build_dataset,
    build_dataset_from_config,
    build_test_loader,
    build_test_sets,
    build_train_loader,
    build_train_set,
)
from .catalog import (
    DatasetAlias,
    dataset_aliases,
    dataset_kwargs,
    dataset_task,
    num_train_identities,
)
from .classification import ArrayImageDataset, ArraySplit, ClassificationDataset
from .datasets.base import DatasetError, DatasetTraits, ReIDDataset, Sample, combine
from .image_dataset import ImageDataset, ImageReadError, read_image
from .samplers import PKBatchSampler
from .transforms import cifar_transforms, classification_transforms

__all__ = [
    "ArrayImageDataset",
    "ArraySplit",
    "ClassificationDataset",
    "DatasetAlias",
    "DatasetError",
    "DatasetTraits",
    "ImageDataset",
    "ImageReadError",
    "PKBatchSampler",
    "ReIDDataset",
    "Sample",
    "TestSet",
    "build_classification_sets",
    "build_classification_test_loader",
    "build_classification_train_loader",
    "build_dataset",
    "build_dataset_from_config",
    "build_test_loader",
    "build_test_sets",
    "build_train_loader",
    "build_train_set",
    "cifar_transforms",
    "classification_transforms",
    "combine",
    "dataset_aliases",
    "dataset_kwargs",
    "dataset_task",
    "num_train_identities",
    "read_image",
]
