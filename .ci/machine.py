"""Print, once at the start of CI, what makes numbers machine-dependent: the CPU and the
instruction sets the kernels pick from, the numerical libraries' versions and the BLAS in use.
A test comparing two numerical paths that fails on one machine can then be read from the log."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
from pathlib import Path

FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def cpu() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
    return model, [flag for flag in FLAGS if flag in flags]


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main() -> None:
    model, flags = cpu()
    print(f"machine: {model}; {os.cpu_count()} cores; {platform.machine()}")
    print(f"  instruction sets: {' '.join(flags) or 'none of ' + ', '.join(FLAGS)}")
    print(
        f"  python {platform.python_version()}, "
        + ", ".join(
            f"{name} {version(name)}" for name in ("numpy", "onnxruntime", "torch", "scikit-learn")
        )
    )
    import numpy  # noqa: F401  (loaded, so threadpoolctl sees its BLAS)
    from threadpoolctl import threadpool_info

    with contextlib.suppress(ImportError):
        import torch  # noqa: F401  (its OpenMP and BLAS too)

    for pool in threadpool_info():
        print(
            f"  {pool['user_api']}: {pool['internal_api']} {pool.get('version')} "
            f"({pool.get('architecture')}, {pool['num_threads']} threads) {pool['filepath']}"
        )
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if name in os.environ:
            print(f"  {name}={os.environ[name]}")


if __name__ == "__main__":
    main()
