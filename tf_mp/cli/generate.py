"""`tf-mp generate`: text from a keras-hub causal LM preset, on a mesh."""

import json
import os
import time

from tf_mp.cli import common

SAMPLERS = ("greedy", "top_k", "top_p", "random", "beam", "contrastive")
_SEEDED = ("top_k", "top_p", "random")
# keras-hub config keys of the query head count, by family.
_HEADS = ("num_query_heads", "num_heads", "num_attention_heads")


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "generate",
        help="Generate text with a keras-hub causal LM (GPT-2, Gemma, Llama, ...), "
        "split over a mesh.",
    )
    parser.add_argument(
        "--preset",
        required=True,
        help="A local keras-hub causal LM preset directory (from "
        "`save_to_preset`), or a keras-hub preset name.",
    )
    parser.add_argument("--prompt", required=True)
    parser.add_argument("--max-length", type=int, default=64, help="In tokens.")
    parser.add_argument(
        "--sampler", default="greedy", help=f"One of {', '.join(SAMPLERS)}."
    )
    parser.add_argument("--seed", type=int, default=0, help="For random samplers.")
    common.add_device_arguments(parser)
    parser.set_defaults(run=run)


def check_arguments(args):
    """The checks that need no TensorFlow: the sampler, `--max-length`, and,
    for a local preset, that the mesh's model axis divides the heads."""
    if args.sampler not in SAMPLERS:
        raise common.UsageError(
            f"--sampler must be one of {', '.join(SAMPLERS)}. "
            f"Received: --sampler {args.sampler}"
        )
    common.positive("--max-length", args.max_length)
    if not args.mesh:
        return
    model_size = common.parse_pairs(args.mesh).get("model", 1)
    heads = _preset_heads(args.preset)
    if heads is not None and heads % model_size:
        raise common.UsageError(
            f"--mesh {args.mesh}: the model axis ({model_size}) must divide the "
            f"preset's {heads} attention heads"
        )


def _preset_heads(preset):
    """The query head count from a local preset's `config.json`, else `None`."""
    path = os.path.join(preset, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        config = json.load(f).get("config", {})
    return next((config[key] for key in _HEADS if key in config), None)


def load(args):
    """The causal LM, compiled with the sampler, on the mesh if one is given."""
    distribution = common.setup_devices(args)
    import keras_hub

    import tf_mp

    try:
        model = keras_hub.models.CausalLM.from_preset(args.preset)
    except (ValueError, FileNotFoundError) as error:
        raise common.UsageError(f"--preset {args.preset}: {error}") from None
    if distribution is not None:
        model = tf_mp.models.partition(model, mesh=distribution.mesh)
    sampler = args.sampler
    if sampler in _SEEDED:
        sampler = keras_hub.samplers.get(
            {"class_name": sampler, "config": {"seed": args.seed}}
        )
    model.compile(sampler=sampler)
    return model


def run(args):
    check_arguments(args)
    model = load(args)
    tokenizer = model.preprocessor.tokenizer
    prompt_tokens = len(tokenizer(args.prompt))
    if prompt_tokens >= args.max_length:
        raise common.UsageError(
            f"--prompt is {prompt_tokens} tokens, not shorter than --max-length "
            f"{args.max_length}"
        )
    start = time.perf_counter()
    text = model.generate(args.prompt, max_length=args.max_length)
    seconds = time.perf_counter() - start
    new_tokens = max(len(tokenizer(text)) - prompt_tokens, 0)
    print(text)
    print(
        f"{new_tokens} new tokens in {seconds:.2f} s: {new_tokens / seconds:.1f} "
        "tokens/s (first call: includes compiling)"
    )
