//go:build !amd64

package gemm

func defaultKernel() kernelFunc { return kernelGeneric }
