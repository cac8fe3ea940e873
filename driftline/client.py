"""A small client of ``driftline serve``'s HTTP API, behind the ``models`` and ``alerts`` commands.

While ``driftline serve`` runs it owns the data dir, so the other commands talk to
it over HTTP (``--url``, default from ``DRIFTLINE_API_HOST``/``DRIFTLINE_API_PORT``,
token from ``--token`` or ``DRIFTLINE_TOKEN``).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from driftline.errors import UsageError


class ApiClient:
    """Thin, synchronous calls to the HTTP API; errors become one-line ``UsageError`` s."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 30.0) -> None:
        token = token or os.environ.get("DRIFTLINE_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self._client.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise UsageError(
                f"cannot reach driftline serve at {self.url}: {exc} (is it running? see --url)"
            ) from None
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text[:200]
            raise UsageError(f"{method} {path} answered {resp.status_code}: {detail}")
        return resp.json()

    def models(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/models")["models"])

    def register(self, name: str, version: str, profile_json: str) -> dict[str, Any]:
        body = {
            "model_name": name,
            "model_version": version,
            "event_type": "registered",
            "reference_profile": profile_json,
        }
        return dict(self._call("POST", "/v1/model-events", json=body))

    def alerts(
        self, state: str | None = None, model: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params = {
            k: v
            for k, v in {"state": state, "model": model, "limit": limit}.items()
            if v is not None
        }
        return list(self._call("GET", "/v1/alerts", params=params)["alerts"])

    def act(self, alert_id: str, action: str, note: str | None = None) -> dict[str, Any]:
        path = f"/v1/alerts/{alert_id}/{'ack' if action == 'acknowledge' else 'resolve'}"
        return dict(self._call("POST", path, json={"note": note} if note else None))
