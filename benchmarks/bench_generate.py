"""Greedy generation on a mesh against one device: tokens per second and the
key/value cache each device holds.

Small random GPT-2 and Gemma causal LMs (4 layers, hidden 256, 8 heads of 32,
feed-forward 1024, vocabulary 8192) generate greedily from prompts of 32
tokens to 96 (64 new tokens, no stop token), at batch 1 and 8, on one device
and partitioned on `batch=1, model=k` meshes of logical CPU devices. Each
configuration is compiled by one call, then timed over `--rounds` calls;
rounds interleave the configurations and medians are reported.

Per-device cache bytes come from the cache's layout: keras-hub's cache is
`(batch, layers, 2, length, heads, head_dim)` float32, split over heads on the
model axis where the heads divide it (what `tests/models/generate_test.py`
reads from DTensor's compiled step). Prints one JSON line.

    python benchmarks/bench_generate.py --meshes 1,2,4 --rounds 3
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROMPT, NEW_TOKENS = 32, 64
SHAPE = dict(num_layers=4, hidden_dim=256, intermediate_dim=1024)
VOCAB, HEADS, HEAD_DIM = 8192, 8, 32


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="gpt2,gemma")
    parser.add_argument("--meshes", default="1,2,4", help="Model-axis sizes.")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def build(family):
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    if family == "gpt2":
        backbone = keras_hub.models.GPT2Backbone(
            vocabulary_size=VOCAB,
            num_heads=HEADS,
            max_sequence_length=PROMPT + NEW_TOKENS,
            **SHAPE,
        )
        return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=VOCAB,
        num_query_heads=HEADS,
        num_key_value_heads=HEADS,
        head_dim=HEAD_DIM,
        **SHAPE,
    )
    return keras_hub.models.GemmaCausalLM(backbone=backbone, preprocessor=None)


def prompts(batch_size):
    import numpy as np

    length = PROMPT + NEW_TOKENS
    mask = np.zeros((batch_size, length), "int32")
    mask[:, :PROMPT] = 1
    tokens = np.random.default_rng(0).integers(1, VOCAB, size=mask.shape)
    return {"token_ids": (tokens * mask).astype("int32"), "padding_mask": mask}


def cache_bytes_per_device(batch_size, model_size):
    whole = batch_size * SHAPE["num_layers"] * 2 * (PROMPT + NEW_TOKENS)
    whole *= HEADS * HEAD_DIM * 4
    return whole // model_size if HEADS % model_size == 0 else whole


def main():
    args = parse_args()
    meshes = [int(k) for k in args.meshes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    import tf_mp

    tf_mp.configure_virtual_devices(max(meshes))
    runs = {}
    for family in args.families.split(","):
        model = build(family)
        model.compile(sampler="greedy")
        for k in meshes:
            runner = model
            if k > 1:
                mesh = tf_mp.Mesh({"batch": 1, "model": k})
                runner = tf_mp.models.partition(model, mesh=mesh)
                runner.compile(sampler="greedy")
            for b in batches:
                x = prompts(b)
                start = time.perf_counter()
                runner.generate(x, stop_token_ids=None)
                runs[(family, k, b)] = {
                    "runner": runner,
                    "x": x,
                    "first_call_s": time.perf_counter() - start,
                    "times": [],
                }
    for _ in range(args.rounds):
        for run in runs.values():
            start = time.perf_counter()
            run["runner"].generate(run["x"], stop_token_ids=None)
            run["times"].append(time.perf_counter() - start)
    results = []
    for (family, k, b), run in runs.items():
        seconds = statistics.median(run["times"])
        results.append(
            {
                "family": family,
                "model_axis": k,
                "batch": b,
                "tokens_per_s": round(b * NEW_TOKENS / seconds, 1),
                "median_s": round(seconds, 3),
                "first_call_s": round(run["first_call_s"], 1),
                "cache_bytes_per_device": cache_bytes_per_device(b, k),
            }
        )
    print(json.dumps({"prompt": PROMPT, "new_tokens": NEW_TOKENS, "runs": results}))


if __name__ == "__main__":
    main()
