"""Keras's own process-wide state never becomes a mesh variable."""

import keras
import numpy as np
from keras.src.random import seed_generator

import tf_mp
from tf_mp.parallel import dtensor as engine


def _global_generator_state():
    return seed_generator.global_seed_generator().state


def test_unseeded_draw_in_a_scope_leaves_keras_usable_outside(make_mesh):
    mesh = make_mesh((2, 2))
    with tf_mp.ModelParallel(mesh).scope():
        keras.random.uniform((2, 3))  # Creates Keras's global SeedGenerator.
    assert engine.variable_layout(_global_generator_state()) is None
    # Off-mesh Keras keeps working: this failed with "MatMul got a regular
    # tensor ... expecting a DTensor" when the generator lived on the mesh.
    outputs = keras.layers.Dense(3)(keras.random.uniform((2, 4, 6)))
    assert outputs.shape == (2, 4, 3)


def _noisy(x):
    # An unseeded draw inside the step: Keras's global SeedGenerator.
    return x + 0.01 * keras.random.normal(keras.ops.shape(x))


def test_two_meshes_in_one_process_do_not_interfere(virtual_devices):
    names = [device.name for device in virtual_devices]
    first = tf_mp.Mesh({"batch": 2, "model": 2}, devices=names[:4])
    second = tf_mp.Mesh({"batch": 1, "model": 2}, devices=names[4:6])
    with tf_mp.ModelParallel(first).scope():
        keras.random.normal((3,))
    with tf_mp.ModelParallel(second).scope():
        model = keras.Sequential(
            [keras.Input((6,)), keras.layers.Lambda(_noisy), keras.layers.Dense(4)]
        )
    kernel_layout = engine.variable_layout(model.layers[-1].kernel)
    assert kernel_layout.mesh == second.dtensor_mesh
    model.compile(optimizer="sgd", loss="mse")
    # With the generator on the first mesh, the step failed with "All inputs to
    # `tf_device.Cluster` must have same mesh configuration".
    x = np.ones((4, 6), "float32")
    history = model.fit(x, np.zeros((4, 4)), batch_size=4, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
