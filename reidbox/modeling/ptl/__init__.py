"""Progressive Transfer Learning: stateless BConv-Cells and the side network that owns state."""

from .cells import CELL_INITS, BConvCell, BConvCellV2, build_cell, cell_geometry, init_cell
from .state import LatentStateStore
from .wrapper import PTLBranch, derive_channels

__all__ = [
    "CELL_INITS",
    "BConvCell",
    "BConvCellV2",
    "LatentStateStore",
    "PTLBranch",
    "build_cell",
    "cell_geometry",
    "derive_channels",
    "init_cell",
]
