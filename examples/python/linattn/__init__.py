"""linattn from Python: fla's linear-attention ops on CPU tensors and numpy arrays.

    import linattn
    o, ht = linattn.ops.chunk_gla(q, k, v, g, output_final_state=True)

Every op takes torch CPU tensors or numpy arrays (float32 or float64) and returns the kind it
was given; with torch, gradients flow through the library's backward (torch.autograd).

    model = linattn.load("checkpoint/folder")      # GLA, GSA or MatMul-free LM
    ids = model.generate([1, 42, 7], max_new_tokens=16)
"""
from . import ops
from .models import LanguageModel, load
from .ops import get_num_threads, set_num_threads

__all__ = ["ops", "load", "LanguageModel", "get_num_threads", "set_num_threads"]
