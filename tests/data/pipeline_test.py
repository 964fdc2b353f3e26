import numpy as np

from tf_mp import data


def test_word_vocabulary_has_special_tokens_first():
    vocabulary = data.word_vocabulary(["Good film!", "bad film"], size=7)
    assert vocabulary[:5] == data.pipeline.SPECIAL_TOKENS
    # The two most frequent: "film" (2), then the first of the singletons.
    assert vocabulary[5:] == ["film", "good"]
    assert len(data.word_vocabulary(["a b c"] * 3, size=100)) == 8


def test_encode_and_dataset():
    texts = ["good film", "bad film", "a truly good film", "meh"]
    preprocessor = data.preprocessor(8, vocabulary=data.word_vocabulary(texts))
    x = data.encode(preprocessor, texts, batch_size=3)
    assert set(x) == {"token_ids", "segment_ids", "padding_mask"}
    assert x["token_ids"].shape == (4, 8)
    # [CLS] good film [SEP]
    assert x["padding_mask"][0].sum() == 4
    dataset = data.to_dataset(x, np.array([1, 0, 1, 0]), batch_size=3, shuffle_seed=0)
    batches = list(dataset.as_numpy_iterator())
    assert [len(b[1]) for b in batches] == [3, 1]
    assert sorted(np.concatenate([b[1] for b in batches])) == [0, 0, 1, 1]
