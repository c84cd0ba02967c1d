package main

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseExec releases the resident pages of m, a read-only mapping of
// the executable: first MADV_PAGEOUT (through process_madvise, on this
// process), which reclaims the pages from the page cache when no other
// process maps them and this one may write the file, then MADV_DONTNEED,
// which unmaps what is left (the page cache keeps it). The pages are
// read-only copies of the file: the next access reads them again.
func adviseExec(m execMapping) error {
	var errs []error
	if fd, err := unix.PidfdOpen(os.Getpid(), 0); err != nil {
		errs = append(errs, fmt.Errorf("pidfd_open: %w", err))
	} else {
		iov := [2]uintptr{m.start, m.end - m.start} // struct iovec
		_, _, errno := unix.Syscall6(unix.SYS_PROCESS_MADVISE, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, unix.MADV_PAGEOUT, 0, 0)
		if errno != 0 && errno != unix.ENOSYS && errno != unix.EINVAL && errno != unix.EPERM {
			errs = append(errs, fmt.Errorf("MADV_PAGEOUT: %w", errno))
		}
		unix.Close(fd)
	}
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
		errs = append(errs, fmt.Errorf("MADV_DONTNEED: %w", errno))
	}
	return errors.Join(errs...)
}
