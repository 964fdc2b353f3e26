"""Each encoder block costs Megatron's minimal communication, read from DTensor.

`count_collectives.py` runs in its own process (DTensor's MLIR dump must be
switched on before TensorFlow starts) and reports the collectives in the
compiled step functions of `Dense -> n blocks -> Dense` on a `model=k` mesh.
Megatron: forward, one all-reduce after attention and one after the
feed-forward; backward, their mirrors (the reductions of the input gradients
of the column-parallel attention and feed-forward projections).
"""

import json
import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "count_collectives.py")


@pytest.mark.parametrize("model, blocks", [(2, 1), (4, 3)])
def test_encoder_blocks_need_two_all_reduces_forward_and_two_backward(model, blocks):
    result = subprocess.run(
        [sys.executable, SCRIPT, f"--model={model}", f"--blocks={blocks}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["predict"] == {
        "dtensor": {"DTensorAllReduce": 2 * blocks},
        "lowered": {"CollectiveReduceV2": 2 * blocks},
    }
    assert counts["fit"] == {
        "dtensor": {"DTensorAllReduce": 4 * blocks},
        "lowered": {"CollectiveReduceV2": 4 * blocks},
    }
    # The same collectives read in-process, as `tf_mp.plan` reports them:
    # all over the model axis, each one activation (batch 4 x 8 x 16 float32,
    # whole on a `batch=1` mesh).
    activation = 4 * 8 * 16 * 4
    for step, count in (("fit_read", 4 * blocks), ("predict_read", 2 * blocks)):
        assert counts[step] == {
            "all_reduce@model": {"count": count, "bytes": count * activation}
        }


@pytest.mark.parametrize(
    "mesh, expected, read",
    [
        # Megatron's 4 per block (2 blocks) + 1 all-gather of the embedding
        # output (`bert_layout_map`'s "token_embedding/output"), lowered to an
        # all-reduce; was 72.
        # Slow (18 s a mesh on 2 cores), as is 2x1: 2x2 asserts both sums.
        pytest.param(
            "1x2",
            9,
            {"all_reduce@model": 8, "all_gather@model": 1},
            marks=pytest.mark.slow,
        ),
        # Every gradient, the loss and the metrics in one group; was 45.
        pytest.param("2x1", 1, {"all_reduce@batch": 1}, marks=pytest.mark.slow),
        # Both: the model axis's 9 and one group over the batch axis; was 117.
        (
            "2x2",
            10,
            {"all_reduce@model": 8, "all_gather@model": 1, "all_reduce@batch": 1},
        ),
    ],
)
def test_keras_hub_bert_fit_step_all_reduces(mesh, expected, read):
    result = subprocess.run(
        [sys.executable, SCRIPT, f"--bert={mesh}", "--blocks=2"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["fit"] == {
        "dtensor": {"DTensorAllReduce": expected},
        "lowered": {"CollectiveReduceV2": expected},
    }
    # Read in-process (`tf_mp.plan`'s compiled counts): the same ops, by what
    # each computes and the mesh axis it spans.
    assert {op: c["count"] for op, c in counts["fit_read"].items()} == read
    assert all(c["bytes"] > 0 for c in counts["fit_read"].values())
