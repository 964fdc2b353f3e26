import keras

from tf_mp.layers import sharding
from tf_mp.parallel import api


@keras.saving.register_keras_serializable(package="tf_mp")
class RowParallelDense(keras.layers.Dense):
    """A `Dense` layer whose kernel is split along its input axis.

    Megatron's row-parallel linear: with the kernel `A = [A_1; ...; A_p]` split by
    rows over mesh axis `model_axis` and the input split by features, device `i`
    computes the partial sum `x_i A_i`; the partial sums are reduced (one
    all-reduce) before the replicated bias is added. The input may arrive split
    by features (as a `ColumnParallelDense` leaves it: nothing to do) or
    replicated (each device takes its slice, no communication), so unlike
    Megatron's layer there is no `input_is_parallel` switch: the layout says
    which case it is. Without a mesh, or on a mesh without `model_axis`, it is an
    ordinary `Dense` layer.

    Args:
        units: int. Output size.
        model_axis: str. The mesh axis the input features are split over.
            Defaults to `"model"`. The input size must be divisible by its size.
        **kwargs: passed to `keras.layers.Dense`. (`input_is_parallel`, saved
            by tf_mp 0.1 and never read, is accepted and dropped so older
            `.keras` files load.)

    References:
        - [Shoeybi et al., 2019](https://arxiv.org/abs/1909.08053)
    """

    def __init__(self, units, model_axis="model", **kwargs):
        kwargs.pop("input_is_parallel", None)
        super().__init__(units, **kwargs)
        self.model_axis = model_axis

    def weight_axes(self):
        """Mesh axes per weight: `{path regex: axes}`."""
        # kernel: (in, units) -> (model, -); bias: (units,) replicated.
        return {r"/kernel$": (self.model_axis, None), r"/bias$": (None,)}

    def build(self, input_shape):
        sharding.check_divisible(
            self, "input feature size", int(input_shape[-1]), self.model_axis
        )
        with api.declare_axes(self.weight_axes()):
            super().build(input_shape)

    def quantize(self, mode=None, type_check=True, config=None):
        """Keras's `Dense.quantize`; on a mesh the quantized kernel keeps the
        float kernel's split."""
        super().quantize(mode, type_check=False, config=config)

    def call(self, inputs, training=None):
        # (batch, ..., in): features split over the model axis.
        inputs = api.scatter_to_model_parallel_region(inputs, self.model_axis)
        outputs = sharding.dense_call(self, inputs, training=training)
        # (batch, ..., units): partial sums reduced, replicated features.
        return api.replicate_from_model_parallel_region(outputs, self.model_axis)

    def get_config(self):
        config = super().get_config()
        config["model_axis"] = self.model_axis
        return config
