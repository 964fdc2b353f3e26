"""LoRA on a mesh: low-rank matrices laid out to match the weight they adapt.

Keras's `enable_lora(rank)` (on `Dense`, `EinsumDense`, `Embedding` and the
convolutions) adds `A` of shape `weight.shape[:-1] + (rank,)` and `B` of shape
`(rank, weight.shape[-1])`, and computes with `weight + scale * A @ B`. On a
mesh, `A` takes the weight's layout on every dimension but the rank, and `B`
the weight's layout on its last: the product is then laid out like the weight
on each device, with no collective, forward or backward. For a kernel split by
output columns (column-parallel), `B` is split like the output; for one split
by input rows (row-parallel), `A` is split like the input; for attention's
`(hidden, heads, head_dim)` kernels split by heads, `A` is split by heads.

The rule holds however LoRA was enabled: inside a scope, on a model already on
a mesh (`partition` first, then `enable_lora`), or by a config that carries
`lora_rank` (`enable_lora` first, then `partition` rebuilds the layer): the
low-rank matrices are placed when `enable_lora` returns. A layer-map rule that
matches their path is overridden (anything else adds collectives).
"""

from keras.src.layers.convolutional import base_conv as _keras_base_conv
from keras.src.layers.core import dense as _keras_dense
from keras.src.layers.core import einsum_dense as _keras_einsum_dense
from keras.src.layers.core import embedding as _keras_embedding

from tf_mp.parallel.dtensor.layouts import layout_axes
from tf_mp.parallel.dtensor.layouts import make_layout
from tf_mp.parallel.dtensor.layouts import variable_layout

_KERNEL = ("_kernel", "lora_kernel_a", "lora_kernel_b")
# Layer class -> (adapted weight, A, B) attribute names.
ADAPTED = {
    _keras_dense.Dense: _KERNEL,
    _keras_einsum_dense.EinsumDense: _KERNEL,
    _keras_base_conv.BaseConv: _KERNEL,
    _keras_embedding.Embedding: (
        "_embeddings",
        "lora_embeddings_a",
        "lora_embeddings_b",
    ),
}
_ORIGINALS = {cls: cls.enable_lora for cls in ADAPTED}


def lora_axes(weight_axes):
    """`(A axes, B axes)` for a weight laid out on `weight_axes`."""
    return tuple(weight_axes[:-1]) + (None,), (None, weight_axes[-1])


def enable_lora_on_mesh(cls, place):
    """`cls.enable_lora` that places the LoRA matrices by `lora_axes` wherever
    the adapted weight is on a mesh, with `place(variable, layout,
    distribution)` (`variables.relayout`); off-mesh layers are unaffected."""
    weight_name, a_name, b_name = ADAPTED[cls]

    def enable_lora(self, rank, *args, **kwargs):
        _ORIGINALS[cls](self, rank, *args, **kwargs)
        weight = getattr(self, weight_name, None)
        layout = variable_layout(weight) if weight is not None else None
        if layout is None:
            return
        distribution = weight._tf_mp_distribution
        a_axes, b_axes = lora_axes(layout_axes(layout))
        mesh = distribution.mesh.dtensor_mesh
        place(getattr(self, a_name), make_layout(mesh, a_axes), distribution)
        place(getattr(self, b_name), make_layout(mesh, b_axes), distribution)

    enable_lora.__doc__ = _ORIGINALS[cls].__doc__
    return enable_lora
