"""`qwen-magics serve` runs the emulator on its own; curl sees reasoning, answer, usage, [DONE]."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served():  # type: ignore[no-untyped-def]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qwen_magics.cli", "serve", "--port", str(port), "--generator", "simple"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert f"127.0.0.1:{port}/compatible-mode/v1" in line
    yield port
    proc.terminate()
    proc.wait(timeout=10)
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()


def test_curl_shows_reasoning_answer_usage_and_done(served: int) -> None:
    curl = shutil.which("curl")
    assert curl, "curl is needed for this test (apt-get install curl)"
    body = {
        "model": "qwen3.6-plus",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Why is the sky blue?"}],
    }
    out = subprocess.run(
        [
            curl,
            "-sN",
            f"http://127.0.0.1:{served}/compatible-mode/v1/chat/completions",
            "-H",
            "Authorization: Bearer sk-anything",
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps(body),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert '"reasoning_content":"The"' in out
    assert '"content":"You"' in out
    assert '"choices":[],' in out and '"reasoning_tokens"' in out
    assert out.rstrip().endswith("data: [DONE]")


def test_serve_warns_when_not_on_loopback() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qwen_magics.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--generator",
            "simple",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 10
        line = ""
        while "warning" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
        assert "not loopback" in line
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
