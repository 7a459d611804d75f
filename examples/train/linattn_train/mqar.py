"""Multi-query associative recall (MQAR), following zoology's `multiquery_ar` (HazyResearch/zoology,
Arora et al. 2023), written here.

One example of input length L with P key-value pairs over a vocabulary of V tokens:

* keys: P distinct tokens of [1, V/2); values: P distinct tokens of [V/2, V);
* the context is k_1 v_1 k_2 v_2 ... k_P v_P (positions 0 .. 2P-1);
* P distinct query gaps are drawn from {0, ..., (L - 2P)/2 - 1} with probability proportional to
  (i + 1)^(a - 1), a = 0.01 (short gaps are likelier, long ones stay common); key j re-appears at
  position 2P + 2 gap_j, and the label at that position is v_j (the model must predict the value
  when it sees the key again);
* every other label is -100 (ignored by the loss); every position not holding a context token or a
  query key holds a random token of [0, V).

Seeded: the same (seed, sizes) give the same examples.
"""
import numpy as np

IGNORE = -100


def multiquery_ar(num_examples, vocab_size, seq_len, num_pairs, power_a=0.01, seed=0):
    """(inputs [num_examples, seq_len] int64, labels [num_examples, seq_len] int64)."""
    V, L, P = int(vocab_size), int(seq_len), int(num_pairs)
    if P < 1 or 4 * P > L:
        raise ValueError(f"mqar: need 1 <= num_pairs and 4 * num_pairs <= seq_len, got P = {P}, L = {L}")
    if V // 2 - 1 < P:
        raise ValueError(f"mqar: {P} distinct keys of [1, vocab_size / 2) need vocab_size >= {2 * P + 2}, got {V}")
    if V - V // 2 < P:
        raise ValueError(f"mqar: {P} distinct values need vocab_size - vocab_size / 2 >= {P}, got {V}")
    if num_examples < 0:
        raise ValueError(f"mqar: num_examples must be >= 0, got {num_examples}")
    rng = np.random.default_rng(seed)
    space = (L - 2 * P) // 2  # query slots: positions 2P + 2i, i < space
    p = (np.arange(space) + 1.0) ** (power_a - 1)
    p /= p.sum()
    inputs = rng.integers(0, V, size=(num_examples, L), dtype=np.int64)
    labels = np.full((num_examples, L), IGNORE, dtype=np.int64)
    for n in range(num_examples):
        keys = rng.choice(np.arange(1, V // 2), size=P, replace=False)
        values = rng.choice(np.arange(V // 2, V), size=P, replace=False)
        inputs[n, 0:2 * P:2] = keys
        inputs[n, 1:2 * P:2] = values
        gaps = rng.choice(space, size=P, replace=False, p=p)
        pos = 2 * P + 2 * gaps
        inputs[n, pos] = keys
        labels[n, pos] = values
    return inputs, labels
