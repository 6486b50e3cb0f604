//go:build !unix

package gemm

import "time"

// processCPU is not available here; 0 disables the CPU-time metric.
func processCPU() time.Duration { return 0 }
