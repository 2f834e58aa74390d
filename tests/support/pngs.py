"""Checking that a plot is a real picture, shared by the plot, report and genre-chart tests."""

from pathlib import Path

import numpy as np
from PIL import Image


def assert_png(path: Path, min_bytes: int = 5_000) -> None:
    """A PNG that opens, is at least 300x200 pixels and is not a blank canvas."""
    assert path.is_file() and path.stat().st_size > min_bytes, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= 300 and image.height >= 200
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5, f"{path} looks blank"
