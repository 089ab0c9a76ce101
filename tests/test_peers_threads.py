"""tests/benchmarks/peers.py runs every peer at the same thread count (issue 23): each setting in a
process of its own, its environment and CPUs set before it starts. These check the settings it
hands that process, and one short run on one thread."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
import peers  # noqa: E402


def test_one_thread_tells_every_library_and_unpins_the_kernel(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "512")
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    environment = peers.thread_environment(1)
    assert {environment[v] for v in peers.THREAD_VARIABLES} == {"1"}
    assert "OPENBLAS_CORETYPE" not in environment and "OPENBLAS_L2_SIZE" not in environment
    assert environment["XLA_FLAGS"] == "--xla_dump_to=/tmp/x " + peers.ONE_THREAD_XLA_FLAGS
    assert os.environ["OPENBLAS_CORETYPE"] == "Haswell"      # this process's own is untouched


def test_all_cores_keep_xla_to_its_default(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    environment = peers.thread_environment(2)
    assert {environment[v] for v in peers.THREAD_VARIABLES} == {"2"}
    assert "XLA_FLAGS" not in environment


def test_the_idlest_cpu_is_one_this_process_may_use():
    cpus = os.sched_getaffinity(0)
    assert peers.idlest_cpu(cpus, seconds=0.05) in cpus


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity here")
def test_a_one_thread_run_is_confined_to_one_cpu_and_says_so(tmp_path):
    table = tmp_path / "table.md"
    environment = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_CORETYPE="Haswell")
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "benchmarks" / "peers.py"), "--threads", "1",
         "--only", "scalar", "--peers", "none", "--quick", "--repeats", "1",
         "--markdown", str(table)],
        capture_output=True, text=True, env=environment, cwd=ROOT, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.count("## 1 thread") == 1 and "## 2 threads" not in out
    threads_line = next(line for line in out.splitlines() if line.startswith("threads: "))
    assert threads_line.startswith("threads: 1, on CPU ") and " of " in threads_line
    assert "OPENBLAS_NUM_THREADS=1" in threads_line and "OPENBLAS_CORETYPE=unset" in threads_line
    assert peers.ONE_THREAD_XLA_FLAGS in threads_line
    assert "GEMM 128x784x500: NumPy on one thread" in out
    pools = [line for line in out.splitlines() if line.startswith("thread pool: ")]
    assert pools and all(", 1 threads, " in line for line in pools), pools
    # the kernel OpenBLAS picks for this processor by itself, not the one asked for above
    native = subprocess.run(
        [sys.executable, "-c", "import numpy, threadpoolctl; print(*{p.get('architecture') for p "
         "in threadpoolctl.threadpool_info() if p['internal_api'] == 'openblas'})"],
        capture_output=True, text=True, check=True,
        env={k: v for k, v in environment.items() if k not in peers.KERNEL_VARIABLES}).stdout.split()
    assert native and all(f"kernel {kernel}, " in "".join(pools) for kernel in native), pools
    written = table.read_text()
    assert written.startswith("**1 thread**") and "| scalar gradient (x + y) * z |" in written
