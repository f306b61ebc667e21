"""The machine a speed figure was measured on, in one line: CPU model, cores, and the vector
instructions the serving paths can use (int8: AVX512-VNNI or AMX; bf16: AVX512-BF16 or AMX).

Speed figures mean little without it: the same model runs several times faster on a CPU with
native int8 or bf16 than on one without. Read from ``/proc/cpuinfo`` (Linux); elsewhere the
model name comes from :func:`platform.processor` and the flags are unknown.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
# The /proc/cpuinfo flags that matter to the serving paths, in the order they are printed.
SPEED_FLAGS: tuple[str, ...] = ("avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int  # the cores this process may run on
    flags: frozenset[str] | None  # None: unknown (no /proc/cpuinfo)

    def has(self, flag: str) -> bool | None:
        return None if self.flags is None else flag in self.flags

    def describe(self) -> str:
        """``AMD EPYC, 2 cores; avx512_vnni yes, avx512_bf16 yes, amx_int8 no, amx_bf16 no``"""
        head = f"{self.cpu}, {self.cores} core{'s' if self.cores != 1 else ''}"
        if self.flags is None:
            return f"{head}; instruction set flags unknown (no {CPUINFO})"
        return (
            head
            + "; "
            + ", ".join(f"{flag} {'yes' if flag in self.flags else 'no'}" for flag in SPEED_FLAGS)
        )


def machine(cpuinfo: Path = CPUINFO) -> Machine:
    """This machine (``cpuinfo``: where to read the CPU's description; tests pass a file)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return Machine(platform.processor() or platform.machine() or "unknown CPU", cores, None)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    cpu = fields.get("model name") or platform.processor() or "unknown CPU"
    return Machine(cpu, cores, frozenset(fields.get("flags", "").split()))
