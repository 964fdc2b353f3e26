import keras

from tf_mp.layers import sharding
from tf_mp.parallel import api


@keras.saving.register_keras_serializable(package="tf_mp")
class ColumnParallelDense(keras.layers.Dense):
    """A `Dense` layer whose kernel is split along its output axis.

    Megatron's column-parallel linear: with the kernel `A = [A_1, ..., A_p]` split
    by columns over mesh axis `model_axis`, device `i` computes `x A_i` (and adds
    its slice of the bias), so no communication is needed when the output feeds a
    `RowParallelDense`. Without a mesh, or on a mesh without `model_axis`, it is
    an ordinary `Dense` layer.

    Args:
        units: int. Output size; must be divisible by the `model_axis` size.
        model_axis: str. The mesh axis the output features are split over.
            Defaults to `"model"`.
        gather_output: bool. Replicate the output on every device (an
            all-gather) instead of leaving it split. Defaults to `False`.
        **kwargs: passed to `keras.layers.Dense` (activation, use_bias, ...).

    Example:

    ```python
    with tf_mp.ModelParallel(mesh).scope():
        up = tf_mp.layers.ColumnParallelDense(3072, activation="gelu")
        down = tf_mp.layers.RowParallelDense(768)
    ```

    References:
        - [Shoeybi et al., 2019](https://arxiv.org/abs/1909.08053)
    """

    def __init__(self, units, model_axis="model", gather_output=False, **kwargs):
        super().__init__(units, **kwargs)
        self.model_axis = model_axis
        self.gather_output = gather_output

    def weight_axes(self):
        """Mesh axes per weight: `{path regex: axes}`."""
        # kernel: (in, units) -> (-, model); bias: (units,) -> (model,).
        return {r"/kernel$": (None, self.model_axis), r"/bias$": (self.model_axis,)}

    def build(self, input_shape):
        sharding.check_divisible(self, "units", self.units, self.model_axis)
        with api.declare_axes(self.weight_axes()):
            super().build(input_shape)

    def quantize(self, mode=None, type_check=True, config=None):
        """Keras's `Dense.quantize`; on a mesh the quantized kernel keeps the
        float kernel's split."""
        super().quantize(mode, type_check=False, config=config)

    def call(self, inputs, training=None):
        outputs = sharding.dense_call(self, inputs, training=training)
        if self.gather_output:
            # (batch, ..., units): replicated.
            return api.replicate_from_model_parallel_region(outputs, self.model_axis)
        # (batch, ..., units): features split.
        return api.scatter_to_model_parallel_region(outputs, self.model_axis)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"model_axis": self.model_axis, "gather_output": self.gather_output}
        )
        return config
