"""PyTorch modules of fla's GLA and GSA causal LMs and matmulfreellm's HGRNBit LM (SPEC sections
5-6), their recurrences and BitLinear computed by linattn's ops (forward and backward), with
upstream's parameter names and config fields: `save_pretrained(dir)` writes config.json +
model.safetensors that `linattn-generate --model dir` loads unchanged, and `from_pretrained(dir)`
reads such a folder (the golden upstream tiny models too).

Covered: the configurations upstream's models default to, plus GLA's and GSA's short convolution
(no feature map on GLA, GSA's swish feature map, no GQA, untied head, current MLP keys for GLA / GSA). Anything else
is refused by name when the model is built.
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from linattn import ops

DEFAULTS = {  # SPEC section 6's config table, for the fields these modules read
    "gla": dict(hidden_size=2048, num_hidden_layers=24, num_heads=4, num_kv_heads=None, expand_k=0.5, expand_v=1.0,
                attn_mode="chunk", feature_map=None, use_output_gate=True, clamp_min=None, use_short_conv=False,
                conv_size=4, hidden_ratio=4, intermediate_size=None, hidden_act="swish", norm_eps=1e-6,
                elementwise_affine=True, fuse_norm=True, vocab_size=32000, tie_word_embeddings=False),
    "gsa": dict(hidden_size=2048, num_hidden_layers=24, num_heads=4, num_kv_heads=None, expand_k=1, expand_v=1,
                num_slots=64, feature_map="swish", gate_logit_normalizer=8, use_short_conv=False, conv_size=4,
                hidden_ratio=4, intermediate_size=None, hidden_act="swish", norm_eps=1e-6, elementwise_affine=True,
                vocab_size=32000, tie_word_embeddings=False),
    "hgrn_bit": dict(hidden_size=2048, num_hidden_layers=24, num_heads=1, expand_ratio=1, attn_mode="fused_recurrent",
                     use_lower_bound=True, use_short_conv=False, conv_size=4, hidden_ratio=4, intermediate_size=None,
                     hidden_act="swish", rms_norm_eps=1e-6, vocab_size=32000, tie_word_embeddings=False),
}
ARCHITECTURES = {"gla": "GLAForCausalLM", "gsa": "GSAForCausalLM", "hgrn_bit": "HGRNBitForCausalLM"}
GLA_GATE_RANK = 16             # fla's gate_low_rank_dim (fixed)
GLA_GATE_NORMALIZER = 16       # fla's gate_logit_normalizer for GLA (the model does not set it)
GSA_NORM_EPS = 1e-5            # GSA's output norm: the fused helper's default, not norm_eps (SPEC 5.2)
FUSED_BITLINEAR_EPS = 1e-6     # FusedBitLinear's RMSNorm eps, whatever norm.eps says (SPEC 5.5)


def make_config(model_type, **fields):
    """A config dict: upstream's defaults for `model_type`, overridden by `fields`."""
    if model_type not in DEFAULTS:
        raise ValueError(f"unknown model_type {model_type!r}: one of {', '.join(DEFAULTS)}")
    unknown = set(fields) - set(DEFAULTS[model_type]) - {"bos_token_id", "eos_token_id", "pad_token_id",
                                                         "initializer_range"}
    if unknown:
        raise ValueError(f"{model_type}: unknown config field(s) {', '.join(sorted(unknown))}")
    cfg = dict(DEFAULTS[model_type], model_type=model_type, architectures=[ARCHITECTURES[model_type]],
               bos_token_id=1, eos_token_id=2, pad_token_id=None, initializer_range=0.02)
    cfg.update(fields)
    return cfg


def intermediate_size(cfg):
    """GatedMLP's I (SPEC 5.0): intermediate_size, or 256 * ceil(int(D * hidden_ratio * 2/3) / 256)."""
    if cfg.get("intermediate_size"):
        return int(cfg["intermediate_size"])
    return 256 * math.ceil(int(cfg["hidden_size"] * cfg["hidden_ratio"] * 2 / 3) / 256)


def _refuse(cfg, field, allowed):
    if cfg.get(field) not in allowed:
        raise ValueError(f"{cfg['model_type']}: {field} = {cfg.get(field)!r} is not supported here (only "
                         f"{', '.join(map(repr, allowed))})")


def rms_norm(x, weight, eps):
    """x * rsqrt(mean(x^2) + eps) * weight over the last dimension, in float32."""
    x = x.float()
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps) * weight


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return rms_norm(x, self.weight, self.eps)


class BitLinear(nn.Module):
    """matmulfreellm's FusedBitLinear: `weight` [out, in] (latent, trained) and `norm.weight` [in];
    ternarised weight and int8 activations in the forward, straight-through gradients."""

    def __init__(self, in_features, out_features):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.norm = RMSNorm(in_features, 1e-8)  # norm.eps as upstream stores it; the fused path uses 1e-6

    def forward(self, x):
        return ops.bitlinear(x, self.weight, self.norm.weight, eps=FUSED_BITLINEAR_EPS,
                             activation_rounding="half_away_from_zero")


class ShortConvolution(nn.Module):
    """fla's ShortConvolution (SPEC 4): depthwise causal conv over time, weight [C, 1, W], no bias, SiLU."""

    def __init__(self, channels, width):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, 1, width))
        self.width = width

    def forward(self, x):  # [B, T, C] -> [B, T, C]
        T = x.shape[1]
        y = F.conv1d(x.transpose(1, 2), self.weight, padding=self.width - 1, groups=x.shape[-1])[..., :T]
        return F.silu(y.transpose(1, 2))


def add_qkv(owner, cfg, D, key_dim, value_dim):
    """The q, k, v projections of fla's GLA and GSA layers (upstream's names, on `owner`), each through
    its own ShortConvolution when use_short_conv (the convolution lets a layer bind a token to its
    predecessor, which recall tasks such as MQAR need; zoology's models have one too)."""
    owner.q_proj = nn.Linear(D, key_dim, bias=False)
    owner.k_proj = nn.Linear(D, key_dim, bias=False)
    owner.v_proj = nn.Linear(D, value_dim, bias=False)
    if cfg["use_short_conv"]:
        W = int(cfg["conv_size"])
        owner.q_conv1d = ShortConvolution(key_dim, W)
        owner.k_conv1d = ShortConvolution(key_dim, W)
        owner.v_conv1d = ShortConvolution(value_dim, W)


def project_qkv(layer, x):
    """(q, k, v) [B, T, *] of `layer` (built with add_qkv)."""
    q, k, v = layer.q_proj(x), layer.k_proj(x), layer.v_proj(x)
    if hasattr(layer, "q_conv1d"):
        q, k, v = layer.q_conv1d(q), layer.k_conv1d(k), layer.v_conv1d(v)
    return q, k, v


class GatedMLP(nn.Module):
    """fla's GatedMLP (current keys): down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg):
        super().__init__()
        D, I = cfg["hidden_size"], intermediate_size(cfg)
        self.gate_proj = nn.Linear(D, I, bias=False)
        self.up_proj = nn.Linear(D, I, bias=False)
        self.down_proj = nn.Linear(I, D, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class HGRNBitMLP(nn.Module):
    """matmulfreellm's HGRNBitMLP: one BitLinear gate_proj [2I, D] (gate, then up), down_proj [D, I]."""

    def __init__(self, cfg):
        super().__init__()
        D, I = cfg["hidden_size"], intermediate_size(cfg)
        self.gate_proj = BitLinear(D, 2 * I)
        self.down_proj = BitLinear(I, D)

    def forward(self, x):
        gate, up = self.gate_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class GatedLinearAttention(nn.Module):
    """fla.layers.GatedLinearAttention (SPEC 5.1): low-rank log-sigmoid key gates / 16, GLA in
    chunk form (linattn.ops.chunk_gla), per-head RMSNorm times silu of the output gate."""

    def __init__(self, cfg, layer_idx):
        super().__init__()
        _refuse(cfg, "feature_map", [None])
        _refuse(cfg, "clamp_min", [None])
        _refuse(cfg, "use_output_gate", [True])
        _refuse(cfg, "fuse_norm", [True])
        _refuse(cfg, "elementwise_affine", [True])
        _refuse(cfg, "num_kv_heads", [None, cfg["num_heads"]])
        D, H = cfg["hidden_size"], cfg["num_heads"]
        self.key_dim, self.value_dim = int(D * cfg["expand_k"]), int(D * cfg["expand_v"])
        if self.key_dim % H or self.value_dim % H:
            raise ValueError(f"gla: key_dim {self.key_dim} and value_dim {self.value_dim} must divide by num_heads {H}")
        self.H, self.K, self.V = H, self.key_dim // H, self.value_dim // H
        add_qkv(self, cfg, D, self.key_dim, self.value_dim)
        self.g_proj = nn.Linear(D, self.value_dim, bias=False)
        self.gk_proj = nn.Sequential(nn.Linear(D, GLA_GATE_RANK, bias=False), nn.Linear(GLA_GATE_RANK, self.key_dim))
        self.o_proj = nn.Linear(self.value_dim, D, bias=False)
        self.g_norm_swish_gate = RMSNorm(self.V, cfg["norm_eps"])
        # The recurrence, (q, k, v, gk) [B, T, H, *] -> o [B, T, H, V]: linattn's chunk form. A
        # benchmark may put the same function written in PyTorch ops here (bench/train_throughput.py).
        self.core = lambda q, k, v, gk: ops.chunk_gla(q, k, v, gk)[0]

    def forward(self, x):
        B, T, _ = x.shape
        heads = lambda t, d: t.view(B, T, self.H, d)
        q, k, v = project_qkv(self, x)
        q, k, v = heads(q, self.K), heads(k, self.K), heads(v, self.V)
        gk = heads(F.logsigmoid(self.gk_proj(x)) / GLA_GATE_NORMALIZER, self.K)
        o = self.core(q, k, v, gk)
        o = self.g_norm_swish_gate(o) * F.silu(heads(self.g_proj(x), self.V))
        return self.o_proj(o.reshape(B, T, self.value_dim))


class GatedSlotAttention(nn.Module):
    """fla.layers.GatedSlotAttention (SPEC 5.2): swish q, k; silu v; log-sigmoid slot gates / 8 and
    s = 1 - e^f; GSA in chunk form with scale 1 (linattn.ops.chunk_gsa); RMSNorm over value_dim
    of silu(o)."""

    def __init__(self, cfg, layer_idx):
        super().__init__()
        _refuse(cfg, "feature_map", ["swish"])
        _refuse(cfg, "elementwise_affine", [True])
        _refuse(cfg, "num_kv_heads", [None, cfg["num_heads"]])
        D, H, M = cfg["hidden_size"], cfg["num_heads"], cfg["num_slots"]
        self.key_dim, self.value_dim = int(D * cfg["expand_k"]), int(D * cfg["expand_v"])
        if self.value_dim != D:
            raise ValueError(f"gsa: the output norm's weight is [hidden_size], so value_dim ({self.value_dim}) must be "
                             f"hidden_size ({D}): expand_v = 1")
        self.H, self.K, self.V, self.M = H, self.key_dim // H, self.value_dim // H, M
        self.gate_logit_normalizer = cfg["gate_logit_normalizer"]
        add_qkv(self, cfg, D, self.key_dim, self.value_dim)
        self.f_proj = nn.Linear(D, H * M, bias=False)
        self.g_norm = RMSNorm(D, GSA_NORM_EPS)
        self.o_proj = nn.Linear(self.value_dim, D, bias=False)

    def forward(self, x):
        B, T, _ = x.shape
        heads = lambda t, d: t.view(B, T, self.H, d)
        q, k, v = project_qkv(self, x)
        q, k, v = heads(F.silu(q), self.K), heads(F.silu(k), self.K), heads(F.silu(v), self.V)
        f = heads(F.logsigmoid(self.f_proj(x)) / self.gate_logit_normalizer, self.M)
        o, _ = ops.chunk_gsa(q, k, v, 1 - f.exp(), f, scale=1.0)
        return self.o_proj(self.g_norm(F.silu(o.reshape(B, T, self.value_dim))))


class HGRNBitAttention(nn.Module):
    """matmulfreellm's HGRNBitAttention, the MLGRU (SPEC 5.3): f = lb + (1 - lb) sigmoid(f_proj x),
    i = silu(i_proj x) (1 - f), h_t = f_t h_{t-1} + i_t (linattn.ops.chunk_hgrn on log f), then
    RMSNorm(g_proj x) * silu(h) through o_proj; every projection a BitLinear."""

    def __init__(self, cfg, layer_idx):
        super().__init__()
        _refuse(cfg, "use_short_conv", [False])
        D = cfg["hidden_size"]
        E = int(D * cfg["expand_ratio"])
        self.layer_idx = layer_idx
        self.i_proj, self.f_proj, self.g_proj = BitLinear(D, E), BitLinear(D, E), BitLinear(D, E)
        self.g_norm = RMSNorm(E, cfg["rms_norm_eps"])
        self.o_proj = BitLinear(E, D)

    def forward(self, x, lower_bound=None):
        f_logit = self.f_proj(x)
        if lower_bound is None or self.layer_idx == 0:
            f, log_f = torch.sigmoid(f_logit), F.logsigmoid(f_logit)
        else:
            f = lower_bound + (1 - lower_bound) * torch.sigmoid(f_logit)
            log_f = f.log()
        i = F.silu(self.i_proj(x)) * (1 - f)
        h, _ = ops.chunk_hgrn(i, log_f)
        return self.o_proj(self.g_norm(self.g_proj(x)) * F.silu(h))


MIXERS = {"gla": GatedLinearAttention, "gsa": GatedSlotAttention, "hgrn_bit": HGRNBitAttention}


class Block(nn.Module):
    """Pre-norm block: h + attn(attn_norm(h)), then + mlp(mlp_norm(.))."""

    def __init__(self, cfg, layer_idx):
        super().__init__()
        D, eps = cfg["hidden_size"], cfg.get("norm_eps", cfg.get("rms_norm_eps"))
        self.attn_norm = RMSNorm(D, eps)
        self.attn = MIXERS[cfg["model_type"]](cfg, layer_idx)
        self.mlp_norm = RMSNorm(D, eps)
        self.mlp = HGRNBitMLP(cfg) if cfg["model_type"] == "hgrn_bit" else GatedMLP(cfg)

    def forward(self, h, lower_bound=None):
        a = self.attn_norm(h)
        h = h + (self.attn(a, lower_bound) if lower_bound is not None else self.attn(a))
        return h + self.mlp(self.mlp_norm(h))


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        D, L = cfg["hidden_size"], cfg["num_hidden_layers"]
        self.embeddings = nn.Embedding(cfg["vocab_size"], D)
        if cfg["model_type"] == "hgrn_bit" and cfg["use_lower_bound"]:
            self.lower_bounds = nn.Parameter(torch.ones(L, D))
        self.layers = nn.ModuleList(Block(cfg, i) for i in range(L))
        self.norm = RMSNorm(D, cfg.get("norm_eps", cfg.get("rms_norm_eps")))

    def forward(self, ids):
        h = self.embeddings(ids)
        bounds = None
        if hasattr(self, "lower_bounds"):  # SPEC 6: lb_l = cumsum(softmax over layers) - P_0
            P = self.lower_bounds.softmax(0)
            bounds = P.cumsum(0) - P[0]
        for i, layer in enumerate(self.layers):
            h = layer(h, bounds[i] if bounds is not None else None)
        return self.norm(h)


class CausalLM(nn.Module):
    """GLAForCausalLM / GSAForCausalLM / HGRNBitForCausalLM: state_dict keys as upstream's."""

    def __init__(self, cfg):
        super().__init__()
        if cfg.get("tie_word_embeddings"):
            raise ValueError(f"{cfg['model_type']}: tie_word_embeddings is not supported here")
        self.config = dict(cfg)
        self.model = Backbone(cfg)
        D, vocab = cfg["hidden_size"], cfg["vocab_size"]
        self.lm_head = BitLinear(D, vocab) if cfg["model_type"] == "hgrn_bit" else nn.Linear(D, vocab, bias=False)
        self.reset_parameters()

    def reset_parameters(self):
        """Upstream's _init_weights: normal(0, initializer_range) weights, zero biases, unit norms."""
        std = self.config.get("initializer_range", 0.02)
        for name, p in self.named_parameters():
            owner = name.rsplit(".", 2)[-2] if name.count(".") else name  # the module holding p
            if name.endswith("lower_bounds") or "norm" in owner:
                continue  # ones, as constructed
            if name.endswith(".bias"):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, 0.0, std)

    def forward(self, ids):
        """Logits [B, T, vocab] (float32) of ids [B, T]."""
        return self.lm_head(self.model(ids))

    def state_bytes(self):
        """Bytes of recurrent state one sequence carries through the layers (float32)."""
        c, L = self.config, self.config["num_hidden_layers"]
        attn = self.model.layers[0].attn
        if c["model_type"] == "gla":
            per = attn.H * attn.K * attn.V
        elif c["model_type"] == "gsa":
            per = attn.H * attn.M * (attn.K + attn.V)
        else:
            per = int(c["hidden_size"] * c["expand_ratio"])
        return 4 * per * L

    def save_pretrained(self, path):
        """config.json + model.safetensors (float32, state_dict order)."""
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(self.config, f, indent=2, sort_keys=True)
        write_safetensors(os.path.join(path, "model.safetensors"),
                          {k: v.detach().cpu().float().contiguous().numpy() for k, v in self.state_dict().items()})

    @classmethod
    def from_pretrained(cls, path):
        with open(os.path.join(path, "config.json")) as f:
            raw = json.load(f)
        model_type = raw.get("model_type")
        if model_type not in DEFAULTS:
            raise ValueError(f"{path}: model_type {model_type!r} is not one of {', '.join(DEFAULTS)}")
        keep = set(DEFAULTS[model_type]) | {"bos_token_id", "eos_token_id", "pad_token_id", "initializer_range"}
        model = cls(make_config(model_type, **{k: v for k, v in raw.items() if k in keep}))
        tensors = read_safetensors(os.path.join(path, "model.safetensors"))
        state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: checkpoint does not match the model: missing {missing}, unexpected {unexpected}")
        return model


_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}
_NP = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I8": np.int8, "F16": np.float16}


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format: an 8-byte little-endian header length, a JSON header of
    {name: {dtype, shape, data_offsets}}, then the raw little-endian data."""
    header, offset, blobs = {}, 0, []
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # align the data to 8 bytes
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def read_safetensors(path):
    """{name: array} of a safetensors file (bf16 converted to float32)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        buf = raw[8 + n + a:8 + n + b]
        if t["dtype"] == "BF16":
            out[name] = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(t["shape"])
        else:
            out[name] = np.frombuffer(buf, _NP[t["dtype"]]).reshape(t["shape"])
    return out
