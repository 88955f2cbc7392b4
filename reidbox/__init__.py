"""reidbox: person re-identification with Progressive Transfer Learning (PTL)."""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so ``import reidbox`` stays cheap and free of import cycles.
    if name == "FeatureExtractor":
        from .api import FeatureExtractor

        return FeatureExtractor
    if name == "GalleryIndex":
        from .gallery import GalleryIndex

        return GalleryIndex
    raise AttributeError(f"module 'reidbox' has no attribute {name!r}")
