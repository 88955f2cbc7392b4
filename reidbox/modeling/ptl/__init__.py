"""Progressive Transfer Learning: stateless BConv-Cells and the side network that owns state."""

from .cells import BConvCell, BConvCellV2, build_cell, cell_geometry
from .state import LatentStateStore
from .wrapper import PTLBranch, derive_channels

__all__ = ["BConvCell", "BConvCellV2", "LatentStateStore", "PTLBranch", "build_cell",
           "cell_geometry", "derive_channels"]
