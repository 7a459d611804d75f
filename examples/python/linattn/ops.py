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
    "chunk_gla", "fused_recurrent_gla", "fused_chunk_gla",
    "chunk_gsa", "fused_recurrent_gsa",
    "chunk_hgrn", "fused_recurrent_hgrn",
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
            if (dhk is None) != (dhv is None):  # one of the two final states unused
                dhk = torch.zeros_like(hk0 if hk0 is not None else dhv) if dhk is None else dhk
                dhv = torch.zeros_like(hv0 if hv0 is not None else dhk) if dhv is None else dhv
            dq, dk, dv, ds, dg, dh0 = _core.gsa_backward(
                form, _array(q, "q"), _array(k, "k"), _array(v, "v"), _array(s, "s"), _array(g, "g"),
                _array(do, "do"), scale, _array(hk0, "hk0"), _array(hv0, "hv0"), _array(dhk, "dhk"),
                _array(dhv, "dhv"), cu, CHUNK_SIZE, threads)
            dhk0, dhv0 = _wrap(True, dh0) if dh0 is not None else (None, None)
            return (None, torch.from_numpy(dq), torch.from_numpy(dk), torch.from_numpy(dv), torch.from_numpy(ds),
                    torch.from_numpy(dg), None, dhk0, dhv0, None, None, None)


def _gsa(form, q, k, v, s, g, scale, initial_state, output_final_state, cu_seqlens, threads):
    if g is None:
        raise ValueError("linattn.ops: GSA needs the forget gate g (log space, [B, T, H, M])")
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
