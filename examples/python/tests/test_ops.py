"""linattn.ops against the golden files (forward and gradients), torch.autograd.gradcheck, numpy
in / numpy out, strided inputs, errors, and one GLA layer that learns."""
import glob
import json
import math
import os
import struct

import numpy as np
import pytest

import linattn
from linattn import ops

torch = pytest.importorskip("torch")

GOLDEN = os.environ.get("LINATTN_GOLDEN_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "tests", "data"))
DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I8": np.int8}


def read_safetensors(path):
    """{name: array} and the metadata of a safetensors file (the format is a JSON header + raw data)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=DTYPES[t["dtype"]]).reshape(t["shape"])
    return out, meta


def cases(pattern):
    files = sorted(glob.glob(os.path.join(GOLDEN, pattern)))
    assert files, f"no golden files {pattern} in {GOLDEN}"
    return files


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


def scale_of(meta, K):
    s = float(meta.get("scale", K ** -0.5))
    return None if abs(s * math.sqrt(K) - 1) < 1e-3 else s  # K^-1/2, rounded in the text


def t(a, dtype=torch.float64, grad=False):
    return torch.tensor(np.asarray(a), dtype=dtype, requires_grad=grad)


# ---- golden forward ----------------------------------------------------------------------------

@pytest.mark.parametrize("op", [ops.chunk_gla, ops.fused_chunk_gla, ops.fused_recurrent_gla])
@pytest.mark.parametrize("path", cases("gla_*.safetensors"), ids=os.path.basename)
def test_gla_golden(op, path):
    x, meta = read_safetensors(path)
    K = x["q"].shape[-1]
    o, ht = op(torch.from_numpy(x["q"].copy()), torch.from_numpy(x["k"].copy()), torch.from_numpy(x["v"].copy()),
               torch.from_numpy(x["gk"].copy()), scale=scale_of(meta, K), initial_state=torch.from_numpy(x["h0"].copy()),
               output_final_state=True, cu_seqlens=x.get("cu_seqlens"))
    assert isinstance(o, torch.Tensor) and o.dtype == torch.float32
    assert rel(o.numpy(), x["o"]) <= 1e-4
    assert rel(ht.numpy(), x["ht"]) <= 1e-4


@pytest.mark.parametrize("op", [ops.chunk_gsa, ops.fused_recurrent_gsa])
@pytest.mark.parametrize("path", cases("gsa_*.safetensors"), ids=os.path.basename)
def test_gsa_golden(op, path):
    x, meta = read_safetensors(path)
    o, (hk, hv) = op(x["q"], x["k"], x["v"], x["s"], x["g"], scale=scale_of(meta, x["q"].shape[-1]),
                     initial_state=(x["hk0"], x["hv0"]), output_final_state=True)
    assert isinstance(o, np.ndarray)  # numpy in, numpy out
    assert rel(o, x["o"]) <= 1e-4 and rel(hk, x["hkt"]) <= 1e-4 and rel(hv, x["hvt"]) <= 1e-4


@pytest.mark.parametrize("op", [ops.chunk_hgrn, ops.fused_recurrent_hgrn])
@pytest.mark.parametrize("path", cases("hgrn_*.safetensors"), ids=os.path.basename)
def test_hgrn_golden(op, path):
    x, _ = read_safetensors(path)
    o, ht = op(x["x"], x["g"], initial_state=x["h0"], output_final_state=True)
    assert rel(o, x["o"]) <= 1e-4 and rel(ht, x["ht"]) <= 1e-4


# ---- golden gradients (float64 inputs: 1e-10) ---------------------------------------------------

def backward_of(outputs, grads):
    pairs = [(o, g) for o, g in zip(outputs, grads) if o is not None]
    torch.autograd.backward([o for o, _ in pairs], [torch.from_numpy(np.asarray(g, dtype=np.float64)) for _, g in pairs])


@pytest.mark.parametrize("op", [ops.chunk_gla, ops.fused_recurrent_gla])
@pytest.mark.parametrize("path", cases("grad/gla_grad_*.safetensors"), ids=os.path.basename)
def test_gla_golden_gradients(op, path):
    x, meta = read_safetensors(path)
    q, k, v, g, h0 = (t(x[n], grad=True) for n in ("q", "k", "v", "gk", "h0"))
    o, ht = op(q, k, v, g, scale=scale_of(meta, q.shape[-1]), initial_state=h0, output_final_state=True,
               cu_seqlens=x.get("cu_seqlens"))
    backward_of([o, ht], [x["do"], x["dht"]])
    for name, tensor in (("dq", q), ("dk", k), ("dv", v), ("dgk", g), ("dh0", h0)):
        assert rel(tensor.grad.numpy(), x[name]) <= 1e-10, name


@pytest.mark.parametrize("op", [ops.chunk_gsa, ops.fused_recurrent_gsa])
@pytest.mark.parametrize("path", cases("grad/gsa_grad_*.safetensors"), ids=os.path.basename)
def test_gsa_golden_gradients(op, path):
    x, meta = read_safetensors(path)
    q, k, v, s, g, hk0, hv0 = (t(x[n], grad=True) for n in ("q", "k", "v", "s", "g", "hk0", "hv0"))
    o, (hk, hv) = op(q, k, v, s, g, scale=scale_of(meta, x["q"].shape[-1]), initial_state=(hk0, hv0),
                     output_final_state=True)
    backward_of([o, hk, hv], [x["do"], x["dhkt"], x["dhvt"]])
    for name, tensor in (("dq", q), ("dk", k), ("dv", v), ("ds", s), ("dg", g), ("dhk0", hk0), ("dhv0", hv0)):
        assert rel(tensor.grad.numpy(), x[name]) <= 1e-10, name


@pytest.mark.parametrize("op", [ops.chunk_hgrn, ops.fused_recurrent_hgrn])
@pytest.mark.parametrize("path", cases("grad/hgrn_grad_*.safetensors"), ids=os.path.basename)
def test_hgrn_golden_gradients(op, path):
    x, _ = read_safetensors(path)
    xs, g, h0 = (t(x[n], grad=True) for n in ("x", "g", "h0"))
    o, ht = op(xs, g, initial_state=h0, output_final_state=True)
    backward_of([o, ht], [x["do"], x["dht"]])
    for name, tensor in (("dx", xs), ("dg", g), ("dh0", h0)):
        assert rel(tensor.grad.numpy(), x[name]) <= 1e-10, name


# ---- gradcheck in double: varlen, GQA, strided inputs -------------------------------------------

def randn(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))


def log_gate(*shape, seed=0):
    return torch.nn.functional.logsigmoid(randn(*shape, seed=seed)) / 4


@pytest.mark.parametrize("op", [ops.chunk_gla, ops.fused_chunk_gla, ops.fused_recurrent_gla])
def test_gla_gradcheck_varlen_strided(op):
    B, T, H, K, V = 1, 9, 2, 5, 3
    # q is a strided view (every other head of a wider tensor); k is transposed in memory.
    q = randn(B, T, 2 * H, K, seed=1)[:, :, ::2].requires_grad_()
    k = randn(B, H, T, K, seed=2).transpose(1, 2).requires_grad_()
    v, g = randn(B, T, H, V, seed=3).requires_grad_(), log_gate(B, T, H, K, seed=4).requires_grad_()
    h0 = randn(3, H, K, V, seed=5).requires_grad_()
    cu = torch.tensor([0, 2, 2, 9])

    def f(q, k, v, g, h0):
        o, ht = op(q, k, v, g, initial_state=h0, output_final_state=True, cu_seqlens=cu)
        return o, ht

    assert torch.autograd.gradcheck(f, (q, k, v, g, h0))


@pytest.mark.parametrize("op", [ops.chunk_gsa, ops.fused_recurrent_gsa])
def test_gsa_gradcheck_gqa(op):
    B, T, HQ, H, K, V, M = 2, 7, 4, 2, 4, 3, 5
    q = randn(B, T, HQ, K, seed=1).requires_grad_()
    k, v = randn(B, T, H, K, seed=2).requires_grad_(), randn(B, T, H, V, seed=3).requires_grad_()
    s, g = randn(B, T, H, M, seed=4).requires_grad_(), log_gate(B, T, H, M, seed=5).requires_grad_()
    hk0, hv0 = randn(B, H, K, M, seed=6).requires_grad_(), randn(B, H, M, V, seed=7).requires_grad_()

    def f(q, k, v, s, g, hk0, hv0):
        o, (hk, hv) = op(q, k, v, s, g, scale=0.5, initial_state=(hk0, hv0), output_final_state=True)
        return o, hk, hv

    assert torch.autograd.gradcheck(f, (q, k, v, s, g, hk0, hv0))


@pytest.mark.parametrize("op", [ops.chunk_hgrn, ops.fused_recurrent_hgrn])
def test_hgrn_gradcheck_varlen(op):
    x, g = randn(1, 10, 6, seed=1).requires_grad_(), log_gate(1, 10, 6, seed=2).requires_grad_()
    h0 = randn(2, 6, seed=3).requires_grad_()
    cu = np.array([0, 3, 10])
    assert torch.autograd.gradcheck(
        lambda x, g, h0: op(x, g, initial_state=h0, output_final_state=True, cu_seqlens=cu), (x, g, h0))


# ---- forms agree, numpy, threads, errors --------------------------------------------------------

def test_forms_and_kinds_agree():
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 70, 2, 16)), rng.standard_normal((2, 70, 2, 16))
    v = rng.standard_normal((2, 70, 2, 8))
    g = np.log(1 / (1 + np.exp(-rng.standard_normal((2, 70, 2, 16))))) / 8
    ref, ref_ht = ops.fused_recurrent_gla(q, k, v, g, output_final_state=True)
    assert isinstance(ref, np.ndarray) and ref.dtype == np.float64
    for op in (ops.chunk_gla, ops.fused_chunk_gla):
        o, ht = op(q, k, v, g, output_final_state=True, threads=2)
        assert rel(o, ref) <= 1e-12 and rel(ht, ref_ht) <= 1e-12
    o, ht = ops.chunk_gla(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), torch.from_numpy(g))
    assert isinstance(o, torch.Tensor) and ht is None
    assert rel(o.numpy(), ref) <= 1e-12
    # Prefix + state = the whole sequence.
    o1, h1 = ops.chunk_gla(q[:, :30], k[:, :30], v[:, :30], g[:, :30], output_final_state=True)
    o2, h2 = ops.chunk_gla(q[:, 30:], k[:, 30:], v[:, 30:], g[:, 30:], initial_state=h1, output_final_state=True)
    assert rel(np.concatenate([o1, o2], axis=1), ref) <= 1e-12 and rel(h2, ref_ht) <= 1e-12


def test_gla_step_continues_a_prefill_in_place():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal((1, 20, 3, 8)), rng.standard_normal((1, 20, 3, 8))
    v, g = rng.standard_normal((1, 20, 3, 5)), -rng.uniform(0, 0.5, (1, 20, 3, 8))
    ref, ref_ht = ops.fused_recurrent_gla(q, k, v, g, output_final_state=True)
    _, state = ops.chunk_gla(q[:, :12], k[:, :12], v[:, :12], g[:, :12], output_final_state=True)
    state = torch.from_numpy(state)  # a torch state is updated in place too
    for t in range(12, 20):
        o = ops.gla_step(*(torch.from_numpy(x[:, t]) for x in (q, k, v, g)), state)
        assert rel(o.numpy(), ref[:, t]) <= 1e-12
    assert rel(state.numpy(), ref_ht) <= 1e-12
    with pytest.raises(ValueError, match="read-only"):
        frozen = np.zeros((1, 3, 8, 5))
        frozen.flags.writeable = False
        ops.gla_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], frozen)
    with pytest.raises(ValueError, match="state has shape"):
        ops.gla_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], np.zeros((1, 3, 8, 4)))
    # Off the fast path: inputs needing grad, a strided last dimension (copied), mixed kinds.
    st = np.zeros((1, 3, 8, 5))
    o1 = ops.gla_step(torch.from_numpy(q[:, 0]).requires_grad_(), torch.from_numpy(k[:, 0]), v[:, 0], g[:, 0], st)
    st2 = np.zeros((1, 3, 8, 5))
    o2 = ops.gla_step(np.asfortranarray(q[:, 0]), k[:, 0], v[:, 0], g[:, 0], st2)
    assert isinstance(o1, torch.Tensor) and rel(o1.numpy(), o2) <= 1e-15 and rel(st, st2) <= 1e-15
    with pytest.raises(ValueError, match="dtype"):
        ops.gla_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], np.zeros((1, 3, 8, 5), np.float32))


def test_threads_setting():
    linattn.set_num_threads(1)
    assert linattn.get_num_threads() == 1
    linattn.set_num_threads(0)
    assert linattn.get_num_threads() >= 1
    with pytest.raises(ValueError):
        linattn.set_num_threads(-1)


def test_errors_carry_the_library_message():
    q = np.zeros((1, 4, 2, 8), np.float32)
    with pytest.raises(ValueError, match=r"linattn::gla::chunk: v has shape \[1, 4, 3, 8\]"):
        ops.chunk_gla(q, q, np.zeros((1, 4, 3, 8), np.float32), q)
    with pytest.raises(ValueError, match="dtype"):
        ops.chunk_gla(q, q, q, q.astype(np.float64))
    with pytest.raises(ValueError, match="initial_state has shape"):
        ops.chunk_gla(q, q, q, q, initial_state=np.zeros((1, 2, 8, 7), np.float32))
    with pytest.raises(ValueError, match="cu_seqlens"):
        ops.fused_recurrent_gla(q, q, q, q, cu_seqlens=np.array([0, 2, 9]))
    with pytest.raises(ValueError, match="B = 1"):
        ops.chunk_gla(np.zeros((2, 4, 2, 8)), *(np.zeros((2, 4, 2, 8)),) * 3, cu_seqlens=[0, 4])
    with pytest.raises(ValueError, match="int"):
        ops.chunk_hgrn(np.zeros((1, 3, 4), np.int32), np.zeros((1, 3, 4), np.int32))


# ---- a torch.nn.Module of one GLA layer learns --------------------------------------------------

class TinyGLA(torch.nn.Module):
    def __init__(self, d=16, heads=2):
        super().__init__()
        self.h, self.k = heads, d // heads
        self.qkv = torch.nn.Linear(d, 3 * d, bias=False)
        self.gate = torch.nn.Linear(d, d)
        self.out = torch.nn.Linear(d, d, bias=False)

    def forward(self, x):
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, self.k).unbind(2)
        g = torch.nn.functional.logsigmoid(self.gate(x)).view(B, T, self.h, self.k) / 16
        o, _ = ops.chunk_gla(q, k, v, g)
        return self.out(o.reshape(B, T, D))


def test_gla_layer_trains():
    torch.manual_seed(0)
    model = TinyGLA()
    x = torch.randn(4, 32, 16)
    target = torch.roll(x, shifts=1, dims=1)  # recall the previous token
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


# ---- GSA without g (SPEC section 3's softmax-over-time fallback) ------------------------------------

def test_gsa_without_gate_is_the_softmax_over_time():
    # g = None means: z_t = log sum_{tau <= t} e^{s_tau} per slot, s'_t = e^{s_t - z_t},
    # g'_t = z_{t-1} - z_t (g'_0 = 0); the op with (s', g') given is the reference.
    rng = np.random.default_rng(3)
    B, T, H, K, V, M = 1, 70, 2, 8, 6, 4
    q, k, v = rng.standard_normal((B, T, H, K)), rng.standard_normal((B, T, H, K)), rng.standard_normal((B, T, H, V))
    s = rng.standard_normal((B, T, H, M))
    z = np.logaddexp.accumulate(s, axis=1)
    g = np.concatenate([np.zeros_like(z[:, :1]), z[:, :-1] - z[:, 1:]], axis=1)
    ref, _ = ops.fused_recurrent_gsa(q, k, v, np.exp(s - z), g)
    for op in (ops.chunk_gsa, ops.fused_recurrent_gsa):
        o, _ = op(q, k, v, s)
        assert rel(o, ref) <= 1e-12


@pytest.mark.parametrize("op", [ops.chunk_gsa, ops.fused_recurrent_gsa])
def test_gsa_without_gate_gradcheck(op):
    q, k, v = randn(1, 9, 2, 4, seed=1).requires_grad_(), randn(1, 9, 2, 4, seed=2).requires_grad_(), \
        randn(1, 9, 2, 3, seed=3).requires_grad_()
    s = randn(1, 9, 2, 5, seed=4).requires_grad_()
    assert torch.autograd.gradcheck(lambda q, k, v, s: op(q, k, v, s)[0], (q, k, v, s))


# ---- BitLinear ------------------------------------------------------------------------------------

def rounding_of(meta):
    return "half_away_from_zero" if "round half away" in meta["formula"] else "half_to_even"


@pytest.mark.parametrize("path", cases("grad/bitlinear_grad_*.safetensors"), ids=os.path.basename)
def test_bitlinear_golden_gradients(path):
    x, meta = read_safetensors(path)
    xt, w, nw = (torch.from_numpy(x[n].copy()).requires_grad_() for n in ("x", "W", "norm_w"))
    y = ops.bitlinear(xt, w, nw, eps=float(meta["eps"]), activation_rounding=rounding_of(meta))
    assert rel(y.detach().numpy(), x["y"]) <= 1e-4
    y.backward(torch.from_numpy(x["dy"].copy()))
    assert rel(xt.grad.numpy(), x["dx"]) <= 1e-4
    assert rel(w.grad.numpy(), x["dW"]) <= 1e-4
    assert rel(nw.grad.numpy(), x["dnorm_w"]) <= 1e-4


@pytest.mark.parametrize("path", cases("bitlinear_*.safetensors"), ids=os.path.basename)
def test_bitlinear_golden_forward(path):
    # These inputs have no activation within 1e-4 of a rounding tie, so both roundings agree.
    x, meta = read_safetensors(path)
    for rounding in ("half_to_even", "half_away_from_zero"):
        y = ops.bitlinear(x["x"], x["weight"], x["norm_weight"], eps=float(meta["eps"]), activation_rounding=rounding)
        assert isinstance(y, np.ndarray)  # numpy in, numpy out
        assert rel(y, x["y"]) <= 1e-4


def test_bitlinear_shapes_bias_and_errors():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 16)).astype(np.float32)
    w = rng.standard_normal((8, 16)).astype(np.float32)
    y = ops.bitlinear(x, w)
    assert y.shape == (2, 3, 8) and rel(y.reshape(6, 8), ops.bitlinear(x.reshape(6, 16), w)) == 0
    b = torch.ones(8, requires_grad=True)
    yt = ops.bitlinear(torch.from_numpy(x), torch.from_numpy(w).requires_grad_(), bias=b)
    yt.sum().backward()
    assert rel(yt.detach().numpy() - 1, y) <= 1e-6 and rel(b.grad.numpy(), np.full(8, 6.0)) == 0
    with pytest.raises(ValueError, match="float32"):
        ops.bitlinear(x.astype(np.float64), w)
    with pytest.raises(ValueError, match="features"):
        ops.bitlinear(x[..., :15], w)
    with pytest.raises(ValueError, match="rounding"):
        ops.bitlinear(x, w, activation_rounding="up")
