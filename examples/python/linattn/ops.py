"""fla's op signatures (fla.ops.gla, fla.ops.gsa, fla.ops.hgrn) over linattn's C++ kernels.

Layout is time-first, as fla's default: q, k, g [B, T, H, K], v [B, T, H, V], o [B, T, H, V];
initial/final states [N, H, K, V] (GLA), ([N, H, K, M], [N, H, M, V]) (GSA), [N, D] (HGRN), where
N = B, or the number of sequences in cu_seqlens (then B = 1). `scale=None` means K^-1/2.

Inputs may be torch CPU tensors or numpy arrays, float32 or float64, with any strides: they
are read in place. One case is copied: a last dimension that is not contiguous (stride != 1),
which the kernels need; `a.contiguous()` beforehand avoids it being done per call.
Outputs are new contiguous tensors (or arrays) of the input's kind and dtype.

Threads: the `threads` argument of an op, else the module default (set_num_threads; 0 = every
core this process may run on).
"""
import numpy as np

from . import _core

try:
    import torch
except ImportError:  # torch is optional: the ops then take and return numpy arrays
    torch = None

__all__ = [
    "chunk_gla", "fused_recurrent_gla", "fused_chunk_gla", "gla_step",
    "chunk_gsa", "fused_recurrent_gsa",
    "chunk_hgrn", "fused_recurrent_hgrn",
    "bitlinear",
    "set_num_threads", "get_num_threads",
]

_threads = 0
CHUNK_SIZE = 64  # rows per chunk of the chunk form (fla's BT for these ops)


def set_num_threads(n):
    """Default thread count of every op (0: all the cores this process may run on)."""
    global _threads
    if int(n) < 0:
        raise ValueError(f"linattn.set_num_threads: {n} is negative")
    _threads = int(n)


def get_num_threads():
    return _threads if _threads > 0 else _core.hardware_threads()


def _is_torch(x):
    return torch is not None and isinstance(x, torch.Tensor)


def _array(x, name):
    """A numpy view of x (no copy), copied only when its last dimension is not contiguous."""
    if x is None:
        return None
    if _is_torch(x):
        if x.device.type != "cpu":
            raise ValueError(f"linattn: {name} is on {x.device}; linattn runs on the CPU (move it with .cpu())")
        a = x.detach().numpy()
    else:
        a = np.asarray(x)
    if a.dtype not in (np.float32, np.float64):
        raise ValueError(f"linattn: {name} has dtype {a.dtype}; float32 and float64 are supported")
    if a.ndim and a.shape[-1] > 1 and a.strides[-1] != a.itemsize or any(s < 0 for s in a.strides):
        a = np.ascontiguousarray(a)
    return a


def _offsets(cu_seqlens, batch):
    if cu_seqlens is None:
        return None
    cu = cu_seqlens.detach().numpy() if _is_torch(cu_seqlens) else np.asarray(cu_seqlens)
    if batch != 1:
        raise ValueError(f"linattn: cu_seqlens needs B = 1 (the sequences packed along T), got B = {batch}")
    return np.ascontiguousarray(cu, dtype=np.int64)


def _threads_of(threads):
    return _threads if threads is None else int(threads)


def _wrap(like_torch, x):
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(_wrap(like_torch, e) for e in x)
    return torch.from_numpy(x) if like_torch else x


def _needs_grad(*xs):
    return torch is not None and torch.is_grad_enabled() and any(_is_torch(x) and x.requires_grad for x in xs)


# ---- GLA ----------------------------------------------------------------------------------------

if torch is not None:

    class _GLA(torch.autograd.Function):
        @staticmethod
        def forward(ctx, form, q, k, v, g, scale, h0, output_final_state, cu, threads):
            o, ht = _core.gla_forward(form, _array(q, "q"), _array(k, "k"), _array(v, "v"), _array(g, "g"), scale,
                                      _array(h0, "initial_state"), output_final_state, cu, CHUNK_SIZE, threads)
            ctx.save_for_backward(q, k, v, g, h0)
            ctx.args = (form, scale, cu, threads)
            return torch.from_numpy(o), _wrap(True, ht)

        @staticmethod
        def backward(ctx, do, dht):
            q, k, v, g, h0 = ctx.saved_tensors
            form, scale, cu, threads = ctx.args
            dq, dk, dv, dg, dh0 = _core.gla_backward(form, _array(q, "q"), _array(k, "k"), _array(v, "v"),
                                                     _array(g, "g"), _array(do, "do"), scale,
                                                     _array(h0, "initial_state"), _array(dht, "dht"), cu,
                                                     CHUNK_SIZE, threads)
            return (None, torch.from_numpy(dq), torch.from_numpy(dk), torch.from_numpy(dv), torch.from_numpy(dg),
                    None, _wrap(True, dh0), None, None, None)


def _gla(form, q, k, v, g, scale, initial_state, output_final_state, cu_seqlens, threads):
    cu = _offsets(cu_seqlens, q.shape[0])
    threads = _threads_of(threads)
    if _needs_grad(q, k, v, g, initial_state):
        return _GLA.apply(form, q, k, v, g, scale, initial_state, output_final_state, cu, threads)
    o, ht = _core.gla_forward(form, _array(q, "q"), _array(k, "k"), _array(v, "v"), _array(g, "g"), scale,
                              _array(initial_state, "initial_state"), output_final_state, cu, CHUNK_SIZE, threads)
    return _wrap(_is_torch(q), o), _wrap(_is_torch(q), ht)


def chunk_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None, threads=None):
    """GLA in chunk form: S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t, o_t = scale q_t S_t.

    Returns (o [B, T, H, V], final_state [N, H, K, V] or None)."""
    return _gla("chunk", q, k, v, g, scale, initial_state, output_final_state, cu_seqlens, threads)


def fused_chunk_gla(q, k, v, g, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
                    threads=None):
    """GLA in fused chunk form (the state held in registers; the fastest prefill). As chunk_gla."""
    return _gla("fused_chunk", q, k, v, g, scale, initial_state, output_final_state, cu_seqlens, threads)


def fused_recurrent_gla(q, k, v, gk=None, gv=None, scale=None, initial_state=None, output_final_state=False,
                        reverse=False, cu_seqlens=None, threads=None):
    """GLA token by token. Key gates gk only (fla's gv and reverse are not supported)."""
    if gk is None or gv is not None:
        raise ValueError("linattn.ops.fused_recurrent_gla: pass key gates gk (value gates gv are not supported)")
    if reverse:
        raise ValueError("linattn.ops.fused_recurrent_gla: reverse=True is not supported")
    return _gla("recurrent", q, k, v, gk, scale, initial_state, output_final_state, cu_seqlens, threads)


def gla_step(q, k, v, g, state, scale=None, threads=None):
    """One decode token of GLA for N sequences: q, k, g [N, H, K], v [N, H, V]; `state`
    [N, H, K, V] (a tensor or array of the inputs' dtype, each head's [K, V] contiguous, e.g. the
    final_state of a prefill) is updated in place. Returns o [N, H, V]. No autograd (decoding)."""
    # Decoding calls this once per token and layer, so the common case (CPU tensors or arrays not
    # needing grad, inner dimension contiguous) goes straight to the kernel, which checks dtypes,
    # shapes and strides itself; anything else (and any error, for its message) takes the
    # checked path below. bench/python_ops.py measures the difference.
    n = _threads if threads is None else int(threads)
    try:
        if _is_torch(q):
            return torch.from_numpy(_core.gla_step(q.numpy(), k.numpy(), v.numpy(), g.numpy(), state.numpy(), scale, n))
        if isinstance(q, np.ndarray) and isinstance(state, np.ndarray):
            return _core.gla_step(q, k, v, g, state, scale, n)
    except (AttributeError, RuntimeError, TypeError, ValueError):
        pass  # grad-requiring or GPU tensors, mixed kinds, a strided last dimension: see below
    st = state.detach().numpy() if _is_torch(state) else state
    if not isinstance(st, np.ndarray):
        raise ValueError("linattn.ops.gla_step: state must be a torch tensor or a numpy array (it is updated in place)")
    o = _core.gla_step(_array(q, "q"), _array(k, "k"), _array(v, "v"), _array(g, "g"), st, scale, _threads_of(threads))
    return _wrap(_is_torch(q), o)


# ---- GSA ----------------------------------------------------------------------------------------

if torch is not None:

    class _GSA(torch.autograd.Function):
        @staticmethod
        def forward(ctx, form, q, k, v, s, g, scale, hk0, hv0, output_final_state, cu, threads):
            o, ht = _core.gsa_forward(form, _array(q, "q"), _array(k, "k"), _array(v, "v"), _array(s, "s"),
                                      _array(g, "g"), scale, _array(hk0, "hk0"), _array(hv0, "hv0"),
                                      output_final_state, cu, CHUNK_SIZE, threads)
            ctx.save_for_backward(q, k, v, s, g, hk0, hv0)
            ctx.args = (form, scale, cu, threads)
            hk, hv = ht if ht is not None else (None, None)
            return torch.from_numpy(o), _wrap(True, hk), _wrap(True, hv)

        @staticmethod
        def backward(ctx, do, dhk, dhv):
            q, k, v, s, g, hk0, hv0 = ctx.saved_tensors
            form, scale, cu, threads = ctx.args
            dq, dk, dv, ds, dg, dh0 = _core.gsa_backward(
                form, _array(q, "q"), _array(k, "k"), _array(v, "v"), _array(s, "s"), _array(g, "g"),
                _array(do, "do"), scale, _array(hk0, "hk0"), _array(hv0, "hv0"), _array(dhk, "dhk"),
                _array(dhv, "dhv"), cu, CHUNK_SIZE, threads)
            dhk0, dhv0 = _wrap(True, dh0) if dh0 is not None else (None, None)
            return (None, torch.from_numpy(dq), torch.from_numpy(dk), torch.from_numpy(dv), torch.from_numpy(ds),
                    _wrap(True, dg), None, dhk0, dhv0, None, None, None)


def _gsa(form, q, k, v, s, g, scale, initial_state, output_final_state, cu_seqlens, threads):
    hk0, hv0 = initial_state if initial_state is not None else (None, None)
    cu = _offsets(cu_seqlens, q.shape[0])
    threads = _threads_of(threads)
    if _needs_grad(q, k, v, s, g, hk0, hv0):
        o, hk, hv = _GSA.apply(form, q, k, v, s, g, scale, hk0, hv0, output_final_state, cu, threads)
        return o, ((hk, hv) if output_final_state else None)
    o, ht = _core.gsa_forward(form, _array(q, "q"), _array(k, "k"), _array(v, "v"), _array(s, "s"), _array(g, "g"),
                              scale, _array(hk0, "hk0"), _array(hv0, "hv0"), output_final_state, cu, CHUNK_SIZE,
                              threads)
    return _wrap(_is_torch(q), o), _wrap(_is_torch(q), ht)


def chunk_gsa(q, k, v, s, g=None, scale=None, initial_state=None, output_final_state=False, cu_seqlens=None,
              threads=None):
    """Gated slot attention in chunk form: q [B, T, HQ, K], k [B, T, H, K], v [B, T, H, V],
    s, g [B, T, H, M] (slot logits, log forget gates). initial_state: (hk [N, H, K, M], hv [N, H, M, V]).
    g=None: the slots are the softmax over time of s (ABC; SPEC section 3's formula, which fla means
    and none of its paths computes), its normaliser starting afresh at each sequence's first token.

    Returns (o [B, T, HQ, V], (hk, hv) or None)."""
    return _gsa("chunk", q, k, v, s, g, scale, initial_state, output_final_state, cu_seqlens, threads)


def fused_recurrent_gsa(q, k, v, s, g=None, scale=None, initial_state=None, output_final_state=False, reverse=False,
                        cu_seqlens=None, threads=None):
    """Gated slot attention token by token. As chunk_gsa (reverse is not supported)."""
    if reverse:
        raise ValueError("linattn.ops.fused_recurrent_gsa: reverse=True is not supported")
    return _gsa("recurrent", q, k, v, s, g, scale, initial_state, output_final_state, cu_seqlens, threads)


# ---- HGRN ---------------------------------------------------------------------------------------

if torch is not None:

    class _HGRN(torch.autograd.Function):
        @staticmethod
        def forward(ctx, form, x, g, h0, output_final_state, cu, threads):
            o, ht = _core.hgrn_forward(form, _array(x, "x"), _array(g, "g"), _array(h0, "initial_state"),
                                       output_final_state, cu, CHUNK_SIZE, threads)
            ctx.save_for_backward(x, g, h0)
            ctx.args = (form, cu, threads)
            return torch.from_numpy(o), _wrap(True, ht)

        @staticmethod
        def backward(ctx, do, dht):
            x, g, h0 = ctx.saved_tensors
            form, cu, threads = ctx.args
            dx, dg, dh0 = _core.hgrn_backward(form, _array(x, "x"), _array(g, "g"), _array(do, "do"),
                                              _array(h0, "initial_state"), _array(dht, "dht"), cu, threads)
            return None, torch.from_numpy(dx), torch.from_numpy(dg), _wrap(True, dh0), None, None, None


def _hgrn(form, x, g, initial_state, output_final_state, cu_seqlens, threads):
    cu = _offsets(cu_seqlens, x.shape[0])
    threads = _threads_of(threads)
    if _needs_grad(x, g, initial_state):
        return _HGRN.apply(form, x, g, initial_state, output_final_state, cu, threads)
    o, ht = _core.hgrn_forward(form, _array(x, "x"), _array(g, "g"), _array(initial_state, "initial_state"),
                               output_final_state, cu, CHUNK_SIZE, threads)
    return _wrap(_is_torch(x), o), _wrap(_is_torch(x), ht)


def chunk_hgrn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None, threads=None):
    """HGRN: h_t = exp(g_t) * h_{t-1} + x_t, o_t = h_t; x, g [B, T, D], state [N, D].

    Returns (o [B, T, D], final_state [N, D] or None)."""
    return _hgrn("chunk", x, g, initial_state, output_final_state, cu_seqlens, threads)


def fused_recurrent_hgrn(x, g, initial_state=None, output_final_state=False, cu_seqlens=None, threads=None):
    """HGRN token by token. As chunk_hgrn."""
    return _hgrn("recurrent", x, g, initial_state, output_final_state, cu_seqlens, threads)


# ---- BitLinear ----------------------------------------------------------------------------------

if torch is not None:

    class _BitLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, weight, norm_weight, eps, activation_rounding):
            y, saved = _core.bitlinear_forward(_array(x, "x"), _array(weight, "weight"),
                                               _array(norm_weight, "norm_weight"), eps, activation_rounding, True)
            ctx.saved = saved
            return torch.from_numpy(y)

        @staticmethod
        def backward(ctx, dy):
            dx, dw, dn = _core.bitlinear_backward(ctx.saved, _array(dy, "dy"))
            del ctx.saved  # the codes and activations: free them with the graph's step
            return (torch.from_numpy(dx), torch.from_numpy(dw), torch.from_numpy(dn) if ctx.needs_input_grad[2] else None,
                    None, None)


def bitlinear(x, weight, norm_weight=None, bias=None, eps=1e-8, activation_rounding="half_to_even"):
    """MatMul-free LM's BitLinear (mmfreelm.ops.bitnet.BitLinear, SPEC section 2.4):
    y = Q_a(RMSNorm(x) * norm_weight) @ Q_w(weight)^T (+ bias), with x [..., in], the latent
    float weight [out, in] ternarised (absmean) at every call, activations per-row absmax int8.
    float32. The backward is straight-through (the quantisers pass gradients unchanged), as
    upstream trains. Upstream's FusedBitLinear (the HGRNBit checkpoints' layer) is
    eps=1e-6, activation_rounding="half_away_from_zero"; BitLinear's is the default
    (eps=1e-8, torch.round: half to even).

    Returns y [..., out]."""
    for name, t in (("x", x), ("weight", weight), ("norm_weight", norm_weight)):
        if t is not None and t.dtype not in (np.float32, getattr(torch, "float32", np.float32)):
            raise ValueError(f"linattn.ops.bitlinear: {name} has dtype {t.dtype}; BitLinear runs in float32")
    if x.ndim < 1 or weight.ndim != 2:
        raise ValueError(f"linattn.ops.bitlinear: x must be [..., in] and weight [out, in], got {tuple(x.shape)} "
                         f"and {tuple(weight.shape)}")
    lead = tuple(x.shape[:-1])
    x2 = x.reshape(-1, x.shape[-1])  # [N, in]
    if _needs_grad(x, weight, norm_weight):
        y = _BitLinear.apply(x2, weight, norm_weight, float(eps), activation_rounding)
    else:
        y, _ = _core.bitlinear_forward(_array(x2, "x"), _array(weight, "weight"), _array(norm_weight, "norm_weight"),
                                       float(eps), activation_rounding, False)
        y = _wrap(_is_torch(x), y)
    y = y.reshape(*lead, y.shape[-1])
    return y if bias is None else y + bias
