// Bytes each process asked to read and wrote through the mount, with the
// Docker container it runs in, for the containers' share of the traffic.
#ifndef CHAAC_PID_IO_H
#define CHAAC_PID_IO_H
#include <stdint.h>
#include <sys/types.h>

#define PID_IO_ID 64

typedef struct {
  pid_t pid;
  uint64_t read;
  uint64_t written;
  // The full id of its container ("" when in none), read from /proc when the process is first seen.
  char container[PID_IO_ID + 1];
} pid_io_t;

void pid_io_add (pid_t pid, uint64_t read, uint64_t written);
// Copies out up to max entries and empties the table; returns how many.
uint32_t pid_io_take (pid_io_t *out, uint32_t max);
#endif
