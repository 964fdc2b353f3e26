# Adapted from keras-hub (https://github.com/keras-team/keras-hub),
# keras_hub/src/models/bert/bert_text_classifier_test.py.
# Copyright The KerasHub Authors. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).
# Changes: the classifier's backbone is tf_mp's ParallelBertBackbone, and the
# tests also run inside mesh scopes with `tf_mp.bert_layout_map`
# (mesh_test_case.py). Not adopted: the LiteRT export case (it needs the
# `ai-edge-litert` converter, which tf_mp does not depend on) and the preset
# cases (they download presets; tests here run offline).


from keras_hub.src.models.bert.bert_text_classifier import BertTextClassifier
from keras_hub.src.models.bert.bert_text_classifier_preprocessor import (
    BertTextClassifierPreprocessor,
)
from keras_hub.src.models.bert.bert_tokenizer import BertTokenizer

import tf_mp
from tests.keras_hub_upstream.mesh_test_case import MeshTestCase
from tests.keras_hub_upstream.mesh_test_case import on_meshes
from tf_mp.models import ParallelBertBackbone as BertBackbone


class BertTextClassifierTest(MeshTestCase):
    def layout_map(self, mesh):
        return tf_mp.bert_layout_map(mesh)

    def setUp(self):
        super().setUp()
        # Setup model.
        self.vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        self.vocab += ["the", "quick", "brown", "fox", "."]
        self.preprocessor = BertTextClassifierPreprocessor(
            BertTokenizer(vocabulary=self.vocab),
            sequence_length=5,
        )
        self.backbone = BertBackbone(
            vocabulary_size=self.preprocessor.tokenizer.vocabulary_size(),
            num_layers=2,
            num_heads=2,
            hidden_dim=2,
            intermediate_dim=4,
            max_sequence_length=self.preprocessor.sequence_length,
        )
        self.init_kwargs = {
            "preprocessor": self.preprocessor,
            "backbone": self.backbone,
            "num_classes": 2,
        }
        self.train_data = (
            ["the quick brown fox.", "the slow brown fox."],  # Features.
            [1, 0],  # Labels.
        )
        self.input_data = self.preprocessor(*self.train_data)[0]

    def test_classifier_basics(self):
        self.run_task_test(
            cls=BertTextClassifier,
            init_kwargs=self.init_kwargs,
            train_data=self.train_data,
            expected_output_shape=(2, 2),
        )

    def test_saved_model(self):
        self.run_model_saving_test(
            cls=BertTextClassifier,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
        )


on_meshes(BertTextClassifierTest, globals(), slow_off_mesh=True)
