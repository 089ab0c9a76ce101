import pytest

import symgrad as sg


@pytest.fixture(autouse=True)
def fresh_graph():
    """Each test builds into its own graph, so variable names never clash across tests."""
    with sg.use_graph() as graph:
        yield graph
