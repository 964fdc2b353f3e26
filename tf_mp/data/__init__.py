"""Data: labelled text from TFDS, TSV/CSV files, lists or the shipped corpus;
keras-hub tokenisation; `tf.data` pipelines.

The pipeline functions load on first use (PEP 562): reading and checking
sources does not start TensorFlow, so the `tf-mp` commands report a missing
file at once.
"""

import importlib

from tf_mp.data.sources import EMBEDDED
from tf_mp.data.sources import TextClassificationData
from tf_mp.data.sources import load
from tf_mp.data.sources import load_texts

_PIPELINE = ("encode", "preprocessor", "to_dataset", "word_vocabulary")

__all__ = ["EMBEDDED", "TextClassificationData", "load", "load_texts", *_PIPELINE]


def __getattr__(name):
    if name not in _PIPELINE:
        raise AttributeError(f"module 'tf_mp.data' has no attribute {name!r}")
    value = getattr(importlib.import_module("tf_mp.data.pipeline"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
