"""Transfer sets: labelled rows plus unlabelled rows the teacher labels."""

import keras
import numpy as np


def transfer_set(labelled, unlabelled):
    """Labelled rows and unlabelled transfer rows as one `(x, y, sample_weight)`.

    Distillation learns from the teacher's outputs on any input, so rows
    without labels (more of the task's text, or `augment`ed copies) add
    training signal: the `Distiller`'s distillation terms read every row,
    while the labels loss must read only the labelled ones. So unlabelled rows
    get `sample_weight` 0 (and label 0, never read), and labelled rows weight
    `total / labelled`: Keras averages a weighted loss over the batch size,
    so over an epoch the labels loss is the mean over labelled rows, as
    without the transfer rows, and does not shrink as they are added.

    The result is what `fit` takes (`distiller.fit(x, y, sample_weight=w)`)
    and what a `TeacherCache` scores once:
    `cache.attach(tf.data.Dataset.from_tensor_slices((x, y, w)).batch(256))`.

    Args:
        labelled: `(x, y)`: inputs (an array, or a dict of arrays such as a
            keras-hub preprocessor's output, or strings) and their integer
            labels, one per row.
        unlabelled: inputs of the transfer rows, with the structure of the
            labelled inputs.

    Returns:
        `(x, y, sample_weight)` as NumPy values: the labelled rows first, then
        the transfer rows.
    """
    if not (isinstance(labelled, (tuple, list)) and len(labelled) == 2):
        raise ValueError(
            "`labelled` must be a pair `(x, y)`. Received: labelled of type "
            f"{type(labelled).__name__}"
        )
    x, y = labelled
    y = np.asarray(y)
    rows = _rows("labelled", x)
    extra = _rows("unlabelled", unlabelled)
    if len(y) != rows or rows == 0:
        raise ValueError(
            f"`labelled` needs as many labels as rows, at least one. Received: "
            f"{rows} rows and {len(y)} labels"
        )
    if keras.tree.map_structure(lambda _: 0, x) != keras.tree.map_structure(
        lambda _: 0, unlabelled
    ):
        raise ValueError(
            "`unlabelled` must have the structure of the labelled inputs. "
            f"Received: {_structure(unlabelled)}, labelled {_structure(x)}"
        )
    merged = keras.tree.map_structure(
        lambda a, b: np.concatenate([np.asarray(a), np.asarray(b)]), x, unlabelled
    )
    labels = np.concatenate([y, np.zeros((extra,) + y.shape[1:], y.dtype)])
    weights = np.concatenate(
        [np.full(rows, labelled_weight(rows, extra)), np.zeros(extra)]
    ).astype("float32")
    return merged, labels, weights


def labelled_weight(labelled_rows, transfer_rows):
    """The sample weight of a labelled row among `transfer_rows` rows of
    weight 0: `total / labelled`, so the labels loss stays their mean."""
    return (labelled_rows + transfer_rows) / labelled_rows


def _rows(argument, x):
    sizes = {len(np.asarray(a)) for a in keras.tree.flatten(x)}
    if len(sizes) != 1:
        raise ValueError(
            f"Every input of `{argument}` must have the same number of rows. "
            f"Received: {_structure(x)}"
        )
    return sizes.pop()


def _structure(x):
    return keras.tree.map_structure(lambda a: f"{len(np.asarray(a))} rows", x)
