"""docker-py against `berth system service` (DOCKER_HOST is its socket).

Run by cli/tests/api_clients.rs with PyPI's docker 7.x and with Debian's
python3-docker 5.0.3; the store holds a `busybox` image. Each check is a
plain assert: the script's exit status is the verdict.
"""

import io
import sys
import tarfile
import time

import docker
from docker import errors

client = docker.from_env(timeout=120)


def gone(what, get):
    """`get()` must raise docker-py's NotFound: `what` is no more."""
    try:
        get()
    except errors.NotFound:
        return
    raise AssertionError(f"{what} was found")


api = client.api
print("docker-py", docker.__version__, "against", client.version()["Version"], file=sys.stderr)

assert client.ping()
info = client.info()
assert info["OSType"] == "linux", info

# Images: get, tag, list, build, remove; a missing one is ImageNotFound.
bb = client.images.get("busybox")
assert bb.id.startswith("sha256:"), bb.id
assert bb.tag("pytest/bb", "one")
assert "pytest/bb:one" in client.images.get("pytest/bb:one").tags
assert any("pytest/bb:one" in i.tags for i in client.images.list())
try:
    client.images.get("no-such-image:here")
    raise AssertionError("a missing image was found")
except errors.ImageNotFound:
    pass

dockerfile = b"FROM busybox\nARG GREETING=hi\nRUN echo \"$GREETING from a build\" > /greeting\nCMD [\"cat\", \"/greeting\"]\n"
context = io.BytesIO()
with tarfile.open(fileobj=context, mode="w:gz") as t:
    info_ = tarfile.TarInfo("Dockerfile")
    info_.size = len(dockerfile)
    t.addfile(info_, io.BytesIO(dockerfile))
context.seek(0)
image, logs = client.images.build(
    fileobj=context,
    custom_context=True,
    encoding="gzip",
    tag="pytest/built:latest",
    buildargs={"GREETING": "hello"},
    labels={"made.by": "docker-py"},
    rm=True,
)
lines = "".join(chunk.get("stream", "") for chunk in logs)
assert "Successfully built" in lines, lines
assert image.labels.get("made.by") == "docker-py", image.labels
out = client.containers.run("pytest/built", remove=True, network_mode="none")
assert out == b"hello from a build\n", out

bad = io.BytesIO()
with tarfile.open(fileobj=bad, mode="w") as t:
    text = b"FROM busybox\nRUN exit 5\n"
    ti = tarfile.TarInfo("Dockerfile")
    ti.size = len(text)
    t.addfile(ti, io.BytesIO(text))
bad.seek(0)
try:
    client.images.build(fileobj=bad, custom_context=True)
    raise AssertionError("a failing build succeeded")
except errors.BuildError as e:
    assert "exit code: 5" in str(e), str(e)

# Containers: run detached, list with filters, logs, wait, exec, archive.
c = client.containers.run(
    "busybox",
    ["sh", "-c", "echo started; echo oops >&2; mkdir /box; echo inside > /box/f; sleep 300"],
    detach=True,
    name="pyworker",
    labels={"suite": "docker-py"},
    environment={"MODE": "test"},
    network_mode="none",
)
deadline = time.time() + 20
while b"started" not in c.logs():
    assert time.time() < deadline, "no output"
    time.sleep(0.1)
c.reload()
assert c.status == "running", c.status
assert c.name == "pyworker"
assert c.labels["suite"] == "docker-py"
assert [x.id for x in client.containers.list(filters={"label": "suite=docker-py"})] == [c.id]
assert client.containers.list(filters={"label": "suite=other"}) == []
assert c.logs(stdout=True, stderr=False) == b"started\n"
assert c.logs(stdout=False, stderr=True) == b"oops\n"

code, output = c.exec_run(["sh", "-c", "echo $MODE; exit 3"])
assert (code, output) == (3, b"test\n"), (code, output)
code, (so, se) = c.exec_run(["sh", "-c", "echo a; echo b >&2"], demux=True)
assert (code, so, se) == (0, b"a\n", b"b\n"), (code, so, se)
streamed = b"".join(c.exec_run(["sh", "-c", "echo x; echo y"], stream=True).output)
assert streamed == b"x\ny\n", streamed

bits, stat = c.get_archive("/box/f")
assert stat["name"] == "f" and stat["size"] == 7, stat
tarred = io.BytesIO(b"".join(bits))
with tarfile.open(fileobj=tarred) as t:
    assert t.extractfile("f").read() == b"inside\n"
upload = io.BytesIO()
with tarfile.open(fileobj=upload, mode="w") as t:
    ti = tarfile.TarInfo("put.txt")
    ti.size = 4
    t.addfile(ti, io.BytesIO(b"put\n"))
assert c.put_archive("/box", upload.getvalue())
assert c.exec_run(["cat", "/box/put.txt"]).output == b"put\n"
gone("a missing path", lambda: c.get_archive("/no/such/path"))

stats = c.stats(stream=False)
assert stats["pids_stats"]["current"] >= 1, stats
assert stats["memory_stats"]["usage"] > 0, stats
top = c.top()
assert any("sleep" in " ".join(p) for p in top["Processes"]), top

try:
    client.containers.create("busybox", name="pyworker")
    raise AssertionError("a second pyworker was made")
except errors.APIError as e:
    assert e.status_code == 409, e

c.stop(timeout=0)
assert c.wait()["StatusCode"] == 137
c.remove()
gone("a removed container", lambda: client.containers.get("pyworker"))

# auto_remove with detach: create, then a plain start (no attach first).
fleeting = client.containers.run("busybox", "true", auto_remove=True, detach=True, network_mode="none")
try:
    fleeting.wait(condition="removed")
except errors.NotFound:
    pass
assert not any(x.id == fleeting.id for x in client.containers.list(all=True))

# A followed log ends when the container does.
f = client.containers.run(
    "busybox", ["sh", "-c", "echo one; sleep 1; echo two"], detach=True, network_mode="none"
)
assert b"".join(f.logs(stream=True, follow=True)) == b"one\ntwo\n"
assert f.wait()["StatusCode"] == 0
f.remove()

# Events between two times, decoded.
since = int(time.time()) - 1
e = client.containers.run("busybox", "true", name="pyevents", detach=True, network_mode="none")
e.wait()
e.remove()
until = int(time.time()) + 1
seen = [
    ev["status"]
    for ev in client.events(since=since, until=until, decode=True, filters={"container": "pyevents"})
]
for want in ("create", "start", "die", "destroy"):
    assert want in seen, (want, seen)

# Networks and volumes.
net = client.networks.create("pynet", labels={"suite": "docker-py"})
assert client.networks.get("pynet").id == net.id
assert [n.name for n in client.networks.list(names=["pynet"])] == ["pynet"]
vol = client.volumes.create("pyvol", labels={"suite": "docker-py"})
assert client.volumes.get("pyvol").name == "pyvol"
w = client.containers.run(
    "busybox",
    ["sh", "-c", "echo kept > /v/f"],
    volumes={"pyvol": {"bind": "/v", "mode": "rw"}},
    network_mode="none",
    remove=True,
)
r = client.containers.run(
    "busybox", ["cat", "/v/f"], volumes=["pyvol:/v:ro"], network_mode="none", remove=True
)
assert r == b"kept\n", r
net.remove()
vol.remove()
gone("a removed network", lambda: client.networks.get("pynet"))

client.images.remove("pytest/bb:one")
client.images.remove("pytest/built:latest")
print("docker-py: every check passed", file=sys.stderr)
