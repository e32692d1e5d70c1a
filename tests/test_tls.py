"""Transport security: certificates are verified, a private CA works through SSL_CERT_FILE, and the
emulator listens on loopback unless told otherwise, and says so when it is not."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qwen_magics.api.client import AsyncClient, Client
from qwen_magics.emulator import Emulator
from qwen_magics.errors import APIConnectionError

from .conftest import TEST_KEY

CERT_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR")


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate it signed for localhost and 127.0.0.1 (openssl CLI)."""
    openssl = shutil.which("openssl")
    assert openssl, "the TLS tests make certificates with the openssl command (apt-get install openssl)"

    def run(*args: object) -> None:
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)

    ca, ca_key, cert, key = (folder / name for name in ("ca.pem", "ca.key", "server.pem", "server.key"))
    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    ca_usage = ("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run(
        "req", "-x509", *new_key, *ca_usage, "-keyout", ca_key, "-out", ca, "-days", 1, "-subj", "/CN=test CA"
    )
    run("req", *new_key, "-keyout", key, "-out", folder / "server.csr", "-subj", "/CN=localhost")
    extensions = folder / "server.cnf"
    extensions.write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    signed_by_ca = ("-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-extfile", extensions)
    run("x509", "-req", "-in", folder / "server.csr", *signed_by_ca, "-out", cert, "-days", 1)
    return ca, cert, key


@pytest.fixture
def https(
    tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Emulator, Path]]:
    """The emulator over HTTPS with a certificate from a CA no trust store knows."""
    for name in CERT_VARS:
        monkeypatch.delenv(name, raising=False)
    ca, cert, key = make_certificates(tmp_path)
    with Emulator(generator="simple", api_key=TEST_KEY, tls=(str(cert), str(key))) as emu:
        yield emu, ca


def test_an_unknown_certificate_authority_is_refused_with_a_clear_error(
    https: tuple[Emulator, Path], caplog: pytest.LogCaptureFixture
) -> None:
    emu, _ = https
    assert emu.base_url.startswith("https://127.0.0.1:")
    with (
        caplog.at_level(logging.INFO, logger="qwen_magics"),
        Client() as client,
        pytest.raises(APIConnectionError) as err,
    ):
        client.ask("hi", base_url=emu.base_url, api_key=TEST_KEY)
    message = str(err.value)
    assert "certificate" in message and "SSL_CERT_FILE" in message, message
    assert emu.base_url in message
    # not retried: waiting does not fix a certificate (each retry is logged before its pause)
    assert not [r.message for r in caplog.records if "retrying" in r.message]
    assert emu.requests == []  # the handshake failed: no request (and no key) went over the wire
    assert TEST_KEY not in message


def test_ssl_cert_file_adds_a_private_certificate_authority(
    https: tuple[Emulator, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu, ca = https
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    with Client() as client:
        response = client.ask("hi", base_url=emu.base_url, api_key=TEST_KEY)
        assert response.text == "You asked: hi. This is the emulator's answer."

    async def through_async() -> str:
        async with AsyncClient() as client:
            response = await client.ask("hi again", base_url=emu.base_url, api_key=TEST_KEY)
            await response.acomplete()
            return response.text

    import asyncio

    assert asyncio.run(through_async()).startswith("You asked: hi again.")
    assert [r.auth for r in emu.chat_requests] == ["ok", "ok"]


def test_ssl_cert_dir_adds_a_private_certificate_authority(
    https: tuple[Emulator, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu, ca = https
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / "ca.pem").write_bytes(ca.read_bytes())
    subprocess.run(["openssl", "rehash", str(folder)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_DIR", str(folder))
    with Client() as client:
        assert client.ask("hi", base_url=emu.base_url, api_key=TEST_KEY).text.startswith("You asked: hi.")


def test_the_magic_in_a_fresh_process_trusts_the_ca_named_in_the_environment(
    https: tuple[Emulator, Path],
) -> None:
    emu, ca = https
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'qwen_magics')\n"
        "ip.run_cell_magic('qwen', '--no-thinking', 'over TLS')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "QWEN_", "SSL_CERT"))}
    env.update(DASHSCOPE_BASE_URL=emu.base_url, DASHSCOPE_API_KEY=TEST_KEY)
    refused = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert "certificate" in refused.stdout and "SSL_CERT_FILE" in refused.stdout
    trusted = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "SSL_CERT_FILE": str(ca)},
        timeout=60,
    )
    assert "You asked: over TLS. This is the emulator's answer." in trusted.stdout, trusted.stderr
    assert TEST_KEY not in refused.stdout + refused.stderr + trusted.stdout + trusted.stderr


# -- where the emulator listens -------------------------------------------------------------------
def outward_address() -> str:
    """This machine's address on its network (no packet is sent: UDP connect only picks a route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere
        address = str(s.getsockname()[0])
    assert not ipaddress.ip_address(address).is_loopback, "this test needs a network interface"
    return address


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def test_the_emulator_listens_on_loopback_by_default(clean_env: None) -> None:
    with Emulator(generator="simple") as emu:
        assert emu.is_loopback and emu.base_url.startswith("http://127.0.0.1:")
        assert reachable("127.0.0.1", emu.port)
        assert not reachable(outward_address(), emu.port)


def test_the_emulator_says_so_when_it_listens_beyond_loopback(clean_env: None) -> None:
    emu = Emulator("0.0.0.0", generator="simple")
    with pytest.warns(UserWarning, match=r"listens on 0\.0\.0\.0, not loopback: other machines can reach it"):
        emu.start()
    try:
        assert not emu.is_loopback
        assert reachable(outward_address(), emu.port)
    finally:
        emu.stop()


def test_serve_listens_on_loopback_and_warns_once_beyond_it() -> None:
    def serve(*host: str) -> tuple[str, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qwen_magics.cli", "serve", *host, "--port", "0", "--generator", "simple"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            port = int(first.rsplit(":", 1)[1].split("/", 1)[0])
            last = proc.stdout.readline()  # printed after any warning: the banner is all out
            assert last.startswith("set DASHSCOPE_BASE_URL"), last
            assert reachable("127.0.0.1", port)
            outside = reachable(outward_address(), port)
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=10)
        return first + last + out + f"reachable from outside: {outside}", err

    out, err = serve()
    assert "http://127.0.0.1:" in out and "reachable from outside: False" in out
    assert "warning" not in err.lower()
    out, err = serve("--host", "0.0.0.0")
    assert "reachable from outside: True" in out
    assert err.count("not loopback") == 1, err  # the server's own line, not a second Python warning
