//go:build unix

package gemm

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time used by this process so far (all threads,
// user + system), or 0 if it cannot be read.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
