// LD_PRELOAD shim for tests/robustness/test_disk_faults.py: makes writes to chosen files fail the
// way a full disk makes them fail, so that every writer's error path runs in CI without filling
// a real disk (or needing the privileges to mount a small one).
//
//   SKV_FAULT_MATCH      substring of a file's path (resolved through /proc/self/fd); only regular
//                        files whose path contains it are affected. Unset: the shim does nothing.
//   SKV_FAULT_BYTES      writes to matching files succeed until this many bytes in all have been
//                        written; the write that crosses the budget is cut short there (a short
//                        count, as the kernel returns when the disk fills) and every later one
//                        fails. Unset: writes are not limited.
//   SKV_FAULT_FSYNC      "1": fsync / fdatasync of a matching file fail.
//   SKV_FAULT_FALLOCATE  "1": posix_fallocate / fallocate of a matching file fail. (Otherwise
//                        they pass through and do not count against the budget: reserved blocks
//                        are what later writes land in.)
//   SKV_FAULT_ERRNO      the errno of every injected failure (a number; default ENOSPC).
//   SKV_FAULT_LOG        a file to append one line to per injected failure, so that a test can
//                        tell its fault was hit rather than the program failing some other way.
//
// stdout, stderr and pipes never match (regular files only), so the program can still report.
// Only calls that reach libc through its exported symbols are seen: stdio (fwrite) writes from
// inside libc and bypasses this library, which is why swiftkv's file writers call write() itself.
// In a build with AddressSanitizer, preload the ASan runtime before this library: ASan wants to
// come first, and its interceptors then call through to these functions, which call libc.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static long long g_written;  // bytes written to matching files so far

static void* next_symbol(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (!f) {
    static const char msg[] = "failwrite_shim: dlsym failed\n";
    syscall(SYS_write, 2, msg, sizeof msg - 1);
    abort();
  }
  return f;
}

#define REAL(ret, name, ...)       \
  static ret (*real)(__VA_ARGS__); \
  if (!real) real = (ret(*)(__VA_ARGS__))next_symbol(name)

static int env_flag(const char* name) {
  const char* v = getenv(name);
  return v && strcmp(v, "1") == 0;
}

static int fault_errno(void) {
  const char* v = getenv("SKV_FAULT_ERRNO");
  return v && *v ? atoi(v) : ENOSPC;
}

static int matches(int fd) {
  const char* pattern = getenv("SKV_FAULT_MATCH");
  if (!pattern || !*pattern) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return 0;
  path[n] = '\0';
  return strstr(path, pattern) != NULL;
}

static void log_fault(const char* call, int fd) {
  const char* log = getenv("SKV_FAULT_LOG");
  if (!log || !*log) return;
  char link[64], path[4096], line[4300];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  path[n > 0 ? n : 0] = '\0';
  const int len = snprintf(line, sizeof line, "%s %s\n", call, path);
  // Straight to the kernel: the log must not go through the write() this library replaces.
  const int lfd = (int)syscall(SYS_openat, AT_FDCWD, log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (lfd < 0) return;
  syscall(SYS_write, lfd, line, (size_t)len);
  syscall(SYS_close, lfd);
}

// How many of `n` bytes a write to fd may write: n when fd does not match or there is no budget,
// else what is left of the budget (0: fail the call), which is taken from it.
static size_t allowed(int fd, size_t n) {
  const char* budget_env = getenv("SKV_FAULT_BYTES");
  if (!budget_env || !*budget_env || n == 0 || !matches(fd)) return n;
  const long long budget = atoll(budget_env);
  pthread_mutex_lock(&g_lock);
  long long left = budget - g_written;
  if (left < 0) left = 0;
  const size_t ok = (size_t)left < n ? (size_t)left : n;
  g_written += (long long)ok;
  pthread_mutex_unlock(&g_lock);
  return ok;
}

static ssize_t refuse(const char* call, int fd) {
  log_fault(call, fd);
  errno = fault_errno();
  return -1;
}

ssize_t write(int fd, const void* buf, size_t n) {
  REAL(ssize_t, "write", int, const void*, size_t);
  const size_t ok = allowed(fd, n);
  if (ok == 0 && n > 0) return refuse("write", fd);
  return real(fd, buf, ok);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  REAL(ssize_t, "pwrite", int, const void*, size_t, off_t);
  const size_t ok = allowed(fd, n);
  if (ok == 0 && n > 0) return refuse("pwrite", fd);
  return real(fd, buf, ok, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  REAL(ssize_t, "pwrite64", int, const void*, size_t, off64_t);
  const size_t ok = allowed(fd, n);
  if (ok == 0 && n > 0) return refuse("pwrite64", fd);
  return real(fd, buf, ok, off);
}

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  REAL(ssize_t, "writev", int, const struct iovec*, int);
  size_t total = 0;
  for (int i = 0; i < iovcnt; ++i) total += iov[i].iov_len;
  const size_t ok = allowed(fd, total);
  if (ok == total) return real(fd, iov, iovcnt);
  if (ok == 0) return refuse("writev", fd);
  // The first `ok` bytes of the vector, as a short write.
  struct iovec cut[64];
  int k = 0;
  size_t left = ok;
  for (int i = 0; i < iovcnt && left > 0 && k < 64; ++i, ++k) {
    cut[k] = iov[i];
    if (cut[k].iov_len > left) cut[k].iov_len = left;
    left -= cut[k].iov_len;
  }
  return real(fd, cut, k);
}

int fsync(int fd) {
  REAL(int, "fsync", int);
  if (env_flag("SKV_FAULT_FSYNC") && matches(fd)) return (int)refuse("fsync", fd);
  return real(fd);
}

int fdatasync(int fd) {
  REAL(int, "fdatasync", int);
  if (env_flag("SKV_FAULT_FSYNC") && matches(fd)) return (int)refuse("fdatasync", fd);
  return real(fd);
}

// posix_fallocate returns the error number instead of setting errno.
int posix_fallocate(int fd, off_t off, off_t len) {
  REAL(int, "posix_fallocate", int, off_t, off_t);
  if (env_flag("SKV_FAULT_FALLOCATE") && matches(fd)) {
    log_fault("posix_fallocate", fd);
    return fault_errno();
  }
  return real(fd, off, len);
}

int posix_fallocate64(int fd, off64_t off, off64_t len) {
  REAL(int, "posix_fallocate64", int, off64_t, off64_t);
  if (env_flag("SKV_FAULT_FALLOCATE") && matches(fd)) {
    log_fault("posix_fallocate64", fd);
    return fault_errno();
  }
  return real(fd, off, len);
}

int fallocate(int fd, int mode, off_t off, off_t len) {
  REAL(int, "fallocate", int, int, off_t, off_t);
  if (env_flag("SKV_FAULT_FALLOCATE") && matches(fd)) return (int)refuse("fallocate", fd);
  return real(fd, mode, off, len);
}
