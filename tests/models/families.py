"""Tiny random-init keras-hub backbones of every family `tf_mp.models.partition`
supports, and models that train on them."""

import keras
import keras_hub
import numpy as np

VOCAB = 64
SEQ = 8
NUM_SAMPLES = 32
BATCH_SIZE = 16

# One block where tf_mp's blocks are tested block to block elsewhere (BERT's
# tests, the causal LMs below); two where a family's own blocks are split by
# layouts alone, and for ALBERT, whose two layers share one block.
_SHAPE = dict(num_layers=1, hidden_dim=16, intermediate_dim=32)
_ENCODER = dict(_SHAPE, num_heads=4, max_sequence_length=SEQ, dropout=0.0)
_DECODER = dict(_SHAPE, num_layers=2, num_query_heads=4, num_key_value_heads=2)

CONFIGS = {
    "bert": (keras_hub.models.BertBackbone, dict(_ENCODER, vocabulary_size=VOCAB)),
    "roberta": (
        keras_hub.models.RobertaBackbone,
        dict(_ENCODER, vocabulary_size=VOCAB),
    ),
    "xlm_roberta": (
        keras_hub.models.XLMRobertaBackbone,
        dict(_ENCODER, vocabulary_size=VOCAB),
    ),
    "distil_bert": (
        keras_hub.models.DistilBertBackbone,
        dict(_ENCODER, vocabulary_size=VOCAB),
    ),
    "electra": (
        keras_hub.models.ElectraBackbone,
        dict(_ENCODER, vocab_size=VOCAB, embedding_dim=8),
    ),
    # One block shared by both layers.
    "albert": (
        keras_hub.models.AlbertBackbone,
        dict(
            _ENCODER, vocabulary_size=VOCAB, embedding_dim=8, num_layers=2, num_groups=1
        ),
    ),
    "gpt2": (keras_hub.models.GPT2Backbone, dict(_ENCODER, vocabulary_size=VOCAB)),
    "gemma": (
        keras_hub.models.GemmaBackbone,
        dict(_DECODER, vocabulary_size=VOCAB, head_dim=4, intermediate_dim=64),
    ),
    "llama": (keras_hub.models.LlamaBackbone, dict(_DECODER, vocabulary_size=VOCAB)),
    # Split by Gemma's or Llama's map (their own blocks, the same weight axes).
    "gemma3": (
        keras_hub.models.Gemma3Backbone,
        dict(_DECODER, vocabulary_size=VOCAB, head_dim=4, image_size=16),
    ),
    "mistral": (
        keras_hub.models.MistralBackbone,
        dict(_DECODER, vocabulary_size=VOCAB),
    ),
    # Query/key/value biases, split with their heads.
    "qwen": (keras_hub.models.QwenBackbone, dict(_DECODER, vocabulary_size=VOCAB)),
    # Query/key norms over `head_dim`, replicated.
    "qwen3": (
        keras_hub.models.Qwen3Backbone,
        dict(_DECODER, vocabulary_size=VOCAB, head_dim=4),
    ),
    # Its attention layer is `attention`, not `self_attention`.
    "phi3": (keras_hub.models.Phi3Backbone, dict(_DECODER, vocabulary_size=VOCAB)),
}
FAMILIES = tuple(CONFIGS)
# Families whose blocks are split by Gemma's or Llama's map.
SAME_MAP_AS_ANOTHER = ("gemma3", "mistral", "qwen", "qwen3", "phi3")
# Families that keep their own blocks, laid out by a layout map alone.
OWN_BLOCKS = ("gemma", "llama") + SAME_MAP_AS_ANOTHER
CAUSAL_LMS = {
    "gpt2": keras_hub.models.GPT2CausalLM,
    "gemma": keras_hub.models.GemmaCausalLM,
    # Llama's map, with biases, and its logits from the (split) token embedding.
    "qwen": keras_hub.models.QwenCausalLM,
}
# Every causal-LM family `partition` supports, with its task class.
GENERATIVE = {
    "gpt2": keras_hub.models.GPT2CausalLM,
    "gemma": keras_hub.models.GemmaCausalLM,
    "gemma3": keras_hub.models.Gemma3CausalLM,
    "llama": keras_hub.models.LlamaCausalLM,
    "mistral": keras_hub.models.MistralCausalLM,
    "qwen": keras_hub.models.QwenCausalLM,
    "qwen3": keras_hub.models.Qwen3CausalLM,
    "phi3": keras_hub.models.Phi3CausalLM,
}


def backbone(family, seed=5, **overrides):
    cls, config = CONFIGS[family]
    keras.utils.set_random_seed(seed)
    return cls(**{**config, **overrides})


def inputs(model):
    """Rows for every input `model` takes (token ids, padding masks, segment
    ids), with ragged lengths."""
    rng = np.random.default_rng(2)
    lengths = rng.integers(3, SEQ + 1, size=(NUM_SAMPLES,))
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype("int32")
    columns = {
        "token_ids": rng.integers(1, VOCAB, size=mask.shape).astype("int32") * mask,
        "padding_mask": mask,
        "segment_ids": np.zeros(mask.shape, "int32"),
    }
    return {name: columns[name] for name in _input_names(model)}


def labels():
    return np.random.default_rng(3).integers(0, 2, size=(NUM_SAMPLES,))


def classifier(backbone):
    """Two classes over the mean of the backbone's sequence output (a head any
    family takes), compiled with Adam."""
    keras.utils.set_random_seed(9)
    features = {
        name: keras.Input(shape=(None,), dtype="int32", name=name)
        for name in _input_names(backbone)
    }
    outputs = backbone(features)
    if isinstance(outputs, dict):
        outputs = outputs["sequence_output"]
    pooled = keras.layers.GlobalAveragePooling1D()(outputs)
    logits = keras.layers.Dense(2, name="logits")(pooled)
    model = keras.Model(features, logits)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def causal_lm(family, backbone):
    model = CAUSAL_LMS[family](backbone, preprocessor=None)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[],
    )
    return model


def next_token_data(x):
    """`(x, y, sample_weight)` of next-token prediction over `x`'s rows."""
    tokens, mask = x["token_ids"], x["padding_mask"]
    features = {"token_ids": tokens[:, :-1], "padding_mask": mask[:, :-1]}
    return features, tokens[:, 1:], mask[:, 1:].astype("float32")


def _input_names(model):
    return [
        name
        for name in ("token_ids", "segment_ids", "padding_mask")
        if name in _names(model)
    ]


def _names(model):
    return {t.name.split(":")[0] for t in model.inputs} | set(
        model.input if isinstance(model.input, dict) else ()
    )
