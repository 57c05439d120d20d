"""A CRI (runtime.v1) client over containerd's gRPC socket, the way kubelet talks to it. cri_api.proto is compiled
at test time with grpc_tools.protoc into a directory the caller owns; the generated modules are never committed."""
from __future__ import annotations

import importlib.resources
import importlib.util
import json
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PROTO = Path(__file__).resolve().with_name("cri_api.proto")
MODULE = PROTO.stem + "_pb2"  # cri_api_pb2, cri_api_pb2_grpc


def compile_api(out_dir: Path) -> types.SimpleNamespace:
    """protoc cri_api.proto into out_dir; returns SimpleNamespace(pb2=messages module, grpc=stubs module)."""
    from grpc_tools import protoc

    include = importlib.resources.files("grpc_tools") / "_proto"  # google/protobuf/*.proto shipped with the tools
    out_dir.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{include}", f"--python_out={out_dir}",
                      f"--grpc_python_out={out_dir}", str(PROTO)])
    if rc != 0:
        raise RuntimeError(f"protoc failed on {PROTO} (exit {rc})")
    loaded = []
    for name in (MODULE, MODULE + "_grpc"):  # the stubs module does `import cri_api_pb2`: load messages first
        spec = importlib.util.spec_from_file_location(name, out_dir / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        loaded.append(module)
    return types.SimpleNamespace(pb2=loaded[0], grpc=loaded[1])


class CRI:
    """RuntimeService calls with a deadline each (a hung containerd fails the test instead of blocking it)."""

    def __init__(self, api: types.SimpleNamespace, socket: Path, timeout: float = 60) -> None:
        import grpc

        self.api, self.pb, self.timeout = api, api.pb2, timeout
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.stub = api.grpc.RuntimeServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def version(self, timeout: float | None = None) -> Any:
        return self.stub.Version(self.pb.VersionRequest(version="v1"), timeout=timeout or self.timeout)

    def run_pod(self, name: str, *, uid: str, namespace: str, cgroup_parent: str, labels: dict[str, str],
                port_mappings: Iterable[tuple[int, int]] = ()) -> str:
        """RunPodSandbox with TCP hostPort -> containerPort mappings; returns the sandbox id."""
        pb = self.pb
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=0),
            hostname=name, labels=labels,
            port_mappings=[pb.PortMapping(protocol=pb.TCP, container_port=container, host_port=host)
                           for host, container in port_mappings],
            linux=pb.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent))
        return self.stub.RunPodSandbox(pb.RunPodSandboxRequest(config=config), timeout=self.timeout).pod_sandbox_id

    def status(self, sandbox_id: str) -> tuple[Any, dict[str, Any]]:
        """PodSandboxStatus (verbose): the status message and containerd's decoded "info" document."""
        reply = self.stub.PodSandboxStatus(self.pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True),
                                           timeout=self.timeout)
        return reply.status, json.loads(reply.info["info"]) if "info" in reply.info else {}

    def list(self, labels: dict[str, str] | None = None) -> list[Any]:
        request = self.pb.ListPodSandboxRequest(filter=self.pb.PodSandboxFilter(label_selector=labels or {}))
        return list(self.stub.ListPodSandbox(request, timeout=self.timeout).items)

    def stop(self, sandbox_id: str) -> None:
        self.stub.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout=self.timeout)

    def remove(self, sandbox_id: str) -> None:
        self.stub.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
                                   timeout=self.timeout)
