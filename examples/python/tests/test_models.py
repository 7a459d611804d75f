"""linattn.load: the golden tiny models' logits and greedy generations, the logits of
linattn-generate --dump-logits on the same ids, streaming, and errors."""
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import linattn

from test_ops import GOLDEN, read_safetensors

FAMILIES = ["model_gla", "model_gsa", "model_hgrn_bit"]


def golden(family):
    return read_safetensors(os.path.join(GOLDEN, family, "golden.safetensors"))[0]


def logits_close(family, got, want):
    err = np.abs(got.astype(np.float64) - want)
    if family == "model_hgrn_bit":  # ternary rounding: the README's mean / max bound (examples/common/golden.hpp)
        return err.mean() <= 1e-3 and err.max() <= 5e-2
    return err.max() <= 1e-3


@pytest.fixture(scope="module", params=FAMILIES)
def loaded(request):
    return request.param, linattn.load(os.path.join(GOLDEN, request.param), threads=1)


def test_golden_logits(loaded):
    family, model = loaded
    g = golden(family)
    assert model.model_type == family[len("model_"):]
    for b in range(g["input_ids"].shape[0]):
        for form in ("auto", "recurrent", "chunk"):
            assert logits_close(family, model.forward(g["input_ids"][b], form=form), g["logits"][b]), (b, form)


def test_golden_greedy_generation_and_stream(loaded):
    family, model = loaded
    g = golden(family)
    prompt, want = g["prompt_ids"][0], [int(i) for i in g["generated_ids"][0]]
    streamed = []
    got = model.generate(prompt, max_new_tokens=len(want), stop_at_eos=False, stream=streamed.append)
    assert got == want and streamed == want
    # Sampling: reproducible for a seed, and a different seed gives another continuation.
    a = model.generate(prompt, max_new_tokens=12, temperature=1.0, top_k=50, seed=3, stop_at_eos=False)
    b = model.generate(prompt, max_new_tokens=12, temperature=1.0, top_k=50, seed=3, stop_at_eos=False)
    c = model.generate(prompt, max_new_tokens=12, temperature=1.0, top_k=50, seed=4, stop_at_eos=False)
    assert a == b and a != c


def test_logits_equal_the_cli(loaded):
    family, model = loaded
    exe = os.environ.get("LINATTN_GENERATE")
    if not exe:
        pytest.skip("LINATTN_GENERATE (the linattn-generate binary) is set by ctest")
    ids = [int(i) for i in golden(family)["input_ids"][0]]
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "logits.safetensors")
        subprocess.run([exe, "--model", model.path, "--ids", ",".join(map(str, ids)), "--threads", "1",
                        "--dump-logits", dump], check=True, capture_output=True)
        cli = read_safetensors(dump)[0]["logits"]
    np.testing.assert_array_equal(model.forward(ids), cli)


def test_model_errors():
    with pytest.raises(RuntimeError, match="no_such_model: is not a directory"):
        linattn.load(os.path.join(GOLDEN, "no_such_model"))
    model = linattn.load(os.path.join(GOLDEN, "model_gla"))
    with pytest.raises(ValueError, match=r"token id 256 is outside the model's vocabulary \[0, 256\)"):
        model.forward([1, 256])
    with pytest.raises(ValueError, match="no tokenizer.model"):
        model.generate("hello")
    with pytest.raises(ValueError, match="1-D"):
        model.forward([[1, 2]])
    with pytest.raises(ValueError, match="packing"):
        linattn.load(os.path.join(GOLDEN, "model_hgrn_bit"), packing="3")
    with pytest.raises(ValueError, match="top_p"):
        model.generate([1, 2], temperature=1.0, top_p=2.0)


CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a linear attention layer keeps a state of fixed size",
    "the gated recurrence decays its state at every token",
    "slots hold a summary of what the sequence has seen so far",
    "ternary weights are minus one, zero or plus one",
    "the model reads a prompt and writes a continuation",
    "brown dogs and quick foxes share the same field",
    "every token updates the state and reads it back",
] * 8


def test_text_in_text_out(tmp_path):
    spm = pytest.importorskip("sentencepiece")  # Debian: python3-sentencepiece
    for f in ("config.json", "model.safetensors"):
        shutil.copy(os.path.join(GOLDEN, "model_gla", f), tmp_path / f)
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_prefix=str(tmp_path / "tokenizer"),
                                   vocab_size=120, model_type="unigram", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    model = linattn.load(tmp_path, threads=1)
    tok = model.tokenizer
    assert tok is not None and tok.vocab_size() <= model.vocab_size
    prompt = "the quick brown fox"
    pieces = []
    text = model.generate(prompt, max_new_tokens=12, stream=pieces.append)
    prompt_ids = [tok.bos_id()] + tok.encode(prompt)
    ids = model.generate(prompt_ids, max_new_tokens=12)
    assert 1 <= len(ids) <= 12 and all(i < tok.vocab_size() for i in ids)  # sampled among the tokenizer's ids
    assert text == tok.decode(prompt_ids + ids)[len(tok.decode(prompt_ids)):] and "".join(pieces) == text
    exe = os.environ.get("LINATTN_GENERATE")
    if exe:  # the CLI prints the prompt, then the same continuation
        cli = subprocess.run([exe, "--model", str(tmp_path), "--prompt", prompt, "--max-new-tokens", "12",
                              "--threads", "1"], check=True, capture_output=True, text=True)
        assert cli.stdout.rstrip("\n") == prompt + text
