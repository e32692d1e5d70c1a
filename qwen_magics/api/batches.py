"""The Batch API on the wire: DashScope's OpenAI-compatible Files and Batches endpoints (reference §11).

``BatchWire`` sends one HTTP request per call, with the chat client's key header, transport-error
mapping and error bodies (``api/request.py``). Uploads stream the file from disk and downloads
stream to disk, so a 500 MB job never sits in memory. Reads (retrieve, list, download) and
refusals that sent nothing (429) are tried again with the chat client's backoff; a create or
cancel that may have reached the service is not.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .. import config as _config
from ..errors import APIError, QwenError
from .request import Retry, auth_headers, check_key, error_from_body, map_transport, retryable

__all__ = ["ENDPOINT", "BatchWire"]

ENDPOINT = "/v1/chat/completions"
CHUNK = 1 << 16
T = TypeVar("T")


class BatchWire:
    """Files and Batches calls against one server. ``with BatchWire() as wire: wire.upload(path)``."""

    def __init__(
        self,
        settings: _config.Settings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        retry: Retry | None = None,
    ) -> None:
        self.settings = settings or _config.settings()
        check_key(self.settings)
        self.retry = retry or Retry()
        timeout = self.settings.timeout
        self.http = httpx.Client(
            transport=transport, timeout=httpx.Timeout(timeout, connect=min(10.0, timeout))
        )

    def __repr__(self) -> str:
        return f"BatchWire({self.settings.where})"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> BatchWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- files ----------------------------------------------------------------------------------
    def upload(self, path: Path, *, filename: str | None = None) -> dict[str, Any]:
        """``POST /files`` with ``purpose=batch``; the file is read from disk in pieces as it is sent."""
        path = Path(path)
        with open(path, "rb") as f:
            files = {"file": (filename or path.name, f, "application/jsonl")}
            return self._json("POST", "/files", files=files, data={"purpose": "batch"})

    def download(self, file_id: str, path: Path) -> Path:
        """``GET /files/{id}/content`` written to ``path`` as it arrives (via a partial file, so an
        interrupted download never looks finished)."""
        path = Path(path)
        partial = path.with_name(path.name + ".part")

        def save() -> Path:
            with self.http.stream(
                "GET", self._url(f"/files/{file_id}/content"), headers=self._headers()
            ) as resp:
                if resp.status_code != 200:
                    raise error_from_body(resp.status_code, resp.read(), resp.headers, self.settings)
                with open(partial, "wb") as out:
                    for chunk in resp.iter_bytes(CHUNK):
                        out.write(chunk)
            os.replace(partial, path)
            return path

        return self._again(save, idempotent=True)

    def delete_file(self, file_id: str) -> None:
        self._json("DELETE", f"/files/{file_id}")

    # -- batches --------------------------------------------------------------------------------
    def create(
        self, input_file_id: str, *, completion_window: str = "24h", metadata: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "input_file_id": input_file_id,
            "endpoint": ENDPOINT,
            "completion_window": completion_window,
        }
        if metadata:
            body["metadata"] = metadata
        return self._json("POST", "/batches", json=body)

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"/batches/{batch_id}")

    def list(self, *, after: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The service's batches, newest first: one page of ``limit`` after the batch id ``after``."""
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        page = self._json("GET", "/batches", params=params)
        data = page.get("data")
        return [b for b in data if isinstance(b, dict)] if isinstance(data, list) else []

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return self._json("POST", f"/batches/{batch_id}/cancel")

    # -- plumbing -------------------------------------------------------------------------------
    def _url(self, route: str) -> str:
        return f"{self.settings.base_url}{route}"

    def _headers(self) -> dict[str, str]:
        return {"Accept": "application/json", **auth_headers(self.settings)}

    def _json(self, method: str, route: str, **kw: Any) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            for value in kw.get("files", {}).values():
                value[1].seek(0)  # a retried upload starts the file again
            resp = self.http.request(method, self._url(route), headers=self._headers(), **kw)
            if not 200 <= resp.status_code < 300:
                raise error_from_body(resp.status_code, resp.content, resp.headers, self.settings)
            try:
                data = json.loads(resp.content)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                raise APIError(
                    f"{self.settings.where} answered {method} {route} without a JSON object; "
                    "check the base URL",
                    status=resp.status_code,
                    request_id=resp.headers.get("x-request-id"),
                )
            return data

        return self._again(call, idempotent=method in ("GET", "DELETE"))

    def _again(self, call: Callable[[], T], *, idempotent: bool) -> T:
        """``call``, tried again on what the chat client retries; a request that may have taken
        effect (a create that timed out) only when it is safe to repeat."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except httpx.TransportError as exc:
                error: QwenError = map_transport(exc, self.settings.where)
                refused = isinstance(exc, httpx.ConnectError)
            except APIError as exc:
                error, refused = exc, exc.status == 429
            if not (idempotent or refused) or not retryable(error) or attempt >= self.retry.attempts:
                raise error from None
            delay = self.retry.delay(attempt)
            if time.monotonic() - started + delay > self.retry.total:
                raise error from None
            time.sleep(delay)
