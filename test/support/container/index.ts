// A Debian 12 with systemd as PID 1 in systemd-nspawn, and udevd's way of
// running RUN programs, for tests that watch a real boot.

export * from './container.js';
export { DEFAULT_ROOTFS, ensureRootfs, MIRROR_ENV, PACKAGES, ROOTFS_ENV, rootfsStamp, type Rootfs } from './rootfs.js';
export { waitFor, type WaitOptions } from './process.js';
export * from './udevd.js';
