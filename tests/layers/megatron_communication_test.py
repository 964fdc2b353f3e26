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


@pytest.mark.parametrize(
    "mesh, expected",
    [
        # Megatron's 4 per block (2 blocks) + 1 all-gather of the embedding
        # output (`bert_layout_map`'s "token_embedding/output"); was 72.
        ("1x2", 9),
        # Every gradient, the loss and the metrics in one group; was 45.
        ("2x1", 1),
        # Both: the model axis's 9 and one group over the batch axis; was 117.
        ("2x2", 10),
    ],
)
def test_keras_hub_bert_fit_step_all_reduces(mesh, expected):
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
