"""What a working run of the seed example (script or notebook) must show."""

import keras_hub
import numpy as np

from tests import tiny_models


def assert_trained_sharded_and_equivalent(model, history, vocabulary_size, seq_len):
    """The loss fell, the encoder is split over the model axis, and a
    single-device copy with the trained weights predicts what the mesh does."""
    losses = history.history["loss"]
    assert len(losses) >= 2 and np.all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    queries = [w for w in model.weights if w.path.endswith("query/kernel")]
    assert queries, [w.path for w in model.weights]
    for kernel in queries:  # (hidden, heads, head_dim): heads split.
        assert tiny_models.mesh_axes(kernel) == (None, "model", None), kernel.path
    single = keras_hub.models.BertTextClassifier.from_config(model.get_config())
    single.set_weights(model.get_weights())
    assert tiny_models.mesh_axes(single.weights[0]) is None  # Built off the mesh.
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(0, vocabulary_size, (8, seq_len)).astype("int32"),
        "segment_ids": np.zeros((8, seq_len), "int32"),
        "padding_mask": np.ones((8, seq_len), "int32"),
    }
    np.testing.assert_allclose(
        model.predict(x, verbose=0),
        single.predict(x, verbose=0),
        rtol=1e-5,
        atol=1e-5,
    )
