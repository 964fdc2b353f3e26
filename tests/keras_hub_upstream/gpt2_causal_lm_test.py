# Adapted from keras-hub (https://github.com/keras-team/keras-hub),
# keras_hub/src/models/gpt2/gpt2_causal_lm_test.py.
# Copyright The KerasHub Authors. Licensed under the Apache License, Version 2.0
# (http://www.apache.org/licenses/LICENSE-2.0).
# Changes: the backbone under test is tf_mp's parallel GPT-2 backbone (what
# `tf_mp.models.partition` makes of a `GPT2Backbone`), and the tests also run
# inside mesh scopes with `tf_mp.models.backbone_layout_map`'s embedding rules
# (mesh_test_case.py): `generate` (string and token inputs, early stopping, a
# reused compiled function) runs on the mesh. Upstream's JAX-only
# `GPT2CausalLMDistributionTest` runs on TensorFlow through
# `tf_mp.enable_keras_distribution()` (without a Keras distribution, a
# partitioned model pads a batch the mesh does not divide; under one, keras-hub
# lays prompts out itself and the error upstream expects stays). Not adopted:
# the LiteRT export case (it needs the `ai-edge-litert` converter, which tf_mp
# does not depend on) and the preset case (it downloads presets; tests here
# run offline).
# `test_saved_model` drops upstream's `large` marker (the model is tiny).

from unittest.mock import patch

import keras
import pytest
from keras import ops
from keras_hub.src.models.gpt2.gpt2_backbone import GPT2Backbone as _GPT2Backbone
from keras_hub.src.models.gpt2.gpt2_causal_lm import GPT2CausalLM
from keras_hub.src.models.gpt2.gpt2_causal_lm_preprocessor import (
    GPT2CausalLMPreprocessor,
)
from keras_hub.src.models.gpt2.gpt2_tokenizer import GPT2Tokenizer

import tf_mp
from tests.keras_hub_upstream.mesh_test_case import MeshTestCase
from tests.keras_hub_upstream.mesh_test_case import on_meshes

GPT2Backbone = tf_mp.models.parallel_backbone_class(_GPT2Backbone)


class GPT2CausalLMTest(MeshTestCase):
    def layout_map(self, mesh):
        layout_map = tf_mp.LayoutMap(mesh)
        layout_map[r"token_embedding/embeddings$"] = (None, "model")
        layout_map[r"token_embedding/output$"] = ("batch", None, None)
        return layout_map

    def setUp(self):
        super().setUp()
        self.merges = ["Ġ a", "Ġ t", "Ġ i", "Ġ b", "a i", "p l", "n e"]
        self.merges += ["Ġa t", "p o", "r t", "Ġt h", "ai r", "pl a", "po rt"]
        self.merges += ["Ġai r", "Ġa i", "pla ne"]
        self.vocab = []
        for merge in self.merges:
            a, b = merge.split(" ")
            self.vocab.extend([a, b, a + b])
        self.vocab += ["!", "<|endoftext|>"]
        self.vocab = sorted(set(self.vocab))  # Remove duplicates
        self.vocab = dict([(token, i) for i, token in enumerate(self.vocab)])
        self.preprocessor = GPT2CausalLMPreprocessor(
            GPT2Tokenizer(vocabulary=self.vocab, merges=self.merges),
            sequence_length=8,
        )
        self.vocabulary_size = self.preprocessor.tokenizer.vocabulary_size()
        self.backbone = GPT2Backbone(
            vocabulary_size=self.vocabulary_size,
            num_layers=2,
            num_heads=2,
            hidden_dim=4,
            intermediate_dim=8,
            max_sequence_length=self.preprocessor.sequence_length,
        )
        self.init_kwargs = {
            "preprocessor": self.preprocessor,
            "backbone": self.backbone,
        }
        self.train_data = ([" airplane at airport", " airplane at airport"],)
        self.input_data = self.preprocessor(*self.train_data)[0]

    # Slow (32-57 s on 2 cores, 20 s of it tracing the BPE preprocessor): the
    # Gemma, Llama and BERT classifier classes run keras-hub's task test on
    # 2x2; GPT-2 fits on 2x2 in tests/models/partition_test.py.
    @pytest.mark.slow
    def test_causal_lm_basics(self):
        self.run_task_test(
            cls=GPT2CausalLM,
            init_kwargs=self.init_kwargs,
            train_data=self.train_data,
            expected_output_shape=(2, 8, self.vocabulary_size),
        )

    def test_generate(self):
        causal_lm = GPT2CausalLM(**self.init_kwargs)
        # String input.
        prompt = " airplane at airport"
        output = causal_lm.generate(" airplane at airport")
        self.assertTrue(prompt in output)
        # Int tensor input.
        prompt_ids = self.preprocessor.generate_preprocess([prompt])
        causal_lm.preprocessor = None
        outputs = causal_lm.generate(prompt_ids, stop_token_ids=None)
        # Assert prompt is in output in token id space.
        self.assertAllEqual(
            outputs["token_ids"][:, :5],
            prompt_ids["token_ids"][:, :5],
        )
        self.assertAllEqual(
            outputs["padding_mask"][:, :5],
            prompt_ids["padding_mask"][:, :5],
        )

    def test_early_stopping(self):
        causal_lm = GPT2CausalLM(**self.init_kwargs)
        call_with_cache = causal_lm.call_with_cache

        def wrapper(*args, **kwargs):
            """Modify output logits to always favor end_token_id"""
            logits, hidden_states, cache = call_with_cache(*args, **kwargs)
            index = self.preprocessor.tokenizer.end_token_id
            update = ops.ones_like(logits)[:, :, index] * 1.0e9
            update = ops.expand_dims(update, axis=-1)
            logits = ops.slice_update(logits, (0, 0, index), update)
            return logits, hidden_states, cache

        with patch.object(causal_lm, "call_with_cache", wraps=wrapper):
            prompt = [" airplane at airport", " airplane"]
            output = causal_lm.generate(prompt)
            # We should immediately abort and output the prompt.
            self.assertEqual(prompt, output)

    def test_generate_compilation(self):
        causal_lm = GPT2CausalLM(**self.init_kwargs)
        # Assert we do not recompile with successive calls.
        causal_lm.generate(" airplane at airport")
        first_fn = causal_lm.generate_function
        causal_lm.generate(" airplane at airport")
        second_fn = causal_lm.generate_function
        self.assertEqual(first_fn, second_fn)
        # Assert we do recompile after compile is called.
        causal_lm.compile(sampler="greedy")
        self.assertIsNone(causal_lm.generate_function)

    def test_saved_model(self):
        self.run_model_saving_test(
            cls=GPT2CausalLM,
            init_kwargs=self.init_kwargs,
            input_data=self.input_data,
        )

    def test_score_logits(self):
        # Setup prompts, models, and associated expected shapes.
        prompts = [" airplane at airport", " airplane at airport"]
        causal_lm = GPT2CausalLM(**self.init_kwargs)
        expected_score_shape = (2, 8, self.vocabulary_size)

        # Preprocess prompts to get tokenized representations and padding masks.
        preprocessed_prompts = causal_lm.preprocessor.generate_preprocess(prompts)
        token_ids = preprocessed_prompts["token_ids"]
        padding_mask = preprocessed_prompts["padding_mask"]

        # Get the scores and assert their shape.
        scores = causal_lm.score(
            token_ids=token_ids,
            padding_mask=padding_mask,
            scoring_mode="logits",
        )

        self.assertEqual(ops.shape(scores), expected_score_shape)

    def test_score_loss(self):
        # Setup prompts, models, and associated expected shapes.
        prompts = [" airplane at airport", " airplane at airport"]
        causal_lm = GPT2CausalLM(**self.init_kwargs)
        expected_score_shape = (2, 8)

        # Preprocess prompts to get tokenized representations and padding masks.
        preprocessed_prompts = causal_lm.preprocessor.generate_preprocess(prompts)
        token_ids = preprocessed_prompts["token_ids"]
        padding_mask = preprocessed_prompts["padding_mask"]
        target_ids = ops.roll(token_ids, shift=-1, axis=1)

        # Get the scores and assert their shape.
        scores = causal_lm.score(
            token_ids=token_ids,
            padding_mask=padding_mask,
            scoring_mode="loss",
            target_ids=target_ids,
        )

        self.assertEqual(ops.shape(scores), expected_score_shape)

    def test_score_layer_intercept_fn_exfiltration(self):
        # Setup prompts, models, and associated expected shapes.
        prompts = [" airplane at airport", " airplane at airport"]
        causal_lm = GPT2CausalLM(**self.init_kwargs)
        expected_embedded_shape = (2, 8, 4)
        expected_score_shape = (2, 8, self.vocabulary_size)

        # Preprocess prompts to get tokenized representations and padding masks.
        preprocessed_prompts = causal_lm.preprocessor.generate_preprocess(prompts)
        token_ids = preprocessed_prompts["token_ids"]
        padding_mask = preprocessed_prompts["padding_mask"]

        # Setup a custom intercept function that extracts the embeddings to a
        # a variable from the embeddings layer and otherwise asserts on shapes.
        embedded_prompts = None

        def layer_intercept_fn_for_testing(x, i):
            if i == -1:
                nonlocal embedded_prompts
                embedded_prompts = x
            else:
                nonlocal expected_embedded_shape
                self.assertEqual(ops.shape(x), expected_embedded_shape)
            return x

        # Get the scores.
        scores = causal_lm.score(
            token_ids=token_ids,
            padding_mask=padding_mask,
            scoring_mode="logits",
            layer_intercept_fn=layer_intercept_fn_for_testing,
        )

        # Assert shapes for info exfiltrated into the parent context.
        self.assertEqual(ops.shape(embedded_prompts), expected_embedded_shape)
        self.assertEqual(ops.shape(scores), expected_score_shape)

    def test_get_quantization_layer_structure(self):
        causal_lm = GPT2CausalLM(**self.init_kwargs)
        structure = causal_lm.get_quantization_layer_structure("gptq")
        self.assertIsInstance(structure, dict)
        self.assertIn("pre_block_layers", structure)
        self.assertIn("sequential_blocks", structure)
        self.assertLen(structure["pre_block_layers"], 1)
        self.assertIsInstance(structure["pre_block_layers"][0], keras.Model)
        self.assertEqual(
            structure["sequential_blocks"], self.backbone.transformer_layers
        )

        self.assertIsNone(causal_lm.get_quantization_layer_structure("int8"))


on_meshes(GPT2CausalLMTest, globals(), slow_off_mesh=True)


@pytest.mark.usefixtures("bridge")
class GPT2CausalLMDistributionTest(MeshTestCase):
    def setUp(self):
        super().setUp()

        # tf_mp's test session splits the CPU into 8 logical devices.
        self.device_count = len(keras.distribution.list_devices())

        # Initialize kwargs for model creation
        self.merges = ["Ġ a", "Ġ t", "Ġ i", "Ġ b", "a i", "p l", "n e"]
        self.merges += ["Ġa t", "p o", "r t", "Ġt h", "ai r", "pl a", "po rt"]
        self.merges += ["Ġai r", "Ġa i", "pla ne"]
        self.vocab = []
        for merge in self.merges:
            a, b = merge.split(" ")
            self.vocab.extend([a, b, a + b])
        self.vocab += ["!", "<|endoftext|>"]
        self.vocab = sorted(set(self.vocab))  # Remove duplicates
        self.vocab = dict([(token, i) for i, token in enumerate(self.vocab)])
        self.vocabulary_size = len(self.vocab)

        self.tokenizer = GPT2Tokenizer(
            vocabulary=self.vocab,
            merges=self.merges,
        )
        self.preprocessor = GPT2CausalLMPreprocessor(
            tokenizer=self.tokenizer,
            sequence_length=8,
        )
        self.backbone = GPT2Backbone(
            vocabulary_size=self.vocabulary_size,
            num_layers=2,
            num_heads=2,
            hidden_dim=4,
            intermediate_dim=4,
            max_sequence_length=8,
        )
        self.init_kwargs = {
            "backbone": self.backbone,
            "preprocessor": self.preprocessor,
        }

        self.device_mesh = keras.distribution.DeviceMesh(
            shape=(self.device_count,),
            axis_names=["batch"],
            devices=keras.distribution.list_devices(),
        )

        self.layout_map = keras.distribution.LayoutMap(self.device_mesh)

        self.distribution = keras.distribution.DataParallel(
            self.device_mesh,
            self.layout_map,
        )

    def test_e2e_data_parallel_generate(self):
        with self.distribution.scope():
            causal_lm = GPT2CausalLM(**self.init_kwargs)

            # Pass prompts to match the number of devices.
            prompts = [" airplane at airport"] * self.device_count

            # This should run without errors and use the distribution.
            output = causal_lm.generate(prompts)
            self.assertIsInstance(output, (list, tuple))
            self.assertLen(output, self.device_count)

    def test_e2e_data_parallel_generate_indivisible_error(self):
        with self.distribution.scope():
            if self.device_count < 2:
                pytest.skip("This test requires at least 2 devices")
            keras.distribution.set_distribution(self.distribution)
            causal_lm = GPT2CausalLM(**self.init_kwargs)

            # Pass only 1 prompt, which is not divisible by the number of
            # devices.
            prompt = " airplane at airport"

            # keras-hub lays the prompts out with Keras's `distribute_tensor`,
            # which names the dimension the batch axis does not divide (upstream:
            # any `Exception`).
            with self.assertRaisesRegex(ValueError, "divisible"):
                causal_lm.generate(prompt)
