"""`tf_mp.distillation.augment`: Tang et al.'s operations, reproducible."""

import keras
import keras_hub
import numpy as np
import pytest

import tf_mp
from tf_mp import distillation

TEXTS = [
    "a gripping and moving film",
    "the plot is thin but the cast is great",
    "dull",
]


def test_the_same_seed_gives_the_same_rows_and_prefixes_keep_their_copies():
    first = distillation.augment(TEXTS, copies=5, seed=3)
    assert len(first) == 15 and all(isinstance(t, str) for t in first)
    assert first == distillation.augment(TEXTS, copies=5, seed=3)
    assert first != distillation.augment(TEXTS, copies=5, seed=4)
    # Copy j of text i depends on (seed, i, j): fewer texts, same copies.
    assert distillation.augment(TEXTS[:2], copies=5, seed=3) == first[:10]
    # Most copies differ from their source.
    sources = [t for t in TEXTS for _ in range(5)]
    assert sum(a != s for a, s in zip(first, sources)) >= 12


def test_each_operation_does_what_it_says():
    text = "one two three four five six"
    masked = distillation.augment(
        [text], copies=3, mask_rate=1.0, replace_rate=0.0, ngram_rate=0.0
    )
    assert masked == ["[MASK] [MASK] [MASK] [MASK] [MASK] [MASK]"] * 3
    roberta = distillation.augment(
        [text], copies=1, mask_token="<mask>", mask_rate=1.0, replace_rate=0.0,
        ngram_rate=0.0,
    )  # fmt: skip
    assert roberta == ["<mask> " * 5 + "<mask>"]

    replaced = distillation.augment(
        [text], copies=4, mask_rate=0.0, replace_rate=1.0, ngram_rate=0.0,
        vocabulary={"good": 3, "bad": 1, "never": 0},
    )  # fmt: skip
    words = {w for row in replaced for w in row.split()}
    assert words <= {"good", "bad"} and "good" in words

    grams = distillation.augment(
        [text], copies=20, mask_rate=0.0, replace_rate=0.0, ngram_rate=1.0,
        max_ngram=2,
    )  # fmt: skip
    for gram in grams:
        assert 1 <= len(gram.split()) <= 2 and f" {gram} " in f" {text} "


def test_replacements_come_from_the_texts_own_words_by_default():
    rows = distillation.augment(
        TEXTS, copies=4, mask_rate=0.0, replace_rate=0.5, ngram_rate=0.0, seed=1
    )
    corpus = {w for t in TEXTS for w in t.split()}
    assert {w for row in rows for w in row.split()} <= corpus


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"copies": 0}, r"`copies` must be a positive integer. Received: copies=0"),
        ({"copies": 2.5}, r"copies=2.5"),
        ({"mask_rate": 1.5}, r"`mask_rate` must be a number in \[0, 1\]"),
        ({"mask_rate": 0.6, "replace_rate": 0.6}, r"must be at most 1"),
        ({"mask_token": ""}, r"`mask_token` must be a non-empty string"),
        ({"vocabulary": {}}, r"vocabulary is empty"),
        ({"max_ngram": 0}, r"`max_ngram` must be a positive integer"),
    ],
)
def test_bad_arguments_name_the_argument_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        distillation.augment(TEXTS, **kwargs)


def _tiny_masked_lm(texts):
    """A random-init BERT masked LM whose vocabulary splits "films" in two."""
    vocabulary = tf_mp.data.word_vocabulary(texts) + ["##s"]
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=vocabulary)
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=16,
    )  # fmt: skip
    return keras_hub.models.BertMaskedLM(backbone), tokenizer


def test_a_masked_lm_replaces_whole_words_with_its_guesses():
    texts = ["the film was good", "a bad film", "great acting and a good plot"]
    masked_lm, tokenizer = _tiny_masked_lm(texts)
    tinybert = dict(
        mask_rate=0.0, replace_rate=1.0, ngram_rate=0.0, masked_lm=masked_lm,
        tokenizer=tokenizer,
    )  # fmt: skip
    best = distillation.augment(["the film was good"], copies=2, top_k=1, **tinybert)
    assert best[0] == best[1]  # top_k=1: the model's best guesses, every time.
    # The model's guesses for the four words, masked together.
    ids = [tokenizer.cls_token_id, *[tokenizer.mask_token_id] * 4]
    token_ids = np.zeros((1, 16), "int32")
    token_ids[0, : len(ids) + 1] = ids + [tokenizer.sep_token_id]
    logits = masked_lm.predict_on_batch(
        {
            "token_ids": token_ids,
            "padding_mask": (token_ids != 0).astype("int32"),
            "segment_ids": np.zeros_like(token_ids),
            "mask_positions": np.array([[1, 2, 3, 4]], "int32"),
        }
    )
    vocabulary = tokenizer.get_vocabulary()
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "##s"}
    for word, scores in zip(best[0].split(), np.asarray(logits)[0]):
        whole = [i for i in np.argsort(-scores) if vocabulary[i] not in special]
        assert word == vocabulary[whole[0]]
    # "films" is two pieces: a vocabulary draw replaces it.
    assert (
        distillation.augment(["films"], vocabulary={"plot": 1}, **tinybert)
        == ["plot"] * 20
    )

    rows = distillation.augment(texts, copies=4, seed=5, top_k=3, **tinybert)
    assert rows == distillation.augment(texts, copies=4, seed=5, top_k=3, **tinybert)
    assert len(rows) == 12 and len(set(rows)) > 3
    allowed = set(vocabulary) - special
    assert {w for row in rows for w in row.split()} <= allowed


def test_a_masked_lm_without_its_tokenizer_is_refused():
    masked_lm, _ = _tiny_masked_lm(TEXTS)
    with pytest.raises(ValueError, match="`masked_lm` needs its tokenizer"):
        distillation.augment(TEXTS, masked_lm=masked_lm)
