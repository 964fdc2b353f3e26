"""Text augmentation for distillation: more rows for the teacher to label.

Published students that keep 99% of their teacher get there by distilling on an
augmented set: Tang et al. 2019 ("Distilling task-specific knowledge from BERT
into simple neural networks") mask words, replace words and sample n-grams;
TinyBERT (Jiao et al. 2020) replaces words with a masked-language model's
guesses, 20 copies per example. The teacher labels the augmented rows (through
a `TeacherCache`); their own labels are never used.
"""

import collections

import numpy as np

from tf_mp.utils.checks import check_number


def augment(
    texts,
    copies=20,
    seed=0,
    mask_token="[MASK]",
    mask_rate=0.1,
    replace_rate=0.1,
    ngram_rate=0.25,
    max_ngram=5,
    vocabulary=None,
):
    """Augmented copies of `texts`, Tang et al. 2019's operations.

    Each copy of a text is made word by word (words are split on whitespace):
    with probability `mask_rate` a word becomes `mask_token`, else with
    probability `replace_rate` it becomes a word drawn from `vocabulary` (in
    proportion to its count), else it stays. Then, with probability
    `ngram_rate`, the copy is cut to a random n-gram of it (n drawn from 1 to
    `max_ngram`). A copy equal to its source is drawn again (up to 10 times),
    so most copies are new rows.

    Reproducible: copy `j` of text `i` depends only on `seed`, `i`, `j`, the
    text and the settings, so the same call gives the same rows, and a longer
    list of texts keeps the copies of its first texts.

    Args:
        texts: a list (or array) of strings.
        copies: int >= 1, augmented copies per text.
        seed: int, the random seed.
        mask_token: the tokenizer's mask token (`tokenizer.mask_token`:
            `"[MASK]"` for BERT, `"<mask>"` for RoBERTa). A tokenizer must
            read it as one token: for keras-hub's WordPiece tokenizers set
            `tokenizer.special_tokens_in_strings = True`.
        mask_rate, replace_rate, ngram_rate: probabilities in [0, 1].
        max_ngram: int >= 1, the longest sampled n-gram.
        vocabulary: `{word: count}` to draw replacements from, or a list of
            texts whose words are counted. Defaults to the words of `texts`,
            by frequency.

    Returns:
        A list of `len(texts) * copies` strings: the copies of `texts[0]`,
        then those of `texts[1]`, and so on.
    """
    texts = [str(t) for t in texts]
    check_number("copies", copies, integer=True, low=1)
    check_number("max_ngram", max_ngram, integer=True, low=1)
    check_number("seed", seed, integer=True)
    for name, rate in (
        ("mask_rate", mask_rate),
        ("replace_rate", replace_rate),
        ("ngram_rate", ngram_rate),
    ):
        check_number(name, rate, low=0, high=1)
    if mask_rate + replace_rate > 1:
        raise ValueError(
            "`mask_rate` + `replace_rate` must be at most 1. Received: "
            f"mask_rate={mask_rate}, replace_rate={replace_rate}"
        )
    if not isinstance(mask_token, str) or not mask_token:
        raise ValueError(
            "`mask_token` must be a non-empty string. Received: "
            f"mask_token={mask_token!r}"
        )
    words, weights = _vocabulary(texts if vocabulary is None else vocabulary)
    if replace_rate and not words:
        raise ValueError(
            "`replace_rate` > 0 needs words to draw from, but the vocabulary is "
            "empty. Pass `vocabulary=` or `replace_rate=0`."
        )
    settings = (mask_token, mask_rate, replace_rate, ngram_rate, max_ngram)
    augmented = []
    for i, text in enumerate(texts):
        for j in range(copies):
            rng = np.random.default_rng([int(seed), i, j])
            augmented.append(_copy(text, rng, words, weights, settings))
    return augmented


def _vocabulary(source):
    """`(words, probabilities)`: a `{word: count}` dict, or the words of a
    list of texts counted."""
    if isinstance(source, dict):
        counts = {str(w): float(c) for w, c in source.items() if c > 0}
    else:
        counts = collections.Counter(w for text in source for w in str(text).split())
    words = sorted(counts)
    weights = np.array([counts[w] for w in words], "float64")
    return words, (weights / weights.sum() if words else weights)


def _copy(text, rng, words, weights, settings):
    mask_token, mask_rate, replace_rate, ngram_rate, max_ngram = settings
    source = text.split()
    if not source:
        return text
    for _ in range(10):
        copy = []
        for word in source:
            draw = rng.random()
            if draw < mask_rate:
                copy.append(mask_token)
            elif draw < mask_rate + replace_rate:
                copy.append(words[rng.choice(len(words), p=weights)])
            else:
                copy.append(word)
        if rng.random() < ngram_rate:
            n = int(rng.integers(1, min(max_ngram, len(copy)) + 1))
            start = int(rng.integers(0, len(copy) - n + 1))
            copy = copy[start : start + n]
        if copy != source:
            break
    return " ".join(copy)
