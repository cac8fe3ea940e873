"""Confluent Schema Registry ids of driftline's schemas, for the codec's registry framing.

Producers that use Confluent's serializers write ``00`` + a 4-byte schema id + the
Avro body. ``schemas.codec.AvroCodec`` reads that framing when it knows which id
stands for which schema; this module asks the registry (subject
``<topic>-value``, the default TopicNameStrategy) and builds that mapping.
"""

from __future__ import annotations

from typing import Any

import httpx

from schemas.topics import Topic
from streams.kafka_topics import TopicNames

__all__ = ["SchemaRegistryError", "registry_ids"]


class SchemaRegistryError(RuntimeError):
    """The registry cannot be reached or answered something unexpected."""


def registry_ids(
    url: str,
    names: TopicNames,
    *,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> dict[int, str]:
    """Every schema id registered under a driftline topic's value subject.

    Parameters
    ----------
    url
        Base URL of the registry (``http://registry:8081``).
    names
        Topic names on the cluster (subjects are ``<kafka topic name>-value``).
    timeout
        Seconds per request.
    transport
        An ``httpx`` transport (tests).

    Returns
    -------
    dict[int, str]
        Schema id -> schema name (``prediction``, ``label``, ...). Subjects the registry
        does not know are skipped.

    Raises
    ------
    SchemaRegistryError
        The registry cannot be reached or answers with an error other than 404.
    """
    ids: dict[int, str] = {}
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout, transport=transport) as client:
        for topic in Topic:
            subject = f"{names.name(topic)}-value"
            versions = _get(client, f"/subjects/{subject}/versions")
            if versions is None:
                continue
            for version in versions:
                body = _get(client, f"/subjects/{subject}/versions/{int(version)}")
                if body is not None and isinstance(body.get("id"), int):
                    ids[body["id"]] = topic.schema_name
    return ids


def _get(client: httpx.Client, path: str) -> Any:
    try:
        response = client.get(path)
    except httpx.HTTPError as exc:
        raise SchemaRegistryError(f"cannot reach the schema registry: {exc}") from exc
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise SchemaRegistryError(
            f"schema registry answered {response.status_code} to GET {path}: {response.text[:200]}"
        )
    return response.json()
