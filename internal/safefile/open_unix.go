//go:build unix

package safefile

import "syscall"

// openFlags are added when opening a file: O_NONBLOCK keeps
// a FIFO swapped in after the type check from blocking the open (the
// descriptor's type is checked again before reading).
const openFlags = syscall.O_NONBLOCK
