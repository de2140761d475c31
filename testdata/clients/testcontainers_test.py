"""testcontainers-python against `berth system service` (DOCKER_HOST is
its socket): a DockerContainer waited on by its logs, and the generic
flow of an image built from a folder, served on a published port and
waited on over HTTP. Ryuk (Docker Hub's reaper image) is off: the
containers go when their `with` blocks end.

Run by cli/tests/api_clients.rs; the store holds a `busybox` image.
"""

import os
import sys
import warnings

import httpx
from testcontainers.community.generic import ServerContainer
from testcontainers.core.container import DockerContainer
from testcontainers.core.image import DockerImage
from testcontainers.core.waiting_utils import wait_for_logs

# wait_for_logs is what the issue names; 4.x marks it as deprecated.
warnings.filterwarnings("ignore", category=DeprecationWarning)

here = os.path.dirname(os.path.abspath(__file__))

with DockerContainer("busybox").with_command(
    ["sh", "-c", "echo booting; sleep 1; echo ready to serve; sleep 300"]
).with_env("ROLE", "worker") as c:
    delay = wait_for_logs(c, "ready to serve", timeout=30)
    assert delay >= 0.5, delay
    code, out = c.exec(["sh", "-c", "echo $ROLE"])
    assert (code, out) == (0, b"worker\n"), (code, out)
    stdout, _ = c.get_logs()
    assert stdout == b"booting\nready to serve\n", stdout
    name = c.get_wrapped_container().name

with DockerImage(path=os.path.join(here, "httpd"), tag="tc-httpd:latest") as image:
    with ServerContainer(port=8080, image=image) as srv:
        url = srv._create_connection_url()
        r = httpx.get(f"{url}/hello.txt", timeout=10)
        assert r.status_code == 200, r.status_code
        assert r.text == "served by berth\n", r.text
        assert httpx.get(f"{url}/missing", timeout=10).status_code == 404

import docker

left = [c.name for c in docker.from_env().containers.list(all=True)]
assert name not in left, left
print("testcontainers: every check passed", file=sys.stderr)
