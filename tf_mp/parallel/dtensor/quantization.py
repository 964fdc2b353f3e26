"""`quantize("int8")` on a mesh: the int8 weight and its scale laid out like
the float weight they replace.

Keras's `Dense`, `EinsumDense` and `Embedding` replace their float weight by an
int8 one of the same shape and add a per-channel scale. On a mesh both are
placed when `quantize` returns: the int8 weight on the float weight's axes; the
scale on the axes of the weight dimensions it runs along (a `Dense` kernel's
output columns, an `Embedding`'s rows, and for an `EinsumDense` the kernel's
axes carried through the same reduce / transpose / expand / squeeze steps
Keras applies to the scale's shape). The products themselves run as int32
(`op_rewrites.py`). float8 keeps the float weight and adds scalar scales
and histories, replicated. Other modes (int4, GPTQ, AWQ) are refused on a
mesh before anything changes.
"""

from keras.src.layers.core import dense as _keras_dense
from keras.src.layers.core import einsum_dense as _keras_einsum_dense
from keras.src.layers.core import embedding as _keras_embedding
from keras.src.layers.core import reversible_embedding as _keras_reversible

from tf_mp.parallel.dtensor.layouts import layout_axes
from tf_mp.parallel.dtensor.layouts import make_layout
from tf_mp.parallel.dtensor.layouts import variable_layout

SUPPORTED_MODES = ("int8", "float8")


def _embedding_scale_axes(layer, axes):
    return (axes[0],)


def _einsum_scale_axes(layer, axes):
    """Keras's `_get_kernel_scale_shape`, on axes instead of sizes."""
    axes = [None if i in layer._kernel_reduced_axes else a for i, a in enumerate(axes)]
    axes = [axes[i] for i in layer._kernel_transpose_axes]
    for i in sorted(layer._kernel_expand_axes):
        axes.insert(i, None)
    for i in sorted(layer._kernel_squeeze_axes, reverse=True):
        axes.pop(i)
    return tuple(axes)


def _columns_scale_axes(layer, axes):
    return (axes[-1],)


_KERNEL = (("_kernel", "kernel_scale", _columns_scale_axes),)
_EMBEDDINGS = (("_embeddings", "embeddings_scale", _embedding_scale_axes),)
# Layer class -> ((weight, its scale, scale axes from the weight's axes), ...).
QUANTIZED = {
    _keras_dense.Dense: _KERNEL,
    _keras_einsum_dense.EinsumDense: (("_kernel", "kernel_scale", _einsum_scale_axes),),
    _keras_embedding.Embedding: _EMBEDDINGS,
    # An untied output projection, `(output_dim, input_dim)`, scaled per
    # vocabulary column.
    _keras_reversible.ReversibleEmbedding: _EMBEDDINGS
    + (("reverse_embeddings", "reverse_embeddings_scale", _columns_scale_axes),),
}
_ORIGINALS = {cls: cls.quantize for cls in QUANTIZED}


def quantize_on_mesh(cls, place):
    """`cls.quantize` that places the quantized weights as above wherever the
    float weight is on a mesh, with `place(variable, layout, distribution)`
    (`variables.relayout`); off-mesh layers are unaffected."""

    def quantize(self, mode=None, *args, **kwargs):
        # Before: the float weights' layouts and distributions (Keras deletes them).
        before = []
        for name, _, _ in QUANTIZED[cls]:
            weight = getattr(self, name, None)
            layout = variable_layout(weight) if weight is not None else None
            distribution = getattr(weight, "_tf_mp_distribution", None)
            before.append((layout, distribution))
        if any(layout is not None for layout, _ in before) and (
            mode not in SUPPORTED_MODES
        ):
            raise ValueError(
                f"`quantize` of a layer on a mesh ('{self.path}') supports "
                f"mode in {SUPPORTED_MODES}. Received: mode={mode!r}"
            )
        result = _ORIGINALS[cls](self, mode, *args, **kwargs)
        if mode == "float8":
            _replicate_new_weights(self, place, before)
            return result
        for (name, scale, scale_axes), (layout, distribution) in zip(
            QUANTIZED[cls], before
        ):
            if layout is None:
                continue
            place(getattr(self, name), layout, distribution)
            axes = scale_axes(self, layout_axes(layout))
            mesh = distribution.mesh.dtensor_mesh
            place(getattr(self, scale), make_layout(mesh, axes), distribution)
        return result

    quantize.__doc__ = _ORIGINALS[cls].__doc__
    return quantize


def _replicate_new_weights(layer, place, before):
    """float8 keeps the float weight and adds scalar scales and amax
    histories: replicated on the mesh."""
    distribution = next((d for _, d in before if d is not None), None)
    if distribution is None:
        return
    mesh = distribution.mesh.dtensor_mesh
    for weight in layer.weights:
        if variable_layout(weight) is None:
            place(weight, make_layout(mesh, (None,) * len(weight.shape)), distribution)
