"""The fusing backend (``sg.compile(..., backend="numba")``) at run time: each distinct loop the
Numba renderer (symgrad.codegen.numba) writes is kept in a cache directory (``SYMGRAD_CACHE_DIR``,
else the user's cache) as a module named by the hash of its source, imported once a process and
compiled with ``cache=True``: a loop that several functions have (the same body at other sizes) is
compiled once, and a later process loads Numba's machine code from disk instead of compiling again.
Imports codegen, naming and errors; Numba only when this backend is asked for.
"""

import atexit
import functools
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import threading

from . import naming
from .codegen import generate_numba
from .codegen.numba import KERNEL_HEADER
from .errors import SymgradError



_modules = {}                   # source hash -> imported kernel module, for this process
# the first line of every kernel module: where one module of a function's kernels ends
_MODULE_START = KERNEL_HEADER.partition("\n")[0] + "\n"
_modules_lock = threading.Lock()


def numba_available():
    return importlib.util.find_spec("numba") is not None


def cache_directory():
    """Where kernel modules and Numba's compiled code are kept: ``SYMGRAD_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/symgrad`` (``~/.cache/symgrad``), else a temporary directory of this
    process, removed when it exits."""
    directory = os.environ.get("SYMGRAD_CACHE_DIR")
    if not directory:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        directory = os.path.join(base, "symgrad")
    kernels = os.path.join(directory, "kernels")
    try:
        os.makedirs(kernels, exist_ok=True)
        if os.access(kernels, os.W_OK):
            return kernels
    except OSError:
        pass
    return _process_directory()


@functools.cache
def _process_directory():
    directory = tempfile.mkdtemp(prefix="symgrad-kernels-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


class _Parallel:
    """Whether the kernels may run their parallel loops in this process (read by every kernel
    module's entries, KERNEL_HEADER in codegen/numba.py). Not in a process forked after GNU
    OpenMP (Numba's threading layer where TBB is absent) started its threads: OpenMP kills such
    a process at its first parallel loop, and a ``multiprocessing`` pool of them waits forever.
    There the serial loops run. The other layers survive a fork (TBB, preferred: see
    _cooperative_threads), and GNU OpenMP is kept otherwise: Numba's fork-safe work queue may
    not run two threads' loops at once."""

    allowed = True


PARALLEL = _Parallel()


def _after_fork_in_child():
    numba = sys.modules.get("numba")
    if numba is None or not PARALLEL.allowed:
        return
    try:
        layer = numba.threading_layer()         # raises until a parallel loop has run
    except ValueError:
        return
    if layer == "omp":
        from numba.np.ufunc import omppool
        if getattr(omppool, "openmp_vendor", "GNU") == "GNU":
            PARALLEL.allowed = False


os.register_at_fork(after_in_child=_after_fork_in_child)


@functools.cache
def _cooperative_threads():
    """Before Numba starts the threads of its first parallel loop: make TBB its layer where
    pip installed it (the 'numba' extra does), else let GNU OpenMP's idle workers sleep.

    A layer's workers that wait actively after a loop take the cores from the next BLAS call:
    GNU OpenMP's spin a few milliseconds (a two-thread OpenBLAS product after a parallel loop
    took about ten times as long), TBB's a fraction of one and the work queue's not at all
    (tests/benchmarks/fusing.py threads). TBB also survives a fork and runs two threads' loops
    at once, where GNU OpenMP does not survive a fork and the work queue refuses concurrent
    loops. Numba looks for TBB by its library's name, which the dynamic linker does not find
    in pip's folder: the library is loaded here by its path, and Numba's look-up then finds it
    loaded. Where it is absent, OMP_WAIT_POLICY=passive is set unless the user set a policy or
    a spin count (it is read when OpenMP starts, so it also reaches libraries that start it
    later in this process, and child processes)."""
    try:
        from importlib.metadata import PackageNotFoundError, distribution
        import ctypes
        tbb = distribution("tbb")
        library = next(f for f in tbb.files or () if f.name == "libtbb.so.12")
        ctypes.CDLL(str(tbb.locate_file(library)), mode=ctypes.RTLD_GLOBAL)
        return "tbb"
    except (PackageNotFoundError, StopIteration, OSError):
        pass
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    return "omp"


def load_kernels(kernel_source):
    """{name in the generated function's namespace: kernel} for the kernel modules that
    ``kernel_source`` holds one after another (NumbaRenderer.kernel_module), the k-th module's
    kernel being naming.kernel(k)."""
    _cooperative_threads()
    modules = kernel_source.split(_MODULE_START)[1:]
    return {naming.kernel(k): getattr(_load_module(_MODULE_START + text), naming.KERNEL)
            for k, text in enumerate(modules)}


def _load_module(module_source):
    """Import the kernel module with ``module_source`` (written to the cache directory once,
    under the hash of its text) and return it."""
    digest = hashlib.sha256(module_source.encode()).hexdigest()[:32]
    with _modules_lock:
        if digest in _modules:
            return _modules[digest]
        directory = cache_directory()
        path = os.path.join(directory, f"sg_{digest}.py")
        try:
            with open(path, "rb") as existing:
                current = existing.read() == module_source.encode()
        except OSError:
            current = False
        if not current:         # missing, or not ours: (re)write it whole, then move it in place
            handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(module_source)
            os.replace(temporary, path)
        module_name = f"symgrad_kernels_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        # compiled here rather than by the import system, which would keep a .pyc beside it: one
        # file less that a damaged disk can leave unreadable (a truncated .pyc whose header
        # still matches fails the import), for microseconds of compiling
        exec(compile(module_source, path, "exec"), vars(module))
        _recover_damaged_entries(module)
        sys.modules.setdefault(module_name, module)
        _modules[digest] = module
        return module


def _recover_damaged_entries(module):
    """Give each cached kernel of ``module`` a disk cache that takes an entry it cannot read
    for a miss."""
    from numba.core.caching import FunctionCache
    recovering = _recovering_cache()
    for value in vars(module).values():
        # Numba's Dispatcher.enable_caching (cache=True) sets this attribute the same way
        if isinstance(getattr(value, "_cache", None), FunctionCache):
            value._cache = recovering(value.py_func)


@functools.cache
def _recovering_cache():
    from numba.core.caching import FunctionCache

    class RecoveringCache(FunctionCache):
        """Numba's cache of one function, where an index or data file that cannot be read back
        (truncated, overwritten, emptied) is a miss: the index is emptied, and the compile that
        follows writes the entry anew. Numba itself raises at every later call."""

        def load_overload(self, sig, target_context):
            try:
                return super().load_overload(sig, target_context)
            except Exception:   # noqa: BLE001 (unpickling garbage can raise nearly anything)
                try:
                    self.flush()
                except OSError:
                    self.disable()
                return None

    return RecoveringCache


def generate_fused(graph, outputs, inputs, function_name):
    """(source, namespace, kernel module source) of the fused function; the namespace's kernel
    entries are bound to Numba dispatchers (compiled at their first call, or loaded from the
    disk cache)."""
    try:
        import numba  # noqa: F401 (imported for its availability; the kernel module uses it)
    except ImportError:
        raise SymgradError("backend 'numba' needs Numba: "
                           "pip install -e '.[numba]' in a clone of symgrad") from None
    source, namespace, kernel_source, _ = generate_numba(graph, outputs, inputs, function_name)
    if kernel_source:
        namespace.update(load_kernels(kernel_source))
    return source, namespace, kernel_source


__all__ = ["generate_fused", "cache_directory", "load_kernels", "numba_available", "PARALLEL"]
