#!/usr/bin/env python3
"""Mounts the simulated kernel's sysfs with FUSE and forwards every operation
to the model server (a node process this adapter starts; one JSON line per
request and per answer on its stdin/stdout). The server owns the tree; this
file only translates between FUSE and the server, the way sysfs behaves:

- one write() call is one store; O_TRUNC and truncate() are accepted and ignored
  (shells open attributes with O_TRUNC);
- an attribute's text is fetched once per open file, at the first read, and
  reads at an offset slice it (sysfs's seq_file does the same);
- attributes report 4096 bytes, as sysfs does; direct_io makes reads return
  the real length, so cat stops at the end of the text;
- nothing is cached by the kernel (timeouts 0): mdevs come and go.

Usage: adapter.py MOUNTPOINT TOKEN -- SERVER-COMMAND...
MOUNTPOINT must be an empty directory that is not a mount point, beside a
file `owner` holding TOKEN: the helper that made the directory proves so.
"""

import ctypes
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time

try:
    import fusepy as fuse  # Debian's python3-fusepy
except ImportError:
    import fuse  # fusepy from PyPI

PR_SET_PDEATHSIG = 1
ATTR_SIZE = 4096


class Server:
    """The model server's pipe. The FUSE loop is single-threaded, so requests never overlap."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, **request):
        self.proc.stdin.write((json.dumps(request) + '\n').encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise fuse.FuseOSError(errno.EIO)
        answer = json.loads(line)
        if 'errno' in answer:
            raise fuse.FuseOSError(getattr(errno, answer['errno'], errno.EIO))
        return answer

    def stop(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()


class SimSysfs(fuse.Operations):
    use_ns = True

    def __init__(self, server):
        self.server = server
        self.started = time.time_ns()
        self.buffers = {}
        self.next_fh = 1

    def init(self, path):
        # The mount is up: tell the helper, which waits for this line.
        print(f'ready {self.server.proc.pid}', flush=True)

    def node(self, path):
        return self.server.ask(op='stat', path=path)['node']

    def getattr(self, path, fh=None):
        node = self.node(path)
        times = dict(st_atime=self.started, st_mtime=self.started, st_ctime=self.started, st_uid=0, st_gid=0)
        if node['kind'] == 'dir':
            return dict(times, st_mode=stat.S_IFDIR | 0o755, st_nlink=2, st_size=0)
        if node['kind'] == 'link':
            return dict(times, st_mode=stat.S_IFLNK | 0o777, st_nlink=1, st_size=len(node['target']))
        mode = (0o444 if node['readable'] else 0) | (0o200 if node['writable'] else 0)
        return dict(times, st_mode=stat.S_IFREG | mode, st_nlink=1, st_size=ATTR_SIZE)

    def readdir(self, path, fh):
        return ['.', '..'] + self.server.ask(op='list', path=path)['entries']

    def readlink(self, path):
        node = self.node(path)
        if node['kind'] != 'link':
            raise fuse.FuseOSError(errno.EINVAL)
        return node['target']

    def open(self, path, flags):
        # kernfs refuses to open an attribute for what it cannot do, even for root.
        node = self.node(path)
        if node['kind'] != 'attr':
            raise fuse.FuseOSError(errno.EISDIR if node['kind'] == 'dir' else errno.ELOOP)
        access = flags & os.O_ACCMODE
        if access in (os.O_RDONLY, os.O_RDWR) and not node['readable']:
            raise fuse.FuseOSError(errno.EACCES)
        if access in (os.O_WRONLY, os.O_RDWR) and not node['writable']:
            raise fuse.FuseOSError(errno.EACCES)
        fh = self.next_fh
        self.next_fh += 1
        return fh

    def read(self, path, size, offset, fh):
        if fh not in self.buffers:
            self.buffers[fh] = self.server.ask(op='read', path=path)['data'].encode()
        return self.buffers[fh][offset:offset + size]

    def write(self, path, data, offset, fh):
        # The offset means nothing to a sysfs attribute: each write() is one store.
        self.server.ask(op='write', path=path, data=data.decode('utf-8', errors='replace'))
        return len(data)

    def truncate(self, path, length, fh=None):
        return 0

    def release(self, path, fh):
        self.buffers.pop(fh, None)
        return 0

    def chmod(self, path, mode):
        raise fuse.FuseOSError(errno.EPERM)

    def chown(self, path, uid, gid):
        raise fuse.FuseOSError(errno.EPERM)


def checked_mountpoint(mountpoint, token):
    """Refuses any directory but the fresh one the helper made for this mount."""
    mountpoint = os.path.realpath(mountpoint)
    owner = os.path.join(os.path.dirname(mountpoint), 'owner')
    try:
        with open(owner) as f:
            proven = f.read() == token
    except OSError:
        proven = False
    if not proven:
        sys.exit(f'refusing to mount on {mountpoint}: its parent has no owner file with this token')
    if not os.path.isdir(mountpoint) or os.listdir(mountpoint) or os.path.ismount(mountpoint):
        sys.exit(f'refusing to mount on {mountpoint}: not an empty directory that is not a mount point')
    return mountpoint


def main():
    if len(sys.argv) < 5 or sys.argv[3] != '--':
        sys.exit(__doc__)
    # When the test runner goes, the mount goes: libfuse unmounts on SIGTERM.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    mountpoint = checked_mountpoint(sys.argv[1], sys.argv[2])
    server = Server(sys.argv[4:])
    try:
        fuse.FUSE(
            SimSysfs(server),
            mountpoint,
            foreground=True,
            nothreads=True,
            # Every root process sees it, also in other mount namespaces and containers.
            allow_other=True,
            direct_io=True,
            attr_timeout=0,
            entry_timeout=0,
            negative_timeout=0,
            fsname='ap-persist-sim',
            subtype='simsysfs',
        )
    finally:
        server.stop()


if __name__ == '__main__':
    main()
