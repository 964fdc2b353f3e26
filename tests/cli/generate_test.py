"""`tf-mp generate`: text from a causal LM preset on a mesh, the same as on one
device; bad input exits 2 with one line, before TensorFlow starts where it
can."""

import pytest

from tests.cli.isolated import run_cli
from tf_mp.cli.commands import main

PROMPT = "the quick brown"


def _generate(capsys, preset, *extra):
    status = main(
        ["generate", "--preset", preset, "--prompt", PROMPT, "--max-length", "12"]
        + list(extra)
    )
    out = capsys.readouterr().out.strip().splitlines()
    return status, out


@pytest.mark.parametrize("sampler", ["greedy", "top_k"])
def test_generate_on_a_mesh_prints_one_devices_text(
    capsys, virtual_devices, tiny_gemma_preset, sampler
):
    status, alone = _generate(capsys, tiny_gemma_preset, "--sampler", sampler)
    assert status == 0
    status, split = _generate(
        capsys, tiny_gemma_preset, "--sampler", sampler, "--mesh", "batch=1,model=4"
    )
    assert status == 0
    assert split[0] == alone[0] and split[0].startswith(PROMPT)
    assert split[1].endswith("tokens/s (first call: includes compiling)")
    assert int(split[1].split()[0]) > 0


@pytest.mark.parametrize(
    "extra, line",
    [
        (
            ["--sampler", "nucleus"],
            "--sampler must be one of greedy, top_k, top_p, random, beam, "
            "contrastive. Received: --sampler nucleus",
        ),
        (["--max-length", "0"], "--max-length must be >= 1. Received: --max-length 0"),
        (
            ["--mesh", "batch=1,model=3"],
            "--mesh batch=1,model=3: the model axis (3) must divide the preset's "
            "4 attention heads",
        ),
    ],
)
def test_bad_arguments_exit_2_before_tensorflow_starts(
    tmp_path, tiny_gemma_preset, extra, line
):
    argv = ["generate", "--preset", tiny_gemma_preset, "--prompt", PROMPT] + extra
    status, imported, err = run_cli(argv, tmp_path)
    assert status == 2, err
    assert not imported
    assert err[0] == f"tf-mp generate: error: {line}"


def test_a_prompt_longer_than_max_length_exits_2(capsys, tiny_gemma_preset):
    status = main(
        ["generate", "--preset", tiny_gemma_preset, "--prompt", PROMPT]
        + ["--max-length", "3"]
    )
    err = capsys.readouterr().err.splitlines()
    assert status == 2
    assert err[0] == (
        "tf-mp generate: error: --prompt is 3 tokens, not shorter than --max-length 3"
    )
