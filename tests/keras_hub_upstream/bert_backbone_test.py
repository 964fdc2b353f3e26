# Adapted from keras-hub (https://github.com/keras-team/keras-hub),
# keras_hub/src/models/bert/bert_backbone_test.py.
# Copyright The KerasHub Authors. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).
# Changes: the backbone under test is tf_mp's ParallelBertBackbone (what
# `tf_mp.models.partition_bert` returns), and the tests also run inside mesh
# scopes with `tf_mp.bert_layout_map` (mesh_test_case.py). Not adopted: the
# DoRA cases (keras-hub 0.32's BertBackbone has no `enable_dora`) and the preset
# cases (they download presets; tests here run offline).

from keras import ops

import tf_mp
from tests.keras_hub_upstream.mesh_test_case import MeshTestCase
from tests.keras_hub_upstream.mesh_test_case import on_meshes
from tf_mp.models import ParallelBertBackbone as BertBackbone


class BertBackboneTest(MeshTestCase):
    def layout_map(self, mesh):
        return tf_mp.bert_layout_map(mesh)

    def setUp(self):
        super().setUp()
        self.init_kwargs = {
            "vocabulary_size": 10,
            "num_layers": 2,
            "num_heads": 2,
            "hidden_dim": 2,
            "intermediate_dim": 4,
            "max_sequence_length": 5,
        }
        self.input_data = {
            "token_ids": ops.ones((2, 5), dtype="int32"),
            "segment_ids": ops.zeros((2, 5), dtype="int32"),
            "padding_mask": ops.ones((2, 5), dtype="int32"),
        }

    def test_backbone_basics(self):
        self.run_backbone_test(
            cls=BertBackbone,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
            expected_output_shape={
                "sequence_output": (2, 5, 2),
                "pooled_output": (2, 2),
            },
            run_quantization_check=True,
        )

    def test_saved_model(self):
        self.run_model_saving_test(
            cls=BertBackbone,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
        )


on_meshes(BertBackboneTest, globals())
