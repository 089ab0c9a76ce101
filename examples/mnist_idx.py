"""Read the MNIST data set from its standard IDX files, which you download yourself.

    from mnist_idx import load_mnist
    (train_images, train_labels), (test_images, test_labels) = load_mnist("path/to/mnist")

The directory holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally gzipped (``.gz``). Nothing
is downloaded. Images come back as uint8 arrays of shape (count, 28, 28), labels as uint8 arrays of
shape (count,).
"""

import gzip
from pathlib import Path

import numpy as np

# the third byte of an IDX file's magic number gives the element type
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """The array stored in one IDX file (gzipped if its name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: the header is cut short")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[data[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes where shape {shape} needs {expected}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory, stem):
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"neither {stem} nor {stem}.gz in {directory}")


def load_mnist(directory):
    """((train images, train labels), (test images, test labels)) from the IDX files in directory."""
    directory = Path(directory)
    return tuple((read_idx(_find(directory, f"{part}-images-idx3-ubyte")),
                  read_idx(_find(directory, f"{part}-labels-idx1-ubyte")))
                 for part in ("train", "t10k"))
