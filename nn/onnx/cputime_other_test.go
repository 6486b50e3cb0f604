//go:build !unix

package onnx

import "time"

func processCPU() time.Duration { return 0 }
