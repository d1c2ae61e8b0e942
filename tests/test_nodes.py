"""The inventory (`[[nodes]]`), `crossyard nodes` and `crossyard nodes probe`.

Probing is real: this machine's `uname -m`, cores and toolchains for a local node; a private
dockerd reached over TCP with a client certificate for a docker node (tests/helpers/dockerd.py);
a socket where no engine listens for an unreachable one. SSH nodes are probed against real sshd
nodes in tests/test_cluster.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import require_tool, run_cli
from crossyard.errors import ConfigurationError
from crossyard.nodes import (
    Node,
    NodeState,
    load_nodes,
    read_states,
    remote_targets,
    ssh_node,
    state_path,
)
from crossyard.platforms import AMD64, ARM64, RISCV64, Platform
from crossyard.project import load_settings
from crossyard.toolchains import load_definitions
from crossyard.workspace import Workspace
from helpers import dockerd
from helpers.dockerd import DockerdHandle

docker_engine = dockerd.docker_engine
FOREIGN = next(p for p in (RISCV64, ARM64, AMD64) if p != Platform.host())


def workspace(root: Path, nodes: str) -> Path:
    (root / "recipes").mkdir(parents=True, exist_ok=True)
    (root / "crossyard.toml").write_text(nodes)
    return root


def settings_nodes(root: Path, nodes: str, environ: dict[str, str] | None = None) -> tuple[Node, ...]:
    ws = Workspace(root=workspace(root, nodes))
    return load_settings(ws, environ=environ or {}).nodes


def host_key(tmp_path: Path) -> tuple[str, Path]:
    """A real ed25519 key pair from ssh-keygen: the public key line and the private key file."""
    require_tool("ssh-keygen", "apt-get install openssh-client")
    key = tmp_path / "keys" / "rv1"
    key.parent.mkdir(exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rv1-host", "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text().strip(), key


def test_no_nodes_is_this_machine_with_the_job_count(tmp_path: Path) -> None:
    (node,) = settings_nodes(tmp_path, "[build]\njobs = 3\n")
    assert (node.name, node.transport, node.arch, node.max_jobs, node.implicit) == (
        "local", "local", Platform.host(), 3, True)


def test_a_full_inventory_is_typed_once(tmp_path: Path) -> None:
    public, key = host_key(tmp_path)
    (tmp_path / "docker-certs").mkdir()
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / "docker-certs" / name).write_text("x")
    nodes = settings_nodes(tmp_path, f"""
[build]
jobs = 2

[[nodes]]
name = "ws"
transport = "local"
labels = ["fast"]

[[nodes]]
name = "rv1"
transport = "ssh"
address = "rv1.lab"
port = 2222
user = "build"
identity = "keys/rv1"
host_key = "{public}"
arch = "riscv64"
max_jobs = 2

[[nodes]]
name = "engine"
transport = "docker"
address = "tcp://10.0.0.5:2376"
cert_path = "docker-certs"
arch = "aarch64"
""")
    ws, rv1, engine = nodes
    assert (ws.transport, ws.max_jobs, ws.labels, ws.arch) == ("local", 2, ("fast",), Platform.host())
    assert (rv1.address, rv1.port, rv1.user, rv1.identity, rv1.arch, rv1.max_jobs) == (
        "rv1.lab", 2222, "build", key, RISCV64, 2)
    assert rv1.host_key == " ".join(public.split()[:2])  # the comment is not part of the key
    assert rv1.node_class == "ssh/riscv64" and rv1.where == "ssh://build@rv1.lab:2222"
    assert (engine.arch, engine.max_jobs, engine.cert_path) == (ARM64, None, tmp_path / "docker-certs")
    assert engine.docker_env() == {"DOCKER_HOST": "tcp://10.0.0.5:2376", "DOCKER_TLS_VERIFY": "1",
                                   "DOCKER_CERT_PATH": str(tmp_path / "docker-certs")}
    only = settings_nodes(tmp_path, (tmp_path / "crossyard.toml").read_text(), {"CROSSYARD_NODES": "engine,ws"})
    assert [n.name for n in only] == ["ws", "engine"]


@pytest.mark.parametrize(("toml", "says"), [
    ('[[nodes]]\nname = "a"\ntransport = "local"\nmax_job = 2\n',
     r"unknown key `max_job` in \[\[nodes\]\] #1 \(a\) \(did you mean `max_jobs`\?\)"),
    ('[[nodes]]\nname = "a"\ntransport = "sshh"\n',
     r"\[\[nodes\]\] #1 \(a\): `transport` = 'sshh' \(did you mean `ssh`\?\)"),
    ('[[nodes]]\ntransport = "local"\n', r"\[\[nodes\]\] #1: `name` = None"),
    ('[[nodes]]\nname = "a"\ntransport = "local"\n[[nodes]]\nname = "a"\ntransport = "docker"\n'
     'address = "unix:///run/docker.sock"\narch = "amd64"\n',
     r"\[\[nodes\]\] #2 \(a\): `name` is also node #1's"),
    ('[[nodes]]\nname = "a"\ntransport = "local"\naddress = "x"\n',
     r"#1 \(a\): `address` does not apply to a `local` node"),
    ('[[nodes]]\nname = "a"\ntransport = "local"\nmax_jobs = 0\n', r"#1 \(a\): `max_jobs` = 0 must be"),
    ('[[nodes]]\nname = "a"\ntransport = "local"\nmax_jobs = true\n', r"`max_jobs` = True must be"),
    ('[[nodes]]\nname = "a"\ntransport = "local"\narch = "sparc"\n', r"`arch` = 'sparc': unknown platform"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "h"\n', r"#1 \(a\): `arch` is missing"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "-oProxyCommand=x"\narch = "riscv64"\n',
     r"`address` = '-oProxyCommand=x' must be the node's host name"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "h"\narch = "riscv64"\n',
     r"`host_key` is missing: crossyard connects only to a host whose key it knows.*ssh-keyscan -p 22 h"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "h"\narch = "riscv64"\nport = 70000\n',
     r"`port` = 70000 must be a TCP port"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "h"\narch = "riscv64"\nhost_key = "ssh-ed25519 !!"\n',
     r"`host_key` = 'ssh-ed25519 !!'…: the key is not valid base64"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "h"\narch = "riscv64"\n'
     'host_key = "h ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"\n', r"`host_key` starts with `h`: leave out the host"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "h"\narch = "riscv64"\n'
     'host_key = "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB"\n', r"the key's data is not a ssh-ed25519 key"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "h"\narch = "riscv64"\nknown_hosts = "nope"\n',
     r"`known_hosts` = 'nope': .*nope is not a file"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "h"\narch = "riscv64"\nknown_hosts = "crossyard.toml"\n'
     'workdir = "/var/tmp/../etc"\n', r"`workdir` = '/var/tmp/../etc' must be a normalized absolute directory"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "h"\narch = "riscv64"\nknown_hosts = "crossyard.toml"\n'
     'roots = "roots"\n', r"`roots` = 'roots' must be a normalized absolute directory on the node"),
    ('[[nodes]]\nname = "a"\ntransport = "ssh"\naddress = "h"\narch = "riscv64"\nknown_hosts = "crossyard.toml"\n'
     'keepalive = 0\n', r"`keepalive` = 0 must be the seconds between keepalives"),
    ('[[nodes]]\nname = "a"\ntransport = "local"\nkeepalive = 1\n', r"`keepalive` does not apply to a `local` node"),
    ('[[nodes]]\nname = "a"\ntransport = "docker"\naddress = "tcp://h:2376"\narch = "amd64"\n',
     r"`cert_path` is missing: a tcp:// engine is reached only over TLS"),
    ('[[nodes]]\nname = "a"\ntransport = "docker"\naddress = "h:2376"\narch = "amd64"\n',
     r"`address` = 'h:2376' must be the engine's URL"),
    ('[[nodes]]\nname = "a"\ntransport = "docker"\naddress = "unix:///s"\narch = "amd64"\nport = 1\n',
     r"`port` does not apply to a `docker` node: a `docker` node's address is the engine's URL"),
    ('[[nodes]]\nname = "a"\ntransport = "local"\n[[nodes]]\nname = "b"\ntransport = "local"\n',
     r"#2 \(b\): a second `local` node"),
    ('[[nodes]]\nname = "a"\ntransport = "local"\nlabels = "x"\n', r"`labels` = 'x' must be a list"),
    ('nodes = {name = "a"}\n', r"`nodes` must be an array of tables"),
    ('[[node]]\nname = "a"\n', r"unknown key `node` in crossyard.toml \(did you mean `nodes`\?\)"),
])
def test_each_bad_value_names_the_file_the_node_and_the_key(tmp_path: Path, toml: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as caught:
        settings_nodes(tmp_path, toml)
    assert str(caught.value).startswith(f"{tmp_path / 'crossyard.toml'}: ")


def test_ssh_work_dirs_and_keepalive_from_the_file_then_the_environment(tmp_path: Path) -> None:
    public, _ = host_key(tmp_path)
    toml = (f'[[nodes]]\nname = "rv1"\ntransport = "ssh"\naddress = "rv1"\narch = "riscv64"\n'
            f'host_key = "{public}"\nworkdir = "/srv/crossyard"\nroots = "/srv/roots"\nkeepalive = 4\n'
            '[[nodes]]\nname = "rv2"\ntransport = "ssh"\naddress = "rv2"\narch = "riscv64"\n'
            f'host_key = "{public}"\n[[nodes]]\nname = "ws"\ntransport = "local"\n')
    rv1, rv2, _ = settings_nodes(tmp_path, toml)
    assert (rv1.workdir, rv1.roots, rv1.keepalive) == ("/srv/crossyard", "/srv/roots", 4.0)
    assert (rv2.workdir, rv2.roots, rv2.keepalive) == ("", "", None)  # the SSH executor's defaults
    remote = ssh_node(rv2)
    assert (remote.workdir, remote.roots, remote.port) == ("/var/tmp/crossyard", "/var/cache/crossyard/roots", 22)
    assert ssh_node(rv1).host_key == " ".join(public.split()[:2])
    # CROSSYARD_SSH_KEEPALIVE sets every SSH node's for one run; a local node has none
    faster = settings_nodes(tmp_path, toml, {"CROSSYARD_SSH_KEEPALIVE": "0.5"})
    assert [n.keepalive for n in faster] == [0.5, 0.5, None]
    for bad in ("0", "soon", "-1"):
        with pytest.raises(ConfigurationError, match=rf"CROSSYARD_SSH_KEEPALIVE='{bad}' must be the seconds"):
            settings_nodes(tmp_path, toml, {"CROSSYARD_SSH_KEEPALIVE": bad})


def test_an_identity_others_can_read_is_refused_with_the_fix(tmp_path: Path) -> None:
    public, key = host_key(tmp_path)
    key.chmod(0o644)
    toml = (f'[[nodes]]\nname = "rv1"\ntransport = "ssh"\naddress = "10.0.0.7"\narch = "riscv64"\n'
            f'identity = "keys/rv1"\nhost_key = "{public}"\n')
    with pytest.raises(ConfigurationError, match=rf"#1 \(rv1\): `identity` .*mode 0644.*chmod 600 {key}"):
        settings_nodes(tmp_path, toml)
    key.chmod(0o600)
    (node,) = settings_nodes(tmp_path, toml)
    assert node.identity == key


def test_crossyard_nodes_environment_names_known_nodes(tmp_path: Path) -> None:
    toml = '[[nodes]]\nname = "ws"\ntransport = "local"\n'
    with pytest.raises(ConfigurationError, match=r"CROSSYARD_NODES='wss': no node named `wss` \(did you mean `ws`\?\)"):
        settings_nodes(tmp_path, toml, {"CROSSYARD_NODES": "wss"})
    with pytest.raises(ConfigurationError, match=r"CROSSYARD_NODES='' names no node"):
        settings_nodes(tmp_path, toml, {"CROSSYARD_NODES": ""})
    with pytest.raises(ConfigurationError, match="must be an array"):
        load_nodes("x", file=tmp_path / "c.toml", jobs=1, environ={})


def test_a_bad_inventory_is_exit_2_from_the_command_line(tmp_path: Path) -> None:
    ws = workspace(tmp_path, '[[nodes]]\nname = "rv1"\ntransport = "ssh"\naddress = "rv1"\narch = "riscv64"\n'
                             'user = "-x"\nhost_key = "ssh-ed25519 AAAA"\n')
    for argv in (["nodes"], ["nodes", "probe"], ["plan"]):
        result = run_cli("-C", str(ws), *argv)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert f"{ws / 'crossyard.toml'}: [[nodes]] #1 (rv1): `user` = '-x'" in result.stderr
    assert not (ws / ".crossyard" / "nodes.json").exists()


def test_probe_reads_this_machine_and_nodes_shows_it(tmp_path: Path) -> None:
    ws = workspace(tmp_path, '[[nodes]]\nname = "here"\ntransport = "local"\nmax_jobs = 2\nlabels = ["ws"]\n')
    listed = run_cli("-C", str(ws), "nodes", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["nodes"]
    assert (row["name"], row["state"], row["max_jobs"], row["labels"]) == ("here", None, 2, ["ws"])

    probed = run_cli("-C", str(ws), "nodes", "probe", "--json")
    assert probed.returncode == 0, probed.stderr
    (row,) = json.loads(probed.stdout)["nodes"]
    facts = row["state"]["facts"]
    assert row["state"]["status"] == "ok"
    assert facts["uname_m"] == os.uname().machine and facts["arch"] == Platform.host().oci
    assert facts["cores"] == os.cpu_count() and facts["memory"] > 0
    # toolchains as planning sees them: normalized identities, never a host or a definition name
    require_tool("go", "apt-get install golang-go")
    go = [t for t in facts["toolchains"] if t["kind"] == "go" and t["platform"] == "linux/riscv64"]
    assert go and all(t["identity"].startswith("go1.") and " " not in t["identity"] for t in go)

    kept = read_states(state_path(Workspace(root=ws)))["here"]
    assert isinstance(kept, NodeState) and kept.facts is not None and kept.facts.uname_m == os.uname().machine
    shown = run_cli("-C", str(ws), "nodes")
    assert shown.returncode == 0 and "here" in shown.stdout and os.uname().machine in shown.stdout


def test_a_node_declared_another_arch_is_refused_exit_2(tmp_path: Path) -> None:
    ws = workspace(tmp_path, f'[[nodes]]\nname = "board"\ntransport = "local"\narch = "{FOREIGN.oci}"\n')
    result = run_cli("-C", str(ws), "nodes", "probe")
    assert result.returncode == 2, result.stderr
    assert (f"node `board` (this machine) is declared {FOREIGN.oci} but probes as {os.uname().machine} "
            f"({Platform.host().oci})") in result.stderr
    assert "Traceback" not in result.stderr
    assert read_states(state_path(Workspace(root=ws)))["board"].status == "refused"


def test_an_engine_that_does_not_answer_is_unreachable_exit_1(tmp_path: Path) -> None:
    ws = workspace(tmp_path, f'[[nodes]]\nname = "gone"\ntransport = "docker"\n'
                             f'address = "unix://{tmp_path}/no-engine.sock"\narch = "amd64"\n')
    result = run_cli("-C", str(ws), "nodes", "probe", "gone")
    assert result.returncode == 1, result.stderr
    assert f"gone: the Docker engine at unix://{tmp_path}/no-engine.sock does not answer" in result.stderr
    assert read_states(state_path(Workspace(root=ws)))["gone"].status == "unreachable"
    unknown = run_cli("-C", str(ws), "nodes", "probe", "gon")
    assert unknown.returncode == 2 and "no node named `gon` (did you mean `gone`?)" in unknown.stderr


@pytest.mark.integration
def test_a_docker_node_over_tls_is_probed_through_the_engine(tmp_path: Path, docker_engine: DockerdHandle) -> None:
    toml = (f'[[nodes]]\nname = "engine"\ntransport = "docker"\naddress = "{docker_engine.tls_host}"\n'
            f'cert_path = "{docker_engine.cert_path}"\narch = "ARCH"\n')
    ws = workspace(tmp_path, toml.replace("ARCH", Platform.host().oci))
    result = run_cli("-C", str(ws), "nodes", "probe", "--json", env={"DOCKER_HOST": "unix:///nonexistent"})
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["nodes"]
    facts = row["state"]["facts"]
    version = docker_engine.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    assert facts["docker"] == f"docker {version} ({Platform.host().oci})"
    assert facts["uname_m"] == os.uname().machine and facts["cores"] == os.cpu_count()

    workspace(tmp_path, toml.replace("ARCH", FOREIGN.oci))
    refused = run_cli("-C", str(ws), "nodes", "probe")
    assert refused.returncode == 2, refused.stderr
    assert (f"node `engine` ({docker_engine.tls_host}) is declared {FOREIGN.oci} but probes as "
            f"{os.uname().machine}") in refused.stderr


def test_a_root_on_a_docker_engine_is_probed_from_its_own_slash() -> None:
    """In a container of a root's image the root is /: the commands that read a toolchain run as
    they are and a path under the root is seen from /. Over SSH the same definition runs under
    bubblewrap in the node's roots directory."""
    rust = next(d for d in load_definitions(None) if d.name == "rust-trixie")
    lib = f"usr/lib/rustlib/{RISCV64.rust_triple}/lib"

    def targets(in_container: bool) -> dict[Platform, Any]:
        found = remote_targets([rust], AMD64, roots="/r", prepared=["rust-trixie"], in_container=in_container)
        return {t.platform: t for t in found}

    there, over_ssh = targets(True), targets(False)
    assert (there[RISCV64].strategy, there[AMD64].strategy) == ("cross", "native")
    assert there[RISCV64].version == (("rustc", "--version"), ("cargo", "--version"))
    assert ("test", "-e", f"/{lib}") in there[RISCV64].checks
    assert ("sh", "-c", 'command -v "$1"', "sh", "riscv64-linux-gnu-gcc") in there[RISCV64].checks
    assert not [argv for t in there.values() for argv in (*t.version, *t.checks) if "bwrap" in argv]
    assert over_ssh[RISCV64].version[0][:3] == ("bwrap", "--ro-bind", "/r/rust-trixie")
    assert ("test", "-e", f"/r/rust-trixie/{lib}") in over_ssh[RISCV64].checks
    assert remote_targets([rust], AMD64, roots="/r", prepared=[], in_container=True) == []


def test_a_build_leaves_an_unreachable_node_out_with_a_warning(tmp_path: Path) -> None:
    require_tool("gcc", "apt-get install gcc")
    host = Platform.host()
    ws = workspace(tmp_path / "ws", f'[[nodes]]\nname = "here"\ntransport = "local"\nmax_jobs = 1\n\n'
                                    f'[[nodes]]\nname = "gone"\ntransport = "docker"\n'
                                    f'address = "unix://{tmp_path}/no-engine.sock"\narch = "{FOREIGN.oci}"\n')
    (ws / "src").mkdir()
    (ws / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (ws / "recipes" / "app.toml").write_text(
        f'name = "app"\nkind = "c"\nplatforms = ["{host.oci}"]\n[source]\npath = "../src"\n[c]\nsources = ["main.c"]\n')
    result = run_cli("-C", str(ws), "build", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    (warning,) = summary["node_warnings"]
    assert warning.startswith(f"node gone left out of this run: gone: the Docker engine at unix://{tmp_path}")
    assert "warning: node gone left out of this run" in result.stderr
    (job,) = summary["jobs"]
    assert (job["status"], job["attempts"]) == ("built", 1) and job["node"].startswith("local:")
    durations = json.loads((ws / ".crossyard" / "durations.json").read_text())["entries"]
    assert list(durations) == [f"app|{host.oci}|native|local/{host.architecture}"]


def test_buildkit_nodes_and_buildkit_host(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("PEM")
    tls = 'ca = "ca.pem"\ncert = "cert.pem"\nkey = "key.pem"\n'
    head = '[[nodes]]\nname = "bk"\ntransport = "buildkit"\narch = "linux/riscv64"\n'
    [node] = settings_nodes(tmp_path, head + f'address = "tcp://rv1.lab:1234"\n{tls}', {})
    assert node.tls is not None and node.tls.key == tmp_path / "key.pem"
    assert node.endpoint().where == "node `bk`"
    for body, message in [
        ('address = "tcp://rv1.lab:1234"\n', r"`ca` is missing: crossyard reaches buildkitd over TCP only with mutual TLS"),
        (f'address = "unix:///run/bk.sock"\n{tls}', r"`ca` applies to a tcp:// address only"),
        ('address = "rv1.lab:1234"\n', r"`address` = 'rv1.lab:1234' must be buildkitd's address"),
        (f'address = "tcp://rv1.lab:1234"\n{tls.replace("key.pem", "nokey.pem")}', r"`key` = 'nokey.pem': .* is not a file"),
        ('address = "unix:///run/bk.sock"\ncert_path = "x"\n', r"`cert_path` does not apply to a `buildkit` node"),
    ]:
        with pytest.raises(ConfigurationError, match=r"\[\[nodes\]\] #1 \(bk\): " + message):
            settings_nodes(tmp_path, head + body, {})
    # BUILDKIT_HOST: an implicit node beside this machine, unless a declared one has that address.
    local, host = settings_nodes(tmp_path, "", {"BUILDKIT_HOST": "unix:///run/buildkit/buildkitd.sock"})
    assert local.transport == "local" and (host.name, host.transport, host.implicit) == ("buildkit-host", "buildkit", True)
    assert host.endpoint().where == "BUILDKIT_HOST"
    declared = head + 'address = "unix:///run/buildkit/buildkitd.sock"\n'
    assert [n.name for n in settings_nodes(tmp_path, declared, {"BUILDKIT_HOST": "unix:///run/buildkit/buildkitd.sock"})] == ["bk"]
    assert len(settings_nodes(tmp_path, "", {"BUILDKIT_HOST": ""})) == 1
    with pytest.raises(ConfigurationError, match=r"BUILDKIT_HOST=tcp://h:1: tcp://h:1: .*mutual TLS"):
        settings_nodes(tmp_path, "", {"BUILDKIT_HOST": "tcp://h:1"})
