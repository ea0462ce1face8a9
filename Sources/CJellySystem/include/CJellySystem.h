#ifndef CJELLY_SYSTEM_H
#define CJELLY_SYSTEM_H

#include <stddef.h>
#include <stdint.h>

/// CRC-32C (Castagnoli), as used by iSCSI, ext4 and LevelDB: polynomial 0x1EDC6F41
/// (reflected 0x82F63B78), initial value and final xor 0xFFFFFFFF.
/// `crc` is the value returned by a previous call (0 to start), so a checksum over
/// several pieces is `jelly_crc32c(jelly_crc32c(0, a, n), b, m)`.
/// Uses the SSE4.2 / ARMv8 CRC instructions when the CPU has them, tables otherwise.
uint32_t jelly_crc32c(uint32_t crc, const void *data, size_t length);

/// 1 when `jelly_crc32c` runs on a hardware instruction, 0 when it uses tables.
int jelly_crc32c_is_hardware(void);

/// The software implementation, exposed so tests can check both paths agree.
uint32_t jelly_crc32c_software(uint32_t crc, const void *data, size_t length);

/// open(2) with O_DIRECT where the platform has it (Linux). Returns -1 with errno set on failure,
/// for example EINVAL on tmpfs, which refuses direct I/O. On platforms without O_DIRECT returns
/// -1 with errno = ENOTSUP so the caller falls back to buffered I/O.
int jelly_open_direct(const char *path, int flags, int mode);

/// Data-only sync: fdatasync(2) on Linux; F_FULLFSYNC on Darwin (plain fsync there does not
/// flush the drive's cache). Returns 0 or -1 with errno set.
int jelly_datasync(int fd);

/// Takes an exclusive, non-blocking advisory lock on the whole file (flock).
/// Returns 0, or -1 with errno set (EWOULDBLOCK when another process holds it).
int jelly_lock_exclusive(int fd);



/// Gives the calling thread's I/O the lowest best-effort priority (Linux ioprio), so background
/// work such as compaction yields the disk to the log but still progresses. Returns 0, or -1
/// where unsupported.
int jelly_set_thread_io_low(void);
/// Names the calling thread (for top -H, ps -L, debuggers); Linux keeps 15 bytes. Returns 0, or
/// an error number.
int jelly_set_thread_name(const char *name);
/// Tells the kernel that reads of `fd` are random point reads, so it reads only what is asked
/// (no readahead). Returns 0, or -1 where unsupported.
int jelly_advise_random(int fd);
/// Bytes the C heap has handed out and not freed (glibc mallinfo2), for benchmarks; 0 elsewhere.
size_t jelly_heap_bytes(void);

#endif
