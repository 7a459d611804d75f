"""Language models from Hugging Face checkpoint folders: fla's GLA and GSA causal LMs and the
MatMul-free LM (matmulfreellm's HGRNBit), as linattn-generate loads and runs them.

    model = linattn.load("path/to/checkpoint")
    logits = model.forward([1, 42, 7])                 # [T, vocab]
    ids = model.generate([1, 42, 7], max_new_tokens=16)
    text = model.generate("The capital of", temperature=0.8, top_p=0.9, stream=print)  # needs tokenizer.model
"""
import os

import numpy as np

from . import _core
from . import ops as _ops

__all__ = ["LanguageModel", "load"]


def _ids(x, what):
    if isinstance(x, str):
        raise TypeError(f"linattn: {what} is text; this model folder has no tokenizer.model")
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"linattn: {what} must be a 1-D sequence of token ids, got shape {a.shape} dtype {a.dtype}")
    return [int(i) for i in a]


class LanguageModel:
    """A loaded model; `path/tokenizer.model` (SentencePiece, python3-sentencepiece) enables text."""

    def __init__(self, path, threads=None, packing="2"):
        self.path = os.fspath(path)
        self._threads = threads
        self._model = _core.Model(self.path, self._threads_of(None), str(packing))
        self.tokenizer = None
        spm = os.path.join(self.path, "tokenizer.model")
        if os.path.exists(spm):
            import sentencepiece  # Debian: python3-sentencepiece

            self.tokenizer = sentencepiece.SentencePieceProcessor(model_file=spm)

    def _threads_of(self, threads):
        if threads is not None:
            return int(threads)
        return _ops._threads if self._threads is None else int(self._threads)

    @property
    def model_type(self):
        return self._model.model_type

    @property
    def vocab_size(self):
        return self._model.vocab_size

    def forward(self, ids, form="auto", threads=None):
        """Logits [T, vocab] (float32) of every position of one sequence of ids; a torch tensor
        in gives a torch tensor out."""
        out = self._model.logits(_ids(ids, "ids"), form, self._threads_of(threads))
        if hasattr(ids, "detach"):
            import torch

            return torch.from_numpy(out)
        return out

    __call__ = forward

    def generate(self, prompt, max_new_tokens=32, temperature=0.0, top_k=0, top_p=1.0, seed=0, stop_at_eos=True,
                 form="auto", threads=None, stream=None):
        """Continues `prompt` (ids, or text with a tokenizer) with the CLI's sampling options
        (temperature 0: greedy). Returns the generated ids, or text for a text prompt. `stream`,
        if given, is called with each new token as it is chosen (its text for a text prompt)."""
        text = isinstance(prompt, str)
        if text and self.tokenizer is None:
            raise ValueError(f"linattn: {self.path} has no tokenizer.model: give token ids instead of text")
        ids = [self.tokenizer.bos_id()] + self.tokenizer.encode(prompt) if text else _ids(prompt, "prompt")
        # Text is decoded with the prompt in front and the prompt's text cut off (as
        # linattn-generate prints it), so a continuation keeps the space its first piece begins with.
        generated = list(ids)
        on_token = None
        if stream is not None:
            def on_token(_, token):
                if not text:
                    stream(token)
                    return
                before = self.tokenizer.decode(generated)
                generated.append(token)
                stream(self.tokenizer.decode(generated)[len(before):])
        sample_vocab = self.tokenizer.vocab_size() if self.tokenizer is not None else 0
        out = self._model.generate([ids], int(max_new_tokens), float(temperature), int(top_k), float(top_p), int(seed),
                                   bool(stop_at_eos), sample_vocab, form, self._threads_of(threads), on_token)[0]
        if not text:
            return out
        return self.tokenizer.decode(ids + out)[len(self.tokenizer.decode(ids)):]


def load(path, threads=None, packing="2"):
    """A GLA, GSA or MatMul-free LM (config.json's model_type) from a checkpoint folder:
    config.json and model.safetensors, or shards with model.safetensors.index.json; f32, bf16
    or f16. packing: the MatMul-free LM's ternary weights, "2" (2-bit) or "1.6" (base 3)."""
    return LanguageModel(path, threads=threads, packing=packing)
