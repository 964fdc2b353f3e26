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
    masked_lm=None,
    tokenizer=None,
    top_k=15,
):
    """Augmented copies of `texts`: Tang et al. 2019's operations, and
    TinyBERT's masked-language-model word replacement when given a model.

    Each copy is made word by word (split on whitespace): with probability
    `mask_rate` a word becomes `mask_token`, else with `replace_rate` it is
    replaced, else it stays. Then, with
    probability `ngram_rate`, the copy is cut to a random n-gram of it (n
    drawn from 1 to `max_ngram`). Without `masked_lm`, a copy equal to its
    source is drawn again (up to 10 times), so most copies are new rows.

    Replacements are drawn from `vocabulary` in proportion to word counts.
    With `masked_lm` (TinyBERT, Jiao et al. 2020), a word the model's
    tokenizer keeps whole is replaced by one of the model's `top_k` guesses
    for it, drawn uniformly: the copy's replaced words are masked together and
    the model reads the copy once. Words split into several pieces (or
    unknown to it) take a vocabulary draw instead, where TinyBERT used GloVe
    neighbours. TinyBERT's setting: `mask_rate=0, replace_rate=0.4,
    ngram_rate=0, masked_lm=...`.

    Copy `j` of text `i` depends only on `seed`, `i`, `j`, the text and the
    settings: the same call gives the same rows.

    Args:
        texts: a list (or array) of strings.
        copies: int >= 1, augmented copies per text.
        seed: int, the random seed.
        mask_token: the tokenizer's mask token (`tokenizer.mask_token`:
            `"[MASK]"` for BERT, `"<mask>"` for RoBERTa). A tokenizer must
            read it as one token: for keras-hub's WordPiece tokenizers set
            `tokenizer.special_tokens_in_strings = True`.
        mask_rate, replace_rate, ngram_rate: probabilities in [0, 1].
        max_ngram: int >= 1, the longest n-gram.
        vocabulary: `{word: count}` to draw replacements from, or a list of
            texts whose words are counted. Defaults to the words of `texts`,
            by frequency.
        masked_lm: optional keras-hub masked language model (a
            `BertMaskedLM`, e.g. `BertMaskedLM.from_preset(path)`) whose
            guesses replace words.
        tokenizer: the masked LM's tokenizer. Defaults to its preprocessor's.
        top_k: int >= 1, the model's best guesses drawn from (TinyBERT: 15).

    Returns:
        `len(texts) * copies` strings: the copies of `texts[0]`, then `[1]`...
    """
    texts = [str(t) for t in texts]
    _check_settings(copies, seed, mask_token, mask_rate, replace_rate, ngram_rate)
    check_number("max_ngram", max_ngram, integer=True, low=1)
    words, weights = _vocabulary(texts if vocabulary is None else vocabulary)
    if replace_rate and not words:
        raise ValueError(
            "`replace_rate` > 0 needs words to draw from, but the vocabulary is "
            "empty. Pass `vocabulary=` or `replace_rate=0`."
        )
    settings = (mask_token, mask_rate, replace_rate, ngram_rate, max_ngram)
    if masked_lm is not None:
        check_number("top_k", top_k, integer=True, low=1)
        guesser = _Guesser(masked_lm, tokenizer, top_k)
    augmented = []
    for i, text in enumerate(texts):
        for j in range(copies):
            rng = np.random.default_rng([int(seed), i, j])
            if masked_lm is None:
                augmented.append(_copy(text, rng, words, weights, settings))
            else:
                guesser.plan(text, rng, words, weights, settings)
    return augmented if masked_lm is None else guesser.fill()


def _check_settings(copies, seed, mask_token, mask_rate, replace_rate, ngram_rate):
    check_number("copies", copies, integer=True, low=1)
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


def _draw(source, rng, words, weights, settings, guessable=None):
    """One copy of the words `source`: `(copy, indices)`, where `indices` are
    the words of `copy` left for a masked LM to replace (words `guessable`
    accepts; without it every replacement is a vocabulary draw)."""
    mask_token, mask_rate, replace_rate, ngram_rate, max_ngram = settings
    copy, guess = [], []
    for word in source:
        draw = rng.random()
        if draw < mask_rate:
            copy.append(mask_token)
        elif draw < mask_rate + replace_rate and guessable and guessable(word):
            guess.append(len(copy))
            copy.append(word)
        elif draw < mask_rate + replace_rate:
            copy.append(words[rng.choice(len(words), p=weights)])
        else:
            copy.append(word)
    first = 0
    if copy and rng.random() < ngram_rate:
        n = int(rng.integers(1, min(max_ngram, len(copy)) + 1))
        first = int(rng.integers(0, len(copy) - n + 1))
        copy = copy[first : first + n]
    return copy, [g - first for g in guess if 0 <= g - first < len(copy)]


def _copy(text, rng, words, weights, settings):
    source = text.split()
    if not source:
        return text
    for _ in range(10):
        copy, _ = _draw(source, rng, words, weights, settings)
        if copy != source:
            break
    return " ".join(copy)


class _Guesser:
    """TinyBERT's replacements: copies are planned with placeholders for the
    words to replace (`plan`), then one masked-LM pass per batch of copies
    fills them (`fill`)."""

    BATCH = 64

    def __init__(self, masked_lm, tokenizer, top_k):
        if tokenizer is None:
            tokenizer = getattr(
                getattr(masked_lm, "preprocessor", None), "tokenizer", None
            )
        if tokenizer is None or not hasattr(tokenizer, "mask_token_id"):
            raise ValueError(
                "`masked_lm` needs its tokenizer: pass `tokenizer=` or a model "
                "with a preprocessor. Received: "
                f"masked_lm={type(masked_lm).__name__}, tokenizer={tokenizer!r}"
            )
        self.model, self.tokenizer, self.top_k = masked_lm, tokenizer, top_k
        self.length = int(masked_lm.backbone.max_sequence_length)
        self.special = {
            int(getattr(tokenizer, f"{name}_token_id"))
            for name in ("cls", "sep", "pad", "mask", "unk", "start", "end")
            if getattr(tokenizer, f"{name}_token_id", None) is not None
        }
        # Guesses are whole words: no special tokens, no "##" continuations.
        vocabulary = tokenizer.get_vocabulary()
        self.excluded = np.array([t.startswith("##") for t in vocabulary])
        self.excluded[sorted(i for i in self.special if i < len(vocabulary))] = True
        self.mask_word = getattr(tokenizer, "mask_token", None)
        self._pieces = {}
        self.planned = []  # per copy: (words, indices to guess, its rng)

    def pieces(self, word):
        if word not in self._pieces:
            ids = self.tokenizer.tokenize(word)
            self._pieces[word] = [int(i) for i in np.asarray(ids).reshape(-1)]
        return self._pieces[word]

    def whole(self, word):
        ids = self.pieces(word)
        return len(ids) == 1 and ids[0] not in self.special

    def plan(self, text, rng, words, weights, settings):
        """Draws a copy of `text`; its guesses wait for `fill`."""
        copy, guess = _draw(text.split(), rng, words, weights, settings, self.whole)
        self.planned.append((copy, guess, rng))

    def fill(self):
        """The planned copies, their guesses filled in, as strings."""
        for start in range(0, len(self.planned), self.BATCH):
            self._fill_batch(self.planned[start : start + self.BATCH])
        return [" ".join(words) for words, _, _ in self.planned]

    def _fill_batch(self, rows):
        token_ids = np.full((len(rows), self.length), self.tokenizer.pad_token_id)
        positions = np.zeros((len(rows), max(1, max(len(g) for _, g, _ in rows))))
        where = []  # (row, word index, column in positions)
        for r, (words, guess, _) in enumerate(rows):
            ids, column = [self.tokenizer.cls_token_id], 0
            for w, word in enumerate(words):
                if w in guess and len(ids) < self.length - 1:
                    positions[r, column] = len(ids)
                    where.append((r, w, column))
                    column += 1
                    ids.append(self.tokenizer.mask_token_id)
                elif word == self.mask_word:
                    ids.append(self.tokenizer.mask_token_id)
                else:
                    ids.extend(self.pieces(word))
            ids = ids[: self.length - 1] + [self.tokenizer.sep_token_id]
            token_ids[r, : len(ids)] = ids
        if not where:
            return
        inputs = {
            "token_ids": token_ids.astype("int32"),
            "padding_mask": (token_ids != self.tokenizer.pad_token_id).astype("int32"),
            "segment_ids": np.zeros_like(token_ids, "int32"),
            "mask_positions": positions.astype("int32"),
        }
        names = set(getattr(self.model, "input", {}) or {})
        inputs = {k: v for k, v in inputs.items() if not names or k in names}
        logits = np.asarray(self.model.predict_on_batch(inputs))
        for r, w, column in where:
            scores = logits[r, column].astype("float64")
            scores[self.excluded[: len(scores)]] = -np.inf
            candidates = np.argsort(-scores, kind="stable")[: self.top_k]
            words, _, rng = rows[r]
            words[w] = self.tokenizer.id_to_token(int(rng.choice(candidates)))
