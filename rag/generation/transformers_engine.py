"""Hugging Face transformers: the default engine when CUDA is available; also works on CPU.

Loads a safetensors folder, a Hub id, or a GGUF file (dequantized by transformers). Dequantizing a
GGUF takes over a minute on CPU, so the result is saved once under the cache folder as safetensors
and later loads take about a second.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Iterator

from ..errors import ModelError
from ..models import ModelRef, hub_download, verify
from .base import Generator, Grounding, Usage, constrained_shares, yes_share

log = logging.getLogger(__name__)


class TransformersGenerator(Generator):
    name = "transformers"

    def __init__(self, ref: ModelRef, cache_dir: Path, context_window: int = 4096, device: str | None = None):
        self.ref = ref
        self.model_name = ref.spec
        self.cache_dir = Path(cache_dir)
        self.context_window = context_window
        self._device = device
        self._model = None
        self._tokenizer = None

    @property
    def device(self) -> str:
        if self._device is None:
            import torch

            self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    def _ensure_loaded(self):
        if self._model is None:
            self._tokenizer, self._model = self._load()
        return self._tokenizer, self._model

    def _load(self):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise ModelError("transformers and torch are not installed: pip install -r requirements.txt") from None
        folder = self._folder()
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32  # bf16 is slower on this CPU
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        except (OSError, ValueError) as e:
            raise ModelError(f"transformers cannot load {self.ref.spec}: {str(e).splitlines()[0]}") from None
        model.to(self.device).eval()
        log.info("loaded generator=%s engine=transformers device=%s", self.ref.spec, self.device)
        return tokenizer, model

    def _folder(self) -> str:
        if self.ref.kind == "hub":
            return hub_download(self.ref.location)
        if self.ref.kind == "gguf":
            return str(dequantized_copy(self.ref, self.cache_dir))
        verify(self.ref)
        return self.ref.location

    def count_tokens(self, messages: list[dict]) -> int:
        tokenizer, _ = self._ensure_loaded()
        return len(self._encode(tokenizer, messages))

    def count_text(self, text: str) -> int:
        tokenizer, _ = self._ensure_loaded()
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    @staticmethod
    def _encode(tokenizer, messages):
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)

    def stream(self, messages, max_tokens=160, temperature=0.0, usage: Usage | None = None, stop_event=None,
               grounding: Grounding | None = None) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        tokenizer, model = self._ensure_loaded()
        ids = torch.tensor([self._encode(tokenizer, messages)], device=self.device)
        if usage is not None:
            usage.prompt_tokens = int(ids.shape[1])
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)

        kwargs = generate_args(tokenizer, ids, streamer, max_tokens, temperature, stop_event)
        errors: list[BaseException] = []

        def run():
            try:
                with torch.inference_mode():
                    out = model.generate(**kwargs)
                if usage is not None:
                    usage.completion_tokens = int(out.shape[1] - ids.shape[1])
            except BaseException as e:  # surfaced in the caller's thread below
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield piece
        thread.join()
        if errors:
            raise ModelError(f"transformers generation failed: {errors[0]}")

    def yes_probability(self, messages: list[dict], grounding=None, hidden: list | None = None) -> float | None:
        """One forward pass over the conversation; Yes against No in the last position's logits."""
        import torch

        tokenizer, model = self._ensure_loaded()
        ids = torch.tensor([self._encode(tokenizer, messages)], device=self.device)
        with torch.inference_mode():
            out = model(input_ids=ids, output_hidden_states=hidden is not None)
            logits = out.logits[0, -1].float().cpu().numpy()
            if hidden is not None:  # the last entry is after the final norm, as llama.cpp's embeddings are
                hidden.append(out.hidden_states[-1][0, -1].float().cpu().numpy())
        first = lambda w: tokenizer.encode(w, add_special_tokens=False)[0]  # noqa: E731
        return yes_share(logits, ([first(w) for w in ("Yes", "yes", " Yes")], [first(w) for w in ("No", "no", " No")]))

    def choice_shares(self, messages: list[dict], options, grounding=None) -> list[float] | None:
        """`constrained_shares` with one forward pass over the whole conversation per prefix read."""
        import torch

        tokenizer, model = self._ensure_loaded()
        prompt = self._encode(tokenizer, messages)

        def next_logits(prefix):
            ids = torch.tensor([prompt + list(prefix)], device=self.device)
            with torch.inference_mode():
                return model(input_ids=ids).logits[0, -1].float().cpu().numpy()

        encoded = [tuple(tokenizer.encode(o, add_special_tokens=False)) for o in options]
        return constrained_shares(encoded, next_logits, end=tokenizer.eos_token_id) if any(encoded) else None

    def warm_up(self, system_prompt: str = "") -> None:
        self._ensure_loaded()


def dequantized_copy(ref: ModelRef, cache_dir: Path) -> Path:
    """A safetensors copy of the GGUF model, made once (verified GGUF in, atomic folder out)."""
    tag = (ref.sha256 or _quick_id(Path(ref.location)))[:16]
    target = cache_dir / "transformers" / f"{Path(ref.location).stem}-{tag}"
    if (target / "config.json").is_file():
        return target
    verify(ref)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(ref.location)
    log.info("dequantizing gguf=%s (once; later loads use %s)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers refuses to save a model "quantized with gguf" until the quantizer is detached.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target


def generate_args(tokenizer, ids, streamer, max_tokens: int, temperature: float, stop_event) -> dict:
    """`model.generate` arguments: greedy unless a temperature is set; stops when `stop_event` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return bool(stop_event is not None and stop_event.is_set())

    kwargs = dict(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens, streamer=streamer,
        do_sample=temperature > 0, stopping_criteria=StoppingCriteriaList([_Stop()]),
        pad_token_id=tokenizer.eos_token_id,
    )
    if temperature > 0:
        kwargs["temperature"] = temperature
    return kwargs


def _quick_id(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size:x}{st.st_mtime_ns:x}"
