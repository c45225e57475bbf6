"""The one seeded probability wrapper every rule goes through (toxiproxy's toxicity).

toxiproxy draws from an unseeded global source; here every draw comes from a
``random.Random`` seeded by (server seed, rule id, request number), so a rule's
choices do not shift when another rule is added or when requests interleave.
"""

import random


def rng_for(seed: int, rule_id: str, request: int) -> random.Random:
    """The random source of one rule for one request; str seeds hash stably (SHA-512)."""
    return random.Random(f"{seed}/{rule_id}/{request}")


def hits(probability: float, rng: random.Random) -> bool:
    """Whether a rule with this ``probability`` fires; 1.0 fires without a draw."""
    if probability >= 1.0:
        return True
    return rng.random() < probability
