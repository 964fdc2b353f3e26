import keras

from tf_mp.layers import sharding


@keras.saving.register_keras_serializable(package="tf_mp")
class RowParallelDense(keras.layers.Dense):
    """A `Dense` layer whose kernel is split along its input axis.

    Megatron's row-parallel linear: with the kernel `A = [A_1; ...; A_p]` split by
    rows over mesh axis `model_axis` and the input split by features, device `i`
    computes the partial sum `x_i A_i`; the partial sums are reduced (one
    all-reduce) before the replicated bias is added. Without a mesh, or on a mesh
    without `model_axis`, it is an ordinary `Dense` layer.

    Args:
        units: int. Output size.
        model_axis: str. The mesh axis the input features are split over.
            Defaults to `"model"`. The input size must be divisible by its size.
        input_is_parallel: bool. The input arrives split by features (as a
            `ColumnParallelDense` leaves it). If `False`, it is split first.
            Defaults to `True`.
        **kwargs: passed to `keras.layers.Dense`.

    References:
        - [Shoeybi et al., 2019](https://arxiv.org/abs/1909.08053)
    """

    def __init__(self, units, model_axis="model", input_is_parallel=True, **kwargs):
        super().__init__(units, **kwargs)
        self.model_axis = model_axis
        self.input_is_parallel = input_is_parallel

    def weight_axes(self):
        """Mesh axes per weight: `{path regex: axes}`."""
        # kernel: (in, units) -> (model, -); bias: (units,) replicated.
        return {r"/kernel$": (self.model_axis, None), r"/bias$": (None,)}

    def build(self, input_shape):
        sharding.check_divisible(
            self, "input feature size", int(input_shape[-1]), self.model_axis
        )
        with sharding.declare_axes(self.weight_axes()):
            super().build(input_shape)

    def call(self, inputs, training=None):
        # (batch, ..., in): features split over the model axis.
        inputs = sharding.constrain(inputs, (self.model_axis,), self.model_axis)
        outputs = sharding.dense_call(self, inputs, training=training)
        # (batch, ..., units): partial sums reduced, replicated features.
        return sharding.constrain(outputs, (None,), self.model_axis)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"model_axis": self.model_axis, "input_is_parallel": self.input_is_parallel}
        )
        return config
