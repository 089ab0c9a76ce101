"""The notebooks in examples/ run from top to bottom in a fresh kernel, draw their figures and reach
their numbers; the committed files carry their outputs; examples/mnist_idx.py reads IDX files."""

import gzip
import importlib.util
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NOTEBOOKS = ["hessian_vector_products.ipynb", "higher_order_derivatives.ipynb", "mlp_digits.ipynb",
             "textbook_graphs.ipynb"]
IMAGE_TYPES = ("image/png", "image/svg+xml")


def outputs(notebook):
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


def has_image(notebook):
    return any(kind in output.get("data", {}) for output in outputs(notebook) for kind in IMAGE_TYPES)


def stdout(notebook):
    return "".join(output.text for output in outputs(notebook)
                   if output.output_type == "stream" and output.name == "stdout")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run a notebook once, in a fresh kernel, from a copy of examples/ in a temporary directory
    (nothing is written into the repository); the result is shared by the tests of this module."""
    cache = {}
    workdir = tmp_path_factory.mktemp("notebooks")
    for helper in EXAMPLES.glob("*.py"):
        shutil.copy(helper, workdir)

    def run(name):
        if name not in cache:
            notebook = nbformat.read(EXAMPLES / name, as_version=4)
            # a cell's timeout only stops a hung kernel, however loaded the machine
            client = nbclient.NotebookClient(notebook, timeout=1200, kernel_name="python3",
                                             resources={"metadata": {"path": str(workdir)}})
            client.execute()
            cache[name] = notebook
        return cache[name]

    with pytest.MonkeyPatch.context() as patch:
        # the kernel finds this checkout's symgrad even where it is not installed, and never MNIST
        patch.setenv("PYTHONPATH", str(ROOT), prepend=os.pathsep)
        patch.delenv("MNIST_DIR", raising=False)
        yield run


def test_every_notebook_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.ipynb")) == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_carries_its_outputs(name):
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells), "not executed"
    assert not [o for o in outputs(notebook) if o.output_type == "error"]
    assert has_image(notebook)
    assert (EXAMPLES / name).stat().st_size < 1_000_000


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(executed, name):
    notebook = executed(name)      # a cell that raises fails here, with its traceback
    assert has_image(notebook)
    assert not [o for o in outputs(notebook) if o.output_type == "error"]


def test_digits_accuracy(executed):
    accuracy = re.findall(r"^test accuracy: (\d\.\d+)$", stdout(executed("mlp_digits.ipynb")), re.M)
    assert len(accuracy) == 1 and float(accuracy[0]) >= 0.95, accuracy
    # the README's table of notebooks quotes this accuracy, rounded as it writes it
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    quoted = re.findall(r"`mlp_digits\.ipynb` \| an MLP trained with minibatch SGD on "
                        r"scikit-learn's digits \(([\d.]+) % test accuracy\)", readme)
    assert len(quoted) == 1, quoted
    decimals = len(quoted[0].partition(".")[2])
    assert f"{100 * float(accuracy[0]):.{decimals}f}" == quoted[0], (accuracy, quoted)


def test_trust_krylov_converges(executed):
    table = stdout(executed("hessian_vector_products.ipynb"))
    final_f = re.search(r"^trust-krylov\s+\d+\s+\d+\s+\d+\s+(\S+)", table, re.M)
    assert final_f and float(final_f[1]) < 1e-10, table


# -- examples/mnist_idx.py ------------------------------------------------------------------------

def load_mnist_idx():
    spec = importlib.util.spec_from_file_location("mnist_idx", EXAMPLES / "mnist_idx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def idx_bytes(array):
    """The IDX encoding of a uint8 array: two zero bytes, type 0x08, the rank, big-endian sizes."""
    return (bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
            + array.astype(np.uint8).tobytes())


def test_mnist_reader(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
              "train-labels-idx1-ubyte": rng.integers(0, 10, 5),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28)),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, 3)}
    for name, array in arrays.items():
        data = idx_bytes(array)
        if name.startswith("t10k"):        # one gzipped pair, one plain
            (tmp_path / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (tmp_path / name).write_bytes(data)

    mnist_idx = load_mnist_idx()
    (train_images, train_labels), (test_images, test_labels) = mnist_idx.load_mnist(tmp_path)
    for name, loaded in zip(arrays, [train_images, train_labels, test_images, test_labels]):
        assert loaded.dtype == np.uint8
        np.testing.assert_array_equal(loaded, arrays[name])

    (tmp_path / "short").write_bytes(idx_bytes(arrays["train-labels-idx1-ubyte"])[:-1])
    with pytest.raises(ValueError, match="bytes where shape"):
        mnist_idx.read_idx(tmp_path / "short")
    (tmp_path / "text").write_bytes(b"not an idx file")
    with pytest.raises(ValueError, match="not an IDX file"):
        mnist_idx.read_idx(tmp_path / "text")
    with pytest.raises(FileNotFoundError):
        mnist_idx.load_mnist(tmp_path / "missing")
