"""A FUSE file system that never answers, mounted over a directory: what
an NFS home or a FUSE mount whose server hangs looks like to a process
that touches it. It answers the kernel's INIT (so that requests come),
prints "mounted", then prints "request OPCODE" for the first request and
answers nothing more: the process that made it waits until this one is
killed (the connection then aborts) and the mount is detached.

Usage: hung_fuse.py DIR (as root, with /dev/fuse); hung_fuse.py FILE file
mounts over a regular file instead (its root a file), so that only that
file hangs, not the directory that holds it."""

import ctypes
import os
import struct
import sys

FUSE_INIT = 26

target = sys.argv[1]
# The root's type must be the mount point's: a directory, or a file.
rootmode = "100000" if sys.argv[2:] == ["file"] else "40000"
fd = os.open("/dev/fuse", os.O_RDWR)
libc = ctypes.CDLL("libc.so.6", use_errno=True)
options = f"fd={fd},rootmode={rootmode},user_id=0,group_id=0".encode()
if libc.mount(b"hung", target.encode(), b"fuse", 6, options) != 0:  # nosuid, nodev
    print("mount failed:", os.strerror(ctypes.get_errno()), flush=True)
    sys.exit(1)

# fuse_in_header: len, opcode, unique, nodeid, uid, gid, pid, extlen, pad.
request = os.read(fd, 1 << 20)
_, opcode, unique = struct.unpack_from("<IIQ", request)
assert opcode == FUSE_INIT, opcode
# fuse_init_out as of protocol 7.22 (the kernel takes an older, shorter
# one): major, minor, max_readahead, flags, max_background,
# congestion_threshold, max_write.
init = struct.pack("<IIIIHHI", 7, 22, 0, 0, 0, 0, 4096)
os.write(fd, struct.pack("<IiQ", 16 + len(init), 0, unique) + init)
print("mounted", flush=True)

request = os.read(fd, 1 << 20)
print("request", struct.unpack_from("<II", request)[1], flush=True)
# Never answered: killed by the test.
while True:
    os.read(fd, 1 << 20)
