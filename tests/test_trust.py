"""np-envs' own files are data only: a checkpoint or run folder carrying a pickle payload is
refused, never executed; ``load`` never imports a module a file names; a local Ray started by
np-envs listens on the loopback address only."""

from __future__ import annotations

import io
import ipaddress
import json
import pickle
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import np_envs  # noqa: F401  (registers the ids)
from agents import make_agent
from agents.checkpoint import CheckpointError
from agents.node_perturbation import NodePerturbation
from np_envs.experiments.config import Settings
from np_envs.experiments.datastate import StateFileError, read_data_state, write_data_state
from np_envs.experiments.sweep import run_sweep

LINEAR = "NPLinearTeacher-v0"


class Payload:
    """Unpickling this creates ``marker``: proof that a loader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _assert_payload_is_live(tmp_path: Path) -> None:
    """The payload does run when unpickled: so a missing marker means a refusal."""
    probe = tmp_path / "probe-marker"
    pickle.loads(pickle.dumps(Payload(probe))).close()
    assert probe.exists()


def _agent_file(tmp_path: Path) -> Path:
    env = gym.make_vec(LINEAR, num_envs=4, Lx=6, Ly=2)
    path = tmp_path / "agent.zip"
    make_agent("np", env, hidden_sizes=(4,), seed=0).save(path)
    return path


def _rewrite(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    entries[name] = data
    with zipfile.ZipFile(path, "w") as zf:
        for n, d in entries.items():
            zf.writestr(n, d)


def test_a_checkpoint_with_a_pickle_payload_is_refused_not_run(tmp_path):
    _assert_payload_is_live(tmp_path)
    path = _agent_file(tmp_path)
    marker = tmp_path / "marker"
    buffer = io.BytesIO()
    torch.save({"network": Payload(marker)}, buffer)
    _rewrite(path, "tensors.pt", buffer.getvalue())
    env = gym.make_vec(LINEAR, num_envs=4, Lx=6, Ly=2)
    with pytest.raises(CheckpointError, match="not an np-envs checkpoint of this kind"):
        NodePerturbation.load(path, env=env)
    assert not marker.exists(), "loading the checkpoint ran the payload"


def test_load_never_imports_a_module_named_in_the_file(tmp_path, monkeypatch):
    path = _agent_file(tmp_path)
    marker = tmp_path / "imported"
    (tmp_path / "evil_np_envs_plugin.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Rule:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("agent.json"))
    meta["class"] = "evil_np_envs_plugin:Rule"
    meta["name"] = "evil"
    _rewrite(path, "agent.json", json.dumps(meta).encode())
    with pytest.raises(CheckpointError):
        NodePerturbation.load(path)
    assert not marker.exists() and "evil_np_envs_plugin" not in sys.modules


def test_a_state_file_with_an_object_array_is_refused_not_run(tmp_path):
    _assert_payload_is_live(tmp_path)
    base = tmp_path / "env-000001"
    write_data_state(base, {"position": 3, "rng": np.arange(4)})
    marker = tmp_path / "marker"
    evil = np.empty(1, dtype=object)
    evil[0] = Payload(marker)
    np.savez(base.with_suffix(".npz"), a0=evil)  # allow_pickle is numpy's default on save
    with pytest.raises(StateFileError):
        read_data_state(base)
    assert not marker.exists()


@pytest.mark.parametrize("tamper", [
    lambda t: "{not json",
    lambda t: json.dumps({**json.loads(t), "rng": {"__array__": "a9"}}),  # no such array
])
def test_a_tampered_state_json_is_refused(tmp_path, tamper):
    base = tmp_path / "env-000001"
    write_data_state(base, {"position": 3, "rng": np.arange(4)})
    js = base.with_suffix(".json")
    js.write_text(tamper(js.read_text()))
    with pytest.raises(StateFileError, match="not an np-envs state file"):
        read_data_state(base)


def test_a_run_folder_carrying_a_pickle_payload_is_refused_on_resume(tmp_path):
    """A whole sweep's population checkpoint: resuming it reads the env state, refuses the
    object array, records the members as failed and runs nothing."""
    settings = Settings(LINEAR, budget=40, unit="trials", eval_every=20, num_envs=4,
                        target=3.0, env_kwargs={"Lx": 6, "Ly": 2})
    grid = (["np"], [(4,)], ["0.5eta*"], [0, 1])
    first = run_sweep(settings, *grid, tmp_path, progress=False, quiet=True, draw=False)
    assert {r["status"] for r in first["results"]} == {"done"}
    (job,) = (tmp_path / "populations").iterdir()
    state = json.loads((job / "checkpoint" / "state.json").read_text())
    npz = job / "checkpoint" / (state["env_file"] + ".npz")
    marker = tmp_path / "marker"
    with np.load(npz) as arrays:
        names = list(arrays.files)
    evil = np.empty(1, dtype=object)
    evil[0] = Payload(marker)
    np.savez(npz, **{name: evil for name in names})
    for done in (tmp_path / "runs").glob("*/done*"):
        done.unlink()  # make the members resume from the tampered checkpoint, mid-budget
    (job / "checkpoint" / "state.json").write_text(json.dumps({**state, "chunk": 1}))

    again = run_sweep(settings, *grid, tmp_path, progress=False, quiet=True, draw=False)
    assert {r["status"] for r in again["results"]} == {"failed"}
    assert all("StateFileError" in r["error"] for r in again["results"])
    assert not marker.exists()


def _listening_sockets(pids: set[int]) -> list[str]:
    """``ip:port`` of every TCP socket in LISTEN state that one of ``pids`` holds."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    target = fd.readlink().as_posix()
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, status, inode = fields[1], fields[3], fields[9]
            if status == "0A" and inode in inodes:  # 0A: LISTEN
                addr, port = local.split(":")
                found.append(f"{_proc_net_address(addr)}:{int(port, 16)}")
    return found


def _proc_net_address(hex_addr: str) -> str:
    """An address of /proc/net/tcp{,6} (32-bit words in host order) as text; an IPv4-mapped
    IPv6 address (``::ffff:127.0.0.1``, how gRPC's dual-stack sockets appear) as its IPv4."""
    raw = b"".join(bytes.fromhex(hex_addr[i:i + 8])[::-1] for i in range(0, len(hex_addr), 8))
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    ip6 = ipaddress.IPv6Address(raw)
    return str(ip6.ipv4_mapped or ip6)


def _descendants(pid: int) -> set[int]:
    found, stack = set(), [pid]
    while stack:
        p = stack.pop()
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def test_proc_net_addresses_are_read_as_the_kernel_writes_them():
    assert _proc_net_address("0100007F") == "127.0.0.1"
    assert _proc_net_address("00000000") == "0.0.0.0"
    assert _proc_net_address("0000000000000000FFFF00000100007F") == "127.0.0.1"
    assert _proc_net_address("00000000000000000000000001000000") == "::1"
    assert _proc_net_address("00000000000000000000000000000000") == "::"


@pytest.mark.slow
def test_a_local_ray_started_by_np_envs_listens_on_loopback_only():
    ray = pytest.importorskip("ray")
    import os

    from np_envs.experiments.executor import RAY_LOCAL_IP, start_local_ray

    if ray.is_initialized():
        pytest.skip("a Ray instance is already connected in this process")
    start_local_ray(1)
    try:
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {RAY_LOCAL_IP}
        sockets = _listening_sockets(_descendants(os.getpid()) | {os.getpid()})
        assert sockets, "found no listening socket of the local Ray"
        assert all(ipaddress.ip_address(s.rsplit(":", 1)[0]).is_loopback for s in sockets), \
            sockets
    finally:
        ray.shutdown()
