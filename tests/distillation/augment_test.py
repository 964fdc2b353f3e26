"""`tf_mp.distillation.augment`: Tang et al.'s operations, reproducible."""

import pytest

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
