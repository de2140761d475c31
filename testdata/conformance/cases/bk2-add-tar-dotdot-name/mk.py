import io, tarfile

with tarfile.open("dotdot.tar", "w") as t:
    for name, data in (("x/../y", b"cleaned"), ("a/./b/../c", b"inner-dots"), ("plain", b"plain")):
        ti = tarfile.TarInfo(name)
        ti.size, ti.mtime = len(data), 0
        t.addfile(ti, io.BytesIO(data))
