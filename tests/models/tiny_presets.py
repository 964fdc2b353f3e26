"""Tiny keras-hub presets saved at test time (no downloads): a random Gemma
causal LM with a SentencePiece vocabulary trained on `SENTENCES`."""

import io

import keras
import keras_hub
import sentencepiece

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "the earth is round and the sky is blue",
    "best comedy movies are funny",
    "a dog and a fox are friends",
]


def _tokenizer():
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES),
        model_writer=proto,
        vocab_size=24,
        model_type="WORD",
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        bos_piece="<bos>",
        eos_piece="<eos>",
        unk_piece="<unk>",
        minloglevel=2,
    )
    return keras_hub.models.GemmaTokenizer(proto=proto.getvalue())


def save_tiny_gemma_preset(path):
    """A random Gemma (2 layers, 4 heads, vocabulary 24, with its own
    SentencePiece tokenizer) saved as a keras-hub preset at `path`."""
    tokenizer = _tokenizer()
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=4,
        hidden_dim=16,
        intermediate_dim=32,
        head_dim=4,
    )
    preprocessor = keras_hub.models.GemmaCausalLMPreprocessor(
        tokenizer, sequence_length=16
    )
    model = keras_hub.models.GemmaCausalLM(backbone=backbone, preprocessor=preprocessor)
    model.save_to_preset(path)
    return path
