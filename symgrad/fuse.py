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
import warnings
import weakref

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
    disk cache), except in a function with a whole loop's kernel (has_whole_loops), whose
    kernels a BackgroundCompile loads and compiles: there they stay None, and Numba is not
    even imported here."""
    if not numba_available():
        raise SymgradError("backend 'numba' needs Numba: "
                           "pip install -e '.[numba]' in a clone of symgrad")
    source, namespace, kernel_source, _ = generate_numba(graph, outputs, inputs, function_name)
    if kernel_source and not compiles_in_background(kernel_source):
        namespace.update(load_kernels(kernel_source))
    return source, namespace, kernel_source


# Whether a function with the kernel of a whole loop, or of a long fused loop, compiles its
# kernels in the background (BackgroundCompile); False compiles them at its first call, as any
# other function's: the tests that compare the kernels' results with NumPy's set it
# (tests/conftest.py).
BACKGROUND = True
# A kernel module with this many lines beyond its header (a fused loop of as many ops) takes a
# second or more to compile (tests/benchmarks/README.md).
BACKGROUND_LINES = 200
_HEADER_LINES = KERNEL_HEADER.count("\n")


def compiles_in_background(kernel_source):
    """Whether a function's kernel modules hold the kernel of a whole loop (codegen.numba's
    render_whole_loop) or a fused loop of BACKGROUND_LINES lines or more, seconds of compiling,
    and BACKGROUND is set: such a function's first calls run the NumPy backend's program while
    a BackgroundCompile compiles its kernels."""
    if not BACKGROUND:
        return False
    return f"def {naming.KERNEL}_loop(" in kernel_source or any(
        module.count("\n") - _HEADER_LINES >= BACKGROUND_LINES
        for module in kernel_source.split(_MODULE_START)[1:])


# the compiles under way in this process (BackgroundCompile.start), which a fork abandons
_under_way = weakref.WeakSet()


class BackgroundCompile:
    """The body of a compiled function whose kernels are compiled by a daemon thread: until they
    are ready, each call runs ``plain`` (the NumPy backend's program of the same graph, which
    needs no Numba: a program calling small kernels would wait on Numba's compiler lock while
    the big one compiles); after, ``fused``.

    The first call starts the thread. It loads the kernel modules (importing Numba; a kernel
    cached on disk is loaded, not compiled) and runs ``fused`` once on copies of that call's
    arguments, which compiles every kernel for their types. An error there keeps ``plain`` for
    good: ``wait`` raises it, and the next call warns once. A process forked while the thread
    works starts it again at its next call."""

    __slots__ = ("fused", "plain", "kernel_source", "ready", "error", "plain_calls", "_done",
                 "_started", "_warned", "_lock", "__weakref__")

    def __init__(self, fused, plain, kernel_source):
        self.fused, self.plain, self.kernel_source = fused, plain, kernel_source
        self.ready = False
        self.error = None
        self.plain_calls = 0        # calls that ran ``plain`` (tests watch it)
        self._done = threading.Event()
        self._started = self._warned = False
        self._lock = threading.Lock()

    def __call__(self, *args):
        if self.ready:
            return self.fused(*args)
        return self._before_ready(args)

    def _before_ready(self, args):
        self.plain_calls += 1
        if not self._started:
            self.start(args)
        elif self.error is not None and not self._warned:
            self._warned = True
            warnings.warn(f"symgrad: compiling the Numba kernels failed; this function keeps "
                          f"running NumPy: {self.error!r}", RuntimeWarning, stacklevel=4)
        return self.plain(*args)

    def start(self, args):
        """Start compiling for the types of ``args`` (the body's arguments), once."""
        with self._lock:
            if self._started:
                return
            self._started = True
            _under_way.add(self)
        # copies: the caller may change its arrays while the thread runs
        copies = tuple(a.copy() if hasattr(a, "copy") else a for a in args)
        threading.Thread(target=self._compile, args=(copies,), daemon=True,
                         name="symgrad-numba-compile").start()

    def _compile(self, args):
        try:
            self.fused.__globals__.update(load_kernels(self.kernel_source))
            self.fused(*args)
            self.ready = True
        except BaseException as error:     # noqa: BLE001 (recorded, raised by wait)
            self.error = error
        finally:
            _under_way.discard(self)
            self._done.set()

    def wait(self, timeout=None):
        """True once calls run the kernels; False when ``timeout`` seconds pass first, or when
        no call has started the compile. Raises SymgradError when compiling failed."""
        if not self._started:
            return False
        self._done.wait(timeout)
        if self.error is not None:
            raise SymgradError(f"compiling the Numba kernels of this function failed (it runs "
                               f"the NumPy backend's program): {self.error!r}") from self.error
        return self.ready

    def _abandon(self):
        """In a forked child: the thread is gone; the next call starts it again."""
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._started = False


_held_over_fork = []


def _before_fork():
    # a thread that holds a lock at the fork leaves it held for good in the child: the fork
    # waits until no compile holds the module cache's lock or Numba's compiler lock
    _modules_lock.acquire()
    _held_over_fork.append(_modules_lock)
    module = sys.modules.get("numba.core.compiler_lock")
    if module is not None:
        module.global_compiler_lock.acquire()
        _held_over_fork.append(module.global_compiler_lock)


def _after_fork():
    while _held_over_fork:
        _held_over_fork.pop().release()


def _after_fork_in_child_compiles():
    _after_fork()
    for compiling in list(_under_way):
        compiling._abandon()
    _under_way.clear()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork,
                    after_in_child=_after_fork_in_child_compiles)


__all__ = ["BackgroundCompile", "compiles_in_background", "generate_fused", "cache_directory",
           "load_kernels", "numba_available", "PARALLEL"]
