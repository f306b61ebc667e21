"""The one-line machine description speed figures are printed with (model/serving/machine.py)."""

from __future__ import annotations

from pathlib import Path

from model.serving.machine import SPEED_FLAGS, machine

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_int8
"""


def test_the_cpu_its_cores_and_the_flags_that_matter_to_serving(tmp_path: Path) -> None:
    (tmp_path / "cpuinfo").write_text(CPUINFO, encoding="utf-8")
    found = machine(tmp_path / "cpuinfo")
    assert found.cpu == "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
    assert found.has("amx_int8") is True and found.has("amx_bf16") is False
    line = found.describe()
    assert line.startswith(f"Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz, {found.cores} core")
    assert line.endswith("avx512_vnni yes, avx512_bf16 yes, amx_int8 yes, amx_bf16 no")
    assert "\n" not in line


def test_without_cpuinfo_the_flags_are_unknown_not_absent(tmp_path: Path) -> None:
    found = machine(tmp_path / "missing")
    assert found.flags is None and all(found.has(flag) is None for flag in SPEED_FLAGS)
    assert found.cores >= 1
    assert "instruction set flags unknown" in found.describe()


def test_this_machine_is_described() -> None:
    found = machine()
    line = found.describe()
    assert line.startswith(found.cpu) and "\n" not in line
    assert found.flags is None or all(f"{flag} " in line for flag in SPEED_FLAGS)
