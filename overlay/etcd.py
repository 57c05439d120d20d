"""etcd v3 through its JSON gateway (/v3/*, etcd 3.4-3.6) over http.client: the calls the agent needs.

Why not a library: the gRPC clients pull grpcio + protobuf (~45 MB; etcd3 0.12 breaks on protobuf >= 4), and
python-etcd speaks only the v2 API that 3.4 turns off. The gateway is stable and needs nothing.
Keys and values travel base64-encoded, int64 fields as JSON strings, and a field equal to its zero value is
left out (a failed Txn has no "succeeded", an expired lease's keepalive no "TTL").

Endpoints are tried in order, from the last one that answered; EtcdUnavailable means none did.
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class EtcdError(Exception):
    """etcd answered, with an error (e.g. a lease that does not exist)."""


class EtcdUnavailable(EtcdError):
    """No endpoint answered."""


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes
    lease: int = 0
    mod_revision: int = 0


@dataclass(frozen=True)
class Event:
    type: str                  # "PUT" or "DELETE"
    kv: KV


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _kv(data: dict[str, Any]) -> KV:
    return KV(key=base64.b64decode(data.get("key", "")).decode(errors="replace"),
              value=base64.b64decode(data.get("value", "")), lease=int(data.get("lease", 0)),
              mod_revision=int(data.get("mod_revision", 0)))


def prefix_end(prefix: str) -> bytes:
    """range_end for "every key starting with prefix": the prefix with its last byte + 1."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return bytes(raw)


class Etcd:
    def __init__(self, endpoints: list[str], *, timeout: float = 5.0) -> None:
        self.endpoints = [urllib.parse.urlsplit(url if "//" in url else f"http://{url}") for url in endpoints]
        self.timeout = timeout
        self._current = 0

    # --- KV ------------------------------------------------------------------------------------------------
    def get(self, key: str) -> KV | None:
        kvs = self.call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    def range_prefix(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under prefix, and the store revision they were read at (a watch starts after it)."""
        out = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        return [_kv(kv) for kv in out.get("kvs", [])], int(out["header"]["revision"])

    def create(self, key: str, value: str, *, lease: int) -> bool:
        """Put only if the key does not exist (create_revision == 0): how two nodes never get one subnet."""
        return self._txn({"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"},
                         key, value, lease)

    def replace(self, key: str, value: str, *, lease: int, mod_revision: int) -> bool:
        """Put only if the key is still as we read it (our own lease from a previous run)."""
        return self._txn({"key": _b64(key), "target": "MOD", "result": "EQUAL",
                          "mod_revision": str(mod_revision)}, key, value, lease)

    def put(self, key: str, value: str) -> None:
        self.call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def delete(self, key: str) -> None:
        self.call("/v3/kv/deleterange", {"key": _b64(key)})

    def _txn(self, compare: dict[str, str], key: str, value: str, lease: int) -> bool:
        put = {"key": _b64(key), "value": _b64(value), "lease": str(lease)}
        out = self.call("/v3/kv/txn", {"compare": [compare], "success": [{"request_put": put}]})
        return bool(out.get("succeeded", False))

    # --- leases ----------------------------------------------------------------------------------------------
    def grant(self, ttl: int) -> int:
        return int(self.call("/v3/lease/grant", {"TTL": str(ttl)})["ID"])

    def keepalive(self, lease: int) -> int:
        """One renewal; the remaining TTL, 0 when the lease is gone (expired while we could not renew)."""
        out = self.call("/v3/lease/keepalive", {"ID": str(lease)})
        return int(out.get("result", out).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        self.call("/v3/lease/revoke", {"ID": str(lease)})

    # --- watch -----------------------------------------------------------------------------------------------
    def watch(self, prefix: str, *, start_revision: int,
              stop: list[socket.socket] | None = None) -> Iterator[list[Event]]:
        """Batches of events under prefix from start_revision on; returns when the stream ends (etcd went away,
        or a compaction passed start_revision: the caller relists). `stop` receives the socket, so another
        thread can shut it down to end the watch."""
        body = {"create_request": {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix)),
                                   "start_revision": str(start_revision), "prev_kv": True}}
        conn, response, url = self._open_watch(json.dumps(body))
        try:
            if response.status != 200:
                raise EtcdError(f"watch on {url.netloc}: HTTP {response.status}")
            assert conn.sock is not None
            conn.sock.settimeout(None)          # a watch is quiet while nothing changes
            if stop is not None:
                stop.append(conn.sock)
            for line in iter(response.readline, b""):
                result = json.loads(line).get("result", {})
                if "compact_revision" in result and int(result["compact_revision"]) > 0 or result.get("canceled"):
                    return
                events = [Event(event.get("type", "PUT"), _kv(event.get("kv", {})))
                          for event in result.get("events", [])]
                if events:
                    yield events
        except (OSError, http.client.HTTPException, ValueError):
            return
        finally:
            conn.close()

    def _open_watch(self, body: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse,
                                              urllib.parse.SplitResult]:
        """The watch stream from the first endpoint that answers, starting at the last one that did."""
        errors = []
        for step in range(len(self.endpoints)):
            index = (self._current + step) % len(self.endpoints)
            url = self.endpoints[index]
            conn = http.client.HTTPConnection(url.hostname or "", url.port or 2379, timeout=self.timeout)
            try:
                conn.request("POST", "/v3/watch", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                errors.append(f"{url.netloc}: {exc}")
                continue
            self._current = index
            return conn, response, url
        raise EtcdUnavailable("no etcd endpoint answered the watch: " + "; ".join(errors))

    # --- transport -------------------------------------------------------------------------------------------
    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors = []
        for step in range(len(self.endpoints)):
            index = (self._current + step) % len(self.endpoints)
            url = self.endpoints[index]
            conn = http.client.HTTPConnection(url.hostname or "", url.port or 2379, timeout=self.timeout)
            try:
                conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
                response = conn.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{url.netloc}: {exc}")
                continue
            finally:
                conn.close()
            self._current = index
            data = json.loads(text) if text else {}
            if response.status != 200 or "error" in data:
                reason = data.get("error") or data.get("message") or response.status
                raise EtcdError(f"{path} on {url.netloc}: {reason}")
            return data
        raise EtcdUnavailable("no etcd endpoint answered: " + "; ".join(errors))
