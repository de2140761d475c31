#!/usr/bin/env python3
"""Differential build check: every case folder is built with berth and with
BuildKit (a dockerd's), from the same imported base tarball, and the two
images are compared: outcome, config fields, layer count, history entries and
the flattened filesystem (path, type, mode, owner, size, link target, content
hash). Differences known to come from the peer's age (docker 20.10's BuildKit
against today's) are listed in peer-age.tsv and reported apart.

    diff.py --berth BIN --docker BIN [--only NAME]... CASES_DIR...

DOCKER_HOST must point at the peer dockerd; the busybox base must be imported
into both already (diff.sh does all of that). Exit code 1 when a difference
is berth's.
"""

import argparse
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

CONFIG_FIELDS = [
    "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir",
    "Labels", "StopSignal", "Healthcheck", "Shell", "OnBuild", "ArgsEscaped",
]
TOP_FIELDS = ["author", "os", "architecture", "variant"]


def load_archive(path):
    """The config and the layer tars of the one image in a docker-archive."""
    with tarfile.open(path) as t:
        manifest = json.load(t.extractfile("manifest.json"))[0]
        config = json.load(t.extractfile(manifest["Config"]))
        layers = [t.extractfile(p).read() for p in manifest["Layers"]]
    return config, layers


def flatten(layers):
    """The filesystem the layers stack to: path -> (type, mode, uid, gid,
    size, link, sha256)."""
    fs = {}
    for blob in layers:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as t:
            members = t.getmembers()
            # Opaque markers and whiteouts apply to the layers below only.
            for m in members:
                name = norm(m.name)
                base = os.path.basename(name)
                parent = os.path.dirname(name)
                if base == ".wh..wh..opq":
                    for p in [p for p in fs if p.startswith(parent + "/") or (parent == "" and p)]:
                        del fs[p]
                elif base.startswith(".wh."):
                    gone = os.path.join(parent, base[4:])
                    for p in [p for p in fs if p == gone or p.startswith(gone + "/")]:
                        del fs[p]
            for m in members:
                name = norm(m.name)
                base = os.path.basename(name)
                if base.startswith(".wh.") or name == "":
                    continue
                if m.isdir():
                    entry = ("dir", m.mode & 0o7777, m.uid, m.gid, 0, "", "")
                elif m.issym():
                    entry = ("symlink", 0, m.uid, m.gid, 0, m.linkname, "")
                elif m.islnk():
                    # A hard link is its target's inode, and unpacking applies
                    # the link's header to it (owner; mode too unless it is a
                    # symlink), as docker's archive does.
                    inode = fs.get(norm(m.linkname))
                    if inode is None:
                        entry = ("hardlink", 0, m.uid, m.gid, 0, m.linkname, "?")
                    else:
                        mode = inode[1] if inode[0] == "symlink" else m.mode & 0o7777
                        entry = (inode[0], mode, m.uid, m.gid, inode[4], inode[5], inode[6])
                        fs[norm(m.linkname)] = entry
                elif m.isfile():
                    data = t.extractfile(m).read()
                    entry = ("file", m.mode & 0o7777, m.uid, m.gid, len(data), "",
                             hashlib.sha256(data).hexdigest()[:16])
                else:
                    kind = {tarfile.CHRTYPE: "char", tarfile.BLKTYPE: "block",
                            tarfile.FIFOTYPE: "fifo"}.get(m.type, str(m.type))
                    entry = (kind, m.mode & 0o7777, m.uid, m.gid, 0,
                             f"{m.devmajor},{m.devminor}", "")
                # A directory replacing a directory keeps what is under it.
                if entry[0] != "dir" or fs.get(name, ("",))[0] != "dir":
                    for p in [p for p in fs if p.startswith(name + "/")]:
                        del fs[p]
                fs[name] = entry
    return fs


def norm(name):
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    if name == ".":
        return ""
    return name.rstrip("/")


def show_entry(e):
    kind, mode, uid, gid, size, link, digest = e
    s = f"{kind} {mode:04o} {uid}:{gid}"
    if kind == "file":
        s += f" {size}B {digest}"
    if link:
        s += f" -> {link}"
    return s


class Case:
    def __init__(self, src, work):
        self.name = os.path.basename(src.rstrip("/"))
        self.src = src
        with open(os.path.join(src, "case.json")) as f:
            self.case = json.load(f)
        self.ctx = os.path.join(work, self.name)

    def prepare(self):
        shutil.copytree(self.src, self.ctx, symlinks=True)
        setup = self.case.get("setup")
        if setup:
            subprocess.run(["sh", "-c", setup], cwd=self.ctx, check=True)

    def args(self, key):
        return [a.replace("{CTX}", self.ctx) for a in self.case.get(key, [])]


class Tool:
    def __init__(self, name, argv, build_extra, env):
        self.name, self.argv, self.build_extra, self.env = name, argv, build_extra, env

    def run(self, args, **kw):
        return subprocess.run(self.argv + args, env=self.env, capture_output=True, **kw)

    def build(self, case, tag):
        for before in case.case.get("before", []):
            before = [a.replace("{CTX}", case.ctx) for a in before]
            if before and before[0] == "build":
                before = before[:1] + self.build_extra + before[1:]
            self.run(before)
        args = ["build", "--progress=plain"] + self.build_extra + ["-t", tag]
        args += case.args("build") + [case.ctx]
        return self.run(args)

    def image(self, tag, work):
        out = os.path.join(work, f"{self.name}.tar")
        r = self.run(["save", "-o", out, tag])
        if r.returncode != 0:
            raise RuntimeError(f"{self.name} save {tag}: {r.stderr.decode(errors='replace')}")
        try:
            return load_archive(out)
        finally:
            os.remove(out)


def base_prefix(config, base):
    """How many layers and history entries of `config` are the base's."""
    ids = config.get("rootfs", {}).get("diff_ids", [])
    bids = base.get("rootfs", {}).get("diff_ids", [])
    if bids and ids[: len(bids)] == bids:
        return len(bids), len(base.get("history", []))
    return 0, 0


def compare(case, berth_img, peer_img, bases):
    diffs = []
    (bc, bl), (pc, pl) = berth_img, peer_img
    bcfg, pcfg = bc.get("config") or {}, pc.get("config") or {}
    for k in CONFIG_FIELDS:
        if bcfg.get(k) != pcfg.get(k):
            diffs.append(f"config {k}: berth {json.dumps(bcfg.get(k))} buildkit {json.dumps(pcfg.get(k))}")
    for k in TOP_FIELDS:
        if bc.get(k) != pc.get(k):
            diffs.append(f"{k}: berth {json.dumps(bc.get(k))} buildkit {json.dumps(pc.get(k))}")
    # The base the image starts from (the same tarball imported by each).
    bn, bh, pn, ph = 0, 0, 0, 0
    for ours, theirs in bases:
        n, h = base_prefix(bc, ours)
        if n:
            bn, bh = n, h
            pn, ph = base_prefix(pc, theirs)
            break
    if len(bl) - bn != len(pl) - pn:
        diffs.append(f"layers: berth {len(bl) - bn} buildkit {len(pl) - pn} (above the base)")
    bhist = [(h.get("created_by", ""), bool(h.get("empty_layer", False)))
             for h in bc.get("history", [])[bh:]]
    phist = [(h.get("created_by", ""), bool(h.get("empty_layer", False)))
             for h in pc.get("history", [])[ph:]]
    for i in range(max(len(bhist), len(phist))):
        b = bhist[i] if i < len(bhist) else None
        p = phist[i] if i < len(phist) else None
        if b != p:
            fmt = lambda e: "(none)" if e is None else json.dumps(e[0]) + (" empty_layer" if e[1] else "")
            diffs.append(f"history[{i}]: berth {fmt(b)} buildkit {fmt(p)}")
    bfs, pfs = flatten(bl), flatten(pl)
    # Paths a case names as made anew by every run (logs with times, caches):
    # they differ between two runs of one tool too.
    ignore = case.case.get("ignore", [])
    for path in sorted(set(bfs) | set(pfs)):
        if any(fnmatch.fnmatch(path, pat) for pat in ignore):
            continue
        b, p = bfs.get(path), pfs.get(path)
        if b != p:
            diffs.append(f"file /{path}: berth {show_entry(b) if b else '(none)'}"
                         f" buildkit {show_entry(p) if p else '(none)'}")
    return diffs


def load_known(path):
    known = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    case, pattern, why = line.rstrip("\n").split("\t", 2)
                    known.append((re.compile(case), re.compile(pattern), why))
    return known


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--berth", required=True)
    ap.add_argument("--berth-root", required=True)
    ap.add_argument("--docker", required=True)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--base", action="append", default=[],
                    help="a base image both tools have (busybox:latest by default)")
    ap.add_argument("--known", default=os.path.join(os.path.dirname(__file__), "peer-age.tsv"))
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    a.base = a.base or ["busybox:latest"]

    env = dict(os.environ, DOCKER_BUILDKIT="1")
    berth = Tool("berth", [a.berth, "--root", a.berth_root], [], env)
    # The peer dockerd has no bridge (it must not touch the machine's
    # iptables), so its RUN steps use the host's network, as berth's do.
    peer = Tool("buildkit", [a.docker], ["--network", "host"], env)
    known = load_known(a.known)
    work = tempfile.mkdtemp(prefix="berth-diff-")
    bases = [(berth.image(b, work)[0], peer.image(b, work)[0]) for b in a.base]

    names = []
    for d in a.dirs:
        for n in sorted(os.listdir(d)):
            p = os.path.join(d, n)
            if os.path.isfile(os.path.join(p, "case.json")) and (not a.only or n in a.only):
                names.append(p)
    counts = {"identical": 0, "berth": 0, "peer-age": 0}
    for src in names:
        case = Case(src, work)
        try:
            case.prepare()
        except (subprocess.CalledProcessError, OSError) as e:
            counts["berth"] += 1
            print(f"== {case.name}: the case could not be prepared: {e}")
            continue
        tag = f"berth-diff-{case.name}:latest"
        rb, rp = berth.build(case, tag), peer.build(case, tag)
        diffs = []
        if (rb.returncode == 0) != (rp.returncode == 0):
            diffs.append(f"outcome: berth {'built' if rb.returncode == 0 else 'failed'}, "
                         f"buildkit {'built' if rp.returncode == 0 else 'failed'}")
            for tool, r in (("berth", rb), ("buildkit", rp)):
                if r.returncode != 0:
                    tail = r.stderr.decode(errors="replace").strip().splitlines()[-6:]
                    diffs.extend(f"  {tool}: {l}" for l in tail)
        elif rb.returncode == 0:
            diffs = compare(case, berth.image(tag, work), peer.image(tag, work), bases)
        elif "fails" not in case.case:
            # A case that is not meant to fail compares nothing when both
            # tools fail: the case itself is broken.
            diffs.append("outcome: both failed, and the case is not marked \"fails\"")
            for tool, r in (("berth", rb), ("buildkit", rp)):
                tail = r.stderr.decode(errors="replace").strip().splitlines()[-4:]
                diffs.extend(f"  {tool}: {l}" for l in tail)
        ours, age = [], []
        for d in diffs:
            why = next((w for c, p, w in known if c.fullmatch(case.name) and p.search(d)), None)
            (age if why else ours).append((d, why))
        if ours:
            counts["berth"] += 1
        elif age:
            counts["peer-age"] += 1
        else:
            counts["identical"] += 1
        status = "identical" if not diffs else (f"{len(ours)} difference(s)" if ours else "peer's age only")
        print(f"== {case.name}: {status}")
        for d, _ in ours:
            print(f"  {d}")
        for d, why in age:
            print(f"  [peer's age: {why}] {d}")
        sys.stdout.flush()
        berth.run(["rmi", "-f", tag])
        peer.run(["rmi", "-f", tag])
    shutil.rmtree(work, ignore_errors=True)
    print(f"cases: {len(names)}; identical {counts['identical']}, "
          f"differing only by the peer's age {counts['peer-age']}, berth differences {counts['berth']}")
    return 1 if counts["berth"] else 0


if __name__ == "__main__":
    sys.exit(main())
