"""Training fla's GLA and GSA and matmulfreellm's HGRNBit language models on a CPU with linattn's
ops: PyTorch modules with upstream's checkpoint format (modeling), the MQAR recall task (mqar)."""
from .modeling import CausalLM, make_config, read_safetensors, write_safetensors
from .mqar import multiquery_ar

__all__ = ["CausalLM", "make_config", "multiquery_ar", "read_safetensors", "write_safetensors"]
