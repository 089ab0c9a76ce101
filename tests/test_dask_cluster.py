"""The README's Dask snippet on a real cluster: a dask.distributed.LocalCluster of two worker
processes on loopback. The snippet runs statement by statement; the compiled gradient
(backend="array_api") must return Dask arrays without running a task anywhere, dask.compute must
run them on the workers, and the results must be the NumPy backend's."""

import ast
import warnings

import numpy as np
import pytest

import symgrad as sg
from readme_blocks import code_with_readme_lines, readme_blocks

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


def readme_dask_snippet():
    snippets = [block for block in readme_blocks()
                if block.language == "python" and "LocalCluster(" in block.text]
    assert len(snippets) == 1, "the README has one Dask cluster snippet"
    return snippets[0]


def tasks_run(client):
    """Tasks the workers have executed, and transitions the scheduler has made, since they started."""
    executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    return sum(executed.values()), client.run_on_scheduler(
        lambda dask_scheduler: dask_scheduler.transition_counter)


def test_readme_snippet_is_lazy_on_a_local_cluster_and_agrees_with_numpy():
    snippet = readme_dask_snippet()
    module = ast.parse(code_with_readme_lines(snippet), "README.md")
    namespace = {"__name__": "__readme__"}
    seen = {}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for statement in module.body:
                source = ast.unparse(statement)
                if "dask.compute(" in source:
                    seen["before compute"] = tasks_run(namespace["client"])
                    seen["lazy"] = [namespace["value"], *namespace["grads"]]
                exec(compile(ast.Module([statement], []), "README.md", "exec"), namespace)
                if "dask.compute(" in source:
                    seen["after compute"] = tasks_run(namespace["client"])
        assert not [str(warning.message) for warning in caught]
    finally:
        for name in ["client", "cluster"]:
            if name in namespace:
                namespace[name].close()

    assert namespace["cluster"].status.name == "closed"
    assert seen["before compute"] == (0, 0), "the compiled gradient computed something"
    assert all(isinstance(result, da.Array) for result in seen["lazy"])
    assert namespace["X_data"].numblocks == (4, 1), "batch chunks, computed chunk by chunk"
    executed, transitions = seen["after compute"]
    assert executed >= 2 * 4 and transitions > 0, "the workers ran one task per chunk at least"

    features, labels, weights = (namespace[name] for name in ["features", "labels", "weights"])
    loss, params = namespace["loss"], namespace["params"]
    numpy_step = sg.compile([loss, *sg.grad(loss, params)],
                            inputs=[namespace["X"], namespace["Y"], *params])
    expected = numpy_step(features, np.eye(10)[labels], *weights)
    got = [namespace["value"], *namespace["grads"]]
    assert all(isinstance(result, (np.ndarray, np.floating, float)) for result in got)
    for result, reference in zip(got, expected, strict=True):
        np.testing.assert_allclose(result, reference, rtol=1e-12, atol=1e-15)
