"""Data: labelled text from TFDS, TSV/CSV files, lists or the shipped corpus;
keras-hub tokenisation; `tf.data` pipelines."""

from tf_mp.data.pipeline import encode
from tf_mp.data.pipeline import preprocessor
from tf_mp.data.pipeline import to_dataset
from tf_mp.data.pipeline import word_vocabulary
from tf_mp.data.sources import EMBEDDED
from tf_mp.data.sources import TextClassificationData
from tf_mp.data.sources import load
