"""What a process computes with, for the reports that must name it: the BLAS library really mapped
into the process (from /proc/self/maps, whatever the build says: Debian's torch loads whichever
libblas.so.3 comes first, the reference BLAS or OpenBLAS through LD_LIBRARY_PATH), OpenBLAS's own
account of itself, and for a training run torch's version, its threads and the device. Imports
nothing but the standard library at module level, so an interpreter without torch (the numpy peer
of python/bench_peers.py) can use it.
"""
import os
import platform


def blas_libraries():
    """Paths of the BLAS/LAPACK/oneDNN libraries mapped into this process."""
    names = ("blas", "lapack", "mkl", "dnnl", "blis")
    seen = []
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            base = os.path.basename(path).lower()
            if any(n in base for n in names) and path not in seen:
                seen.append(path)
    return [os.path.realpath(p) for p in seen]


def openblas_info(paths):
    """(config string, threads) of a loaded OpenBLAS, read through its own API; None if none."""
    import ctypes

    for path in paths:
        lib = ctypes.CDLL(path)
        # plain OpenBLAS, and scipy-openblas (numpy's wheels), which prefixes and suffixes symbols
        for pre, suf in (("", ""), ("scipy_", "64_"), ("scipy_", "")):
            try:
                conf = getattr(lib, f"{pre}openblas_get_config{suf}")
                threads = getattr(lib, f"{pre}openblas_get_num_threads{suf}")
            except AttributeError:
                continue
            conf.restype = ctypes.c_char_p
            return conf().decode(), int(threads())
    return None


def blas_name(paths):
    """The BLAS a process multiplies with, in words: OpenBLAS's config string and threads, or the
    first BLAS library's file name (Debian's reference BLAS: libblas.so.3.x under blas/)."""
    ob = openblas_info(paths)
    if ob:
        return f"{ob[0].strip()}, {ob[1]} thread(s)"
    blas = [p for p in paths if "blas" in os.path.basename(p).lower()]
    if not blas:
        return "no BLAS library mapped"
    kind = "reference BLAS " if "/blas/" in blas[0] else ""
    return f"{kind}{blas[0]}"


def cpu_name():
    """The CPU's model name (/proc/cpuinfo) and its logical cores."""
    name = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} logical cores"


def describe(device):
    """A training run's engine on `device`: torch and Python versions, BLAS, threads, device, and
    the attention `--attention auto` picks (flex_attention where torch has it)."""
    import torch

    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401 (torch >= 2.5)

        attention = "flex_attention"
    except ImportError:
        attention = "dense additive mask"
    return {
        "name": "pytorch",
        "version": f"torch {torch.__version__}, Python {platform.python_version()}",
        "blas": blas_name(blas_libraries()),
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "attention": attention,
    }
