"""Central differences, the reference the tests hold derivatives to."""

import numpy as np


def central_gradient(f, x, step=1e-6):
    """The gradient of the scalar function ``f`` at the array ``x``, entry by entry."""
    gradient = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        offset = np.zeros(x.shape)
        offset[index] = step
        gradient[index] = (f(x + offset) - f(x - offset)) / (2 * step)
    return gradient
