"""reidbox: person re-identification with Progressive Transfer Learning (PTL)."""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so ``import reidbox`` stays cheap and free of import cycles. ``reidbox.train`` and
    # ``reidbox.test`` are what tools/train_net.py and tools/test_net.py run.
    if name == "FeatureExtractor":
        from .api import FeatureExtractor

        return FeatureExtractor
    if name in ("train", "test"):
        from .engine import runner

        return getattr(runner, name)
    if name == "GalleryIndex":
        from .gallery import GalleryIndex

        return GalleryIndex
    raise AttributeError(f"module 'reidbox' has no attribute {name!r}")
