"""GPU detection for the panel: which CUDA device there is and how much memory it has, without importing torch
when it is not installed (the panel must build before the dependencies are). Pure Python, tested with pytest."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from typing import Callable, Optional

# What a missing or broken PyTorch raises on import or on its first CUDA call: ImportError, OSError (a DLL or .so
# that fails to load, e.g. a CUDA build without its driver libraries), RuntimeError (CUDA initialisation).
BROKEN_TORCH = (ImportError, OSError, RuntimeError)
NVIDIA_SMI_QUERY = ["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]


def parse_nvidia_smi(output: str) -> list[tuple[str, int]]:
    """(name, memory in MiB) per line of ``nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits``."""
    devices = []
    for line in output.splitlines():
        name, _, memory = line.rpartition(",")
        if name.strip() and memory.strip().isdigit():
            devices.append((name.strip(), int(memory.strip())))
    return devices


def nvidia_smi_devices(run: Callable = subprocess.run) -> list[tuple[str, int]]:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        done = run([tool, *NVIDIA_SMI_QUERY], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else []


def torch_installed() -> bool:
    """Whether torch can be imported, without importing it (that takes seconds) when it has not been yet."""
    if "torch" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def torch_cuda_available() -> bool:
    """PyTorch is installed and can use a CUDA device (False, never an error, when torch is missing)."""
    if not torch_installed():
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except BROKEN_TORCH:
        return False


def torch_devices() -> Optional[list[tuple[str, int]]]:
    """CUDA devices as PyTorch sees them, or None when torch is not installed."""
    if not torch_installed():
        return None
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        return [(torch.cuda.get_device_name(i), torch.cuda.get_device_properties(i).total_memory // 2**20)
                for i in range(torch.cuda.device_count())]
    except BROKEN_TORCH:
        return None  # the panel must build: a torch that fails to load is reported like a missing one


def describe(torch_view: Optional[list] = "ask", smi_view: Optional[list] = None) -> str:
    """One line: 'GPU: <name>, <n> GB' (first device), or why the analysis will run on the CPU."""
    if torch_view == "ask":
        torch_view = torch_devices()
    if smi_view is None:
        smi_view = nvidia_smi_devices()
    if torch_view:
        name, memory = torch_view[0]
        more = f" (+{len(torch_view) - 1} more)" if len(torch_view) > 1 else ""
        return f"GPU: {name}, {memory / 1024:.1f} GB{more}"
    if smi_view:
        name, memory = smi_view[0]
        if torch_view is None:
            return f"GPU: {name}, {memory / 1024:.1f} GB (PyTorch not installed yet: Apply installs it)"
        return f"GPU: {name}, {memory / 1024:.1f} GB, but this PyTorch cannot use it (CPU-only build): choose CPU"
    return "GPU: none found (no CUDA device): the analysis runs on the CPU"
