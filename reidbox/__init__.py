"""reidbox: person re-identification with Progressive Transfer Learning (PTL)."""

__version__ = "0.1.0"
