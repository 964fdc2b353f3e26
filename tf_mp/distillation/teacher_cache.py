"""`TeacherCache`: the teacher runs once; epochs and tuner trials read its outputs."""

import hashlib
import json
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tf_mp.distillation import features as features_lib
from tf_mp.distillation.cached_inputs import INPUTS
from tf_mp.distillation.cached_inputs import TEACHER_OUTPUTS
from tf_mp.utils.checks import check_number
from tf_mp.utils.files import write_json


class TeacherCache:
    """Runs a teacher over a dataset once and serves its outputs with the data.

    `attach(data)` iterates `data` once (batches of `(x, y)` or
    `(x, y, sample_weight)`), runs the teacher in inference mode, and returns
    an *unbatched* `tf.data.Dataset` of `({"inputs": x, "teacher_outputs":
    outputs}, y[, sample_weight])` that you shuffle, batch and repeat as you
    like: the outputs travel with their examples, so no reordering can mix
    them up. `tf_mp.Distiller` reads the cached outputs instead of running the
    teacher. The same `data` object attached twice is served from memory; with
    `directory`, the result is also saved there and reloaded by later
    processes (keyed by the teacher's weights, the blocks and the data).

    Args:
        teacher: the teacher model (functional; may be sharded on a mesh).
        hidden_blocks: teacher block indices whose hidden states to keep
            (`distiller.teacher_blocks_needed[0]`). Each costs
            `examples x seq x hidden` floats of memory.
        attention_blocks: teacher block indices whose attention distributions to
            keep (`distiller.teacher_blocks_needed[1]`).
        directory: optional directory for an on-disk copy. With one, the
            teacher scores `chunk_rows` examples at a time and each chunk's
            outputs go to disk before the next is scored, so memory holds
            one chunk of outputs, not all (hidden states of 20 augmented
            copies of a training set do not fit otherwise); the returned
            dataset reads them from disk.
        chunk_rows: examples scored at a time with `directory`.
        dtype: storage dtype of the cached outputs, `"float32"` (default) or
            `"float16"` / `"bfloat16"` to halve the memory of hidden states.
            The losses are computed in float32 either way.
        verbose: the teacher's `predict` progress bar while it scores (0, 1
            or 2, as in Keras).

    Attributes:
        teacher_runs: how many datasets the teacher actually ran over.
        scored_rows, scoring_seconds: the examples it scored, and the wall
            time that took, over all its runs.
    """

    def __init__(
        self,
        teacher,
        hidden_blocks=(),
        attention_blocks=(),
        directory=None,
        dtype="float32",
        verbose=0,
        chunk_rows=4096,
    ):
        self.chunk_rows = check_number("chunk_rows", chunk_rows, integer=True, low=1)
        if dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(
                "`dtype` must be 'float32', 'float16' or 'bfloat16'. "
                f"Received: dtype={dtype!r}"
            )
        self.dtype = dtype
        self.teacher = teacher
        self.hidden_blocks = sorted(set(int(b) for b in hidden_blocks))
        self.attention_blocks = sorted(set(int(b) for b in attention_blocks))
        self.directory = directory
        self._features = features_lib.feature_model(
            teacher, self.hidden_blocks, self.attention_blocks, "teacher"
        )
        self._memory = {}
        self.verbose = verbose
        self.teacher_runs = 0
        self.scored_rows = 0
        self.scoring_seconds = 0.0

    @classmethod
    def for_distiller(cls, distiller, directory=None, dtype="float32", verbose=0):
        """A cache holding exactly what `distiller` reads from its teacher."""
        hidden, attention = distiller.teacher_blocks_needed
        return cls(
            distiller.teacher,
            hidden,
            attention,
            directory=directory,
            dtype=dtype,
            verbose=verbose,
        )

    def attach(self, data):
        """The examples of `data` with the teacher's outputs, unbatched."""
        if id(data) in self._memory:
            return self._memory[id(data)][1]
        columns, batch_size = _collect(data)
        # Hashing the weights and data is only needed to name an on-disk copy.
        path = (
            os.path.join(self.directory, self._key(columns)) if self.directory else None
        )
        if path and not os.path.exists(os.path.join(path, "done")):
            self.teacher_runs += 1
            _save_atomically(self._chunks(columns, batch_size), path, len(columns[1]))
        if path:
            dataset = _load(path)
        else:
            self.teacher_runs += 1
            dataset = tf.data.Dataset.from_tensor_slices(
                self._with_outputs(columns, batch_size)
            )
        self._memory[id(data)] = (data, dataset)  # Keep `data` alive: ids stay unique.
        return dataset

    def _chunks(self, columns, batch_size):
        """Datasets of `chunk_rows` scored examples each, made one at a time."""
        rows = len(columns[1])
        for start in range(0, rows, self.chunk_rows):
            chunk = keras.tree.map_structure(
                lambda a, start=start: a[start : start + self.chunk_rows], columns
            )
            yield tf.data.Dataset.from_tensor_slices(
                self._with_outputs(chunk, batch_size)
            )

    def _with_outputs(self, columns, batch_size):
        # The teacher sees the batches of `data`, as it would uncached.
        x, *rest = columns
        start = time.perf_counter()
        outputs = self._features.predict(
            tf.data.Dataset.from_tensor_slices(x).batch(batch_size),
            verbose=self.verbose,
        )
        self.scoring_seconds += time.perf_counter() - start
        self.scored_rows += len(rest[0])
        outputs = {
            k: tf.cast(tf.constant(np.asarray(v, "float32")), self.dtype)
            for k, v in outputs.items()
        }
        return ({INPUTS: x, TEACHER_OUTPUTS: outputs}, *rest)

    def _key(self, columns):
        digest = hashlib.sha256()
        for weight in self.teacher.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)))
        blocks = (self.hidden_blocks, self.attention_blocks, self.dtype)
        digest.update(repr(blocks).encode())
        for array in keras.tree.flatten(columns):
            digest.update(np.ascontiguousarray(array))
        return digest.hexdigest()[:16]


def _collect(data):
    """All of `data` as numpy columns `(x, y[, sample_weight])`, and its batch
    size."""
    if not isinstance(data, tf.data.Dataset):
        raise TypeError(
            "`data` must be a `tf.data.Dataset` of batches `(x, y)` or "
            f"`(x, y, sample_weight)`. Received: data={type(data).__name__}"
        )
    batches = list(data.as_numpy_iterator())
    if not batches:
        raise ValueError("`data` is empty: there is nothing for the teacher to score.")
    if not isinstance(batches[0], tuple) or len(batches[0]) not in (2, 3):
        raise ValueError(
            "`data` must yield `(x, y)` or `(x, y, sample_weight)` batches. "
            f"Received an element of type {type(batches[0]).__name__}"
        )
    columns = keras.tree.map_structure(
        lambda *parts: np.concatenate(parts, axis=0), *batches
    )
    return columns, len(batches[0][1])


def _save_atomically(parts, path, examples):
    """Saves each dataset of `parts` into a private directory as it comes,
    then renames the directory to `path`: a process reading `path` (or racing
    to write it) sees a whole copy or none."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    staging = tempfile.mkdtemp(dir=os.path.dirname(path) or ".", prefix=".staging-")
    try:
        count = 0
        for count, part in enumerate(parts, start=1):
            part.save(os.path.join(staging, f"part_{count - 1}"))
        write_json(
            os.path.join(staging, "done"), {"examples": examples, "parts": count}
        )
        os.rename(staging, path)
    except OSError:
        if not os.path.exists(os.path.join(path, "done")):
            raise
        # Another process saved the same key first; its copy is the same.
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)


def _load(path):
    """The dataset saved at `path`, its parts in order."""
    with open(os.path.join(path, "done"), encoding="utf-8") as handle:
        parts = json.load(handle).get("parts")
    if parts is None:  # Written before caches were saved in parts.
        return tf.data.Dataset.load(os.path.join(path, "dataset"))
    dataset = tf.data.Dataset.load(os.path.join(path, "part_0"))
    for k in range(1, parts):
        dataset = dataset.concatenate(
            tf.data.Dataset.load(os.path.join(path, f"part_{k}"))
        )
    return dataset
