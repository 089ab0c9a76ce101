import os

import pytest
from hypothesis import HealthCheck, settings

import symgrad as sg

# Hypothesis profiles for the property-based tests (tests/test_properties.py). "ci" is the default:
# derandomized, so every CI run tries the same graphs and a red build is reproducible. "long" tries
# fresh random graphs, at least 10,000 across the suite; select it with
# SYMGRAD_HYPOTHESIS_PROFILE=long (or pytest's --hypothesis-profile=long).
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=250, deadline=None, derandomize=True,
                          suppress_health_check=_SLOW_IS_FINE, print_blob=True)
settings.register_profile("long", max_examples=5000, deadline=None,
                          suppress_health_check=_SLOW_IS_FINE, print_blob=True)
settings.load_profile(os.environ.get("SYMGRAD_HYPOTHESIS_PROFILE", "ci"))

# The Numba backend's whole loops compile at the first call here, so that the tests comparing
# their results with NumPy's run the kernels; tests/test_background_compile.py turns the
# background compile (its default) back on.
sg.fuse.BACKGROUND = False


@pytest.fixture(autouse=True)
def fresh_graph():
    """Each test builds into its own graph, so variable names never clash across tests."""
    with sg.use_graph() as graph:
        yield graph
