#define _GNU_SOURCE
#include "CJellySystem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* ---- CRC-32C: tables (slicing-by-8) ---------------------------------------------------- */

static uint32_t crc_table[8][256];
static int crc_table_ready = 0;

static void crc_init_tables(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc_table[0][n];
        for (int t = 1; t < 8; t++) {
            c = crc_table[0][c & 0xFF] ^ (c >> 8);
            crc_table[t][n] = c;
        }
    }
    __atomic_store_n(&crc_table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t jelly_crc32c_software(uint32_t crc, const void *data, size_t length) {
    if (!__atomic_load_n(&crc_table_ready, __ATOMIC_ACQUIRE)) crc_init_tables();
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = ~crc;
    while (length >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= c; /* little-endian hosts only; big-endian would need a byte swap here */
        c = crc_table[7][w & 0xFF] ^ crc_table[6][(w >> 8) & 0xFF] ^
            crc_table[5][(w >> 16) & 0xFF] ^ crc_table[4][(w >> 24) & 0xFF] ^
            crc_table[3][(w >> 32) & 0xFF] ^ crc_table[2][(w >> 40) & 0xFF] ^
            crc_table[1][(w >> 48) & 0xFF] ^ crc_table[0][w >> 56];
        p += 8;
        length -= 8;
    }
    while (length--) c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

/* ---- CRC-32C: hardware ------------------------------------------------------------------ */

#if defined(__x86_64__)
#include <cpuid.h>
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *data, size_t length) {
    const uint8_t *p = (const uint8_t *)data;
    uint64_t c = ~crc;
    while (length && ((uintptr_t)p & 7)) { c = __builtin_ia32_crc32qi((uint32_t)c, *p++); length--; }
    while (length >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        length -= 8;
    }
    while (length--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
static int detect_hw(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSE4_2) != 0;
}
#elif defined(__aarch64__) && defined(__ARM_FEATURE_CRC32)
#include <arm_acle.h>
static uint32_t crc32c_hw(uint32_t crc, const void *data, size_t length) {
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = ~crc;
    while (length >= 8) { uint64_t w; memcpy(&w, p, 8); c = __crc32cd(c, w); p += 8; length -= 8; }
    while (length--) c = __crc32cb(c, *p++);
    return ~c;
}
static int detect_hw(void) { return 1; }
#else
static uint32_t crc32c_hw(uint32_t crc, const void *data, size_t length) {
    return jelly_crc32c_software(crc, data, length);
}
static int detect_hw(void) { return 0; }
#endif

static int hw_state = -1; /* -1 unknown, 0 no, 1 yes */

int jelly_crc32c_is_hardware(void) {
    int s = __atomic_load_n(&hw_state, __ATOMIC_RELAXED);
    if (s < 0) {
        s = detect_hw();
        __atomic_store_n(&hw_state, s, __ATOMIC_RELAXED);
    }
    return s;
}

uint32_t jelly_crc32c(uint32_t crc, const void *data, size_t length) {
    if (jelly_crc32c_is_hardware()) return crc32c_hw(crc, data, length);
    return jelly_crc32c_software(crc, data, length);
}

/* ---- syscalls ----------------------------------------------------------------------------- */

int jelly_open_direct(const char *path, int flags, int mode) {
#ifdef O_DIRECT
    return open(path, flags | O_DIRECT | O_CLOEXEC, mode);
#else
    (void)path; (void)flags; (void)mode;
    errno = ENOTSUP;
    return -1;
#endif
}

int jelly_datasync(int fd) {
#if defined(__APPLE__)
    if (fcntl(fd, F_FULLFSYNC) == 0) return 0;
    return fsync(fd);
#else
    return fdatasync(fd);
#endif
}

int jelly_lock_exclusive(int fd) {
    return flock(fd, LOCK_EX | LOCK_NB);
}

#if defined(__linux__)
#include <sys/syscall.h>
#endif

int jelly_set_thread_io_low(void) {
#if defined(__linux__) && defined(SYS_ioprio_set)
    /* IOPRIO_WHO_PROCESS = 1 applies to the calling thread when who = 0. Best-effort class
       (2 << IOPRIO_CLASS_SHIFT 13) at its lowest level 7; not the idle class, which starves
       completely while the log keeps the disk busy. */
    return (int)syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 7);
#else
    return -1;
#endif
}

#include <pthread.h>

int jelly_set_thread_name(const char *name) {
#if defined(__APPLE__)
    return pthread_setname_np(name);
#elif defined(__linux__)
    char short_name[16];
    strncpy(short_name, name, 15);
    short_name[15] = 0;
    return pthread_setname_np(pthread_self(), short_name);
#else
    return 0;
#endif
}

#if defined(__GLIBC__)
#include <malloc.h>
#endif

size_t jelly_heap_bytes(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 info = mallinfo2();
    return info.uordblks;
#else
    return 0;
#endif
}

int jelly_advise_random(int fd) {
#if defined(__linux__)
    return posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM) == 0 ? 0 : -1;
#elif defined(__APPLE__)
    return fcntl(fd, F_RDAHEAD, 0) == -1 ? -1 : 0;
#else
    return -1;
#endif
}
