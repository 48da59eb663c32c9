// An open-addressing table of pid -> bytes, touched only on the event loop's
// thread (the op callbacks run there). JS empties it every few seconds, so it
// stays small; past PID_IO_SLOTS / 2 processes between two takes the rest go
// to pid 0. A process's container is looked up while it makes its request,
// as many (a `cp`, a `dd`) are gone by the time JS takes the counts.
#include "pid-io.h"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PID_IO_SLOTS 2048

static pid_io_t table[PID_IO_SLOTS];
static uint32_t used;

static int is_hex (char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// Docker names a container's cgroup after it: ".../docker-ID.scope" (systemd) or "/docker/ID".
static void container_of (pid_t pid, char *out) {
  char path[64], buf[4096];
  out[0] = 0;
  snprintf(path, sizeof(path), "/proc/%d/cgroup", (int) pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return;
  buf[n] = 0;
  for (char *p = buf; (p = strstr(p, "docker")) != NULL; p++) {
    char *id = p + 6;
    if (*id != '-' && *id != '/') continue;
    id++;
    int len = 0;
    while (len < PID_IO_ID && is_hex(id[len])) len++;
    if (len == PID_IO_ID && !is_hex(id[len])) {
      memcpy(out, id, PID_IO_ID);
      out[PID_IO_ID] = 0;
      return;
    }
  }
}

static int empty (const pid_io_t *e) {
  return e->pid == 0 && e->read == 0 && e->written == 0;
}

static pid_io_t *slot (pid_t pid) {
  uint32_t i = ((uint32_t) pid * 2654435761u) % PID_IO_SLOTS;
  for (;;) {
    if (table[i].pid == pid) return &table[i];
    if (empty(&table[i])) {
      if (used >= PID_IO_SLOTS / 2) return slot(0);
      table[i].pid = pid;
      container_of(pid, table[i].container);
      used++;
      return &table[i];
    }
    i = (i + 1) % PID_IO_SLOTS;
  }
}

void pid_io_add (pid_t pid, uint64_t read, uint64_t written) {
  pid_io_t *e = slot(pid);
  e->read += read;
  e->written += written;
}

uint32_t pid_io_take (pid_io_t *out, uint32_t max) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < PID_IO_SLOTS && n < max; i++) {
    if (!empty(&table[i])) out[n++] = table[i];
  }
  memset(table, 0, sizeof(table));
  used = 0;
  return n;
}
