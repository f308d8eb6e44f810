"""Char-RNN text generation (TensorRT's sampleCharRNN as a tool): `CharRNN`, `Vocab`."""

from .generate import CharRNN, load_model
from .vocab import Vocab, VocabError

__all__ = ["CharRNN", "Vocab", "VocabError", "load_model"]
