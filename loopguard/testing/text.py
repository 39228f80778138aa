"""Unrelated texts for tests and benchmarks of healthy runs."""

from __future__ import annotations

import hashlib

_VOCAB = (
    "apple river mountain violet engine harbor quartz lantern meadow orbit canyon falcon "
    "pepper marble cobalt willow thunder saddle velvet glacier ember parcel summit tundra "
    "pilot rocket garden copper silver anchor beacon cactus dolphin fossil jasmine kettle "
    "lemon mosaic nectar oyster"
).split()


def unrelated_text(seed: str, words: int = 10) -> str:
    """`words` words chosen by a hash of `seed`: different seeds give texts no repeat detector
    takes for one another, the same seed gives the same text."""
    digest = hashlib.sha256(seed.encode()).digest()
    return " ".join(_VOCAB[b % len(_VOCAB)] for b in digest[:words])
