import io, tarfile

def add(t, name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.uid, ti.gid, ti.mtime = kind, mode, uid, gid, 0
    ti.linkname = link
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)

with tarfile.open("crafted.tar", "w", format=tarfile.PAX_FORMAT) as t:
    add(t, "a/b/c/file", data=b"deep", mode=0o4755, uid=1000, gid=1000)
    add(t, "a/hl", tarfile.LNKTYPE, link="a/b/c/file")
    add(t, "./dot/x", data=b"dot")
    add(t, "late/f", data=b"late")
    add(t, "late", tarfile.DIRTYPE, mode=0o700, uid=5, gid=6)
    add(t, "/abs/f", data=b"abs")
    add(t, "s", tarfile.SYMTYPE, link="a/b")
    add(t, "dup", data=b"first")
    add(t, "dup", data=b"second-wins")
    add(t, "fifo", tarfile.FIFOTYPE, mode=0o600)
    add(t, "long/" + "n" * 120 + "/" + "m" * 60, data=b"long")
    add(t, "hl-other-dir/h", tarfile.LNKTYPE, link="dot/x")
    add(t, "emptydir", tarfile.DIRTYPE, mode=0o1777)
