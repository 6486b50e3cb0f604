//go:build ignore

// gen_asm writes gemm_amd64.s: the AVX2+FMA micro-kernels (unrolled, so
// generated) and the packing helpers. Run with `go generate` in this
// directory (see gemm_amd64.go).
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
)

var out bytes.Buffer

func w(format string, args ...any) {
	fmt.Fprintf(&out, format, args...)
	out.WriteByte('\n')
}

// rowAddr is the address of row i (and its upper 8 floats) of a C tile:
// rows 0-2 from DI, rows 3-5 from R8 = DI + 3*SI, SI = ldc in bytes.
func rowAddr(i int) (lo, hi string) {
	base := []string{"(DI)", "(DI)(SI*1)", "(DI)(SI*2)", "(R8)", "(R8)(SI*1)", "(R8)(SI*2)"}[i]
	return base, "32" + base
}

// epilogue scales the accumulators of rows rows by alpha (unless alpha == 1)
// and stores them to C, adding beta*C unless beta == ±0. Only the first
// cols (argument at colsOff) columns are stored, with masked moves when
// cols < 16; with rowsReg, only the first rowsReg rows.
func epilogue(label string, rows, alphaOff, betaOff, colsOff int, rowsReg string) {
	w("\tMOVL alpha+%d(FP), DX", alphaOff)
	w("\tCMPL DX, $0x3f800000")
	w("\tJEQ  %s_scaled", label)
	w("\tVBROADCASTSS alpha+%d(FP), Y15", alphaOff)
	for i := 0; i < rows; i++ {
		w("\tVMULPS Y15, Y%d, Y%d", 2*i, 2*i)
		w("\tVMULPS Y15, Y%d, Y%d", 2*i+1, 2*i+1)
	}
	w("%s_scaled:", label)
	w("\tVBROADCASTSS beta+%d(FP), Y15", betaOff)
	w("\tMOVL beta+%d(FP), BX", betaOff)
	w("\tANDL $0x7fffffff, BX")
	w("\tMOVQ cols+%d(FP), DX", colsOff)
	w("\tCMPQ DX, $16")
	w("\tJLT  %s_masked", label)
	w("\tTESTL BX, BX")
	w("\tJZ   %s_nobeta", label)
	stores := func(beta, masked bool) {
		for i := 0; i < rows; i++ {
			lo, hi := rowAddr(i)
			if rowsReg != "" && i > 0 {
				w("\tCMPQ %s, $%d", rowsReg, i+1)
				w("\tJLT  %s_done", label)
			}
			switch {
			case beta && masked:
				w("\tVMASKMOVPS %s, Y12, Y14", lo)
				w("\tVFMADD231PS Y14, Y15, Y%d", 2*i)
				w("\tVMASKMOVPS %s, Y13, Y14", hi)
				w("\tVFMADD231PS Y14, Y15, Y%d", 2*i+1)
			case beta:
				w("\tVFMADD231PS %s, Y15, Y%d", lo, 2*i)
				w("\tVFMADD231PS %s, Y15, Y%d", hi, 2*i+1)
			}
			if masked {
				w("\tVMASKMOVPS Y%d, Y12, %s", 2*i, lo)
				w("\tVMASKMOVPS Y%d, Y13, %s", 2*i+1, hi)
			} else {
				w("\tVMOVUPS Y%d, %s", 2*i, lo)
				w("\tVMOVUPS Y%d, %s", 2*i+1, hi)
			}
		}
		w("\tJMP  %s_done", label)
	}
	stores(true, false)
	w("%s_nobeta:", label)
	stores(false, false)
	w("%s_masked:", label)
	// Y12, Y13 = lane masks for columns 0-7, 8-15: maskTable holds 16
	// all-ones words then 16 zero words; start at word 16-cols.
	w("\tLEAQ maskTable<>+64(SB), AX")
	w("\tSHLQ $2, DX")
	w("\tSUBQ DX, AX")
	w("\tVMOVUPS (AX), Y12")
	w("\tVMOVUPS 32(AX), Y13")
	w("\tTESTL BX, BX")
	w("\tJZ   %s_masked_nobeta", label)
	stores(true, true)
	w("%s_masked_nobeta:", label)
	stores(false, true)
	w("%s_done:", label)
}

// zero clears Y0..Y(n-1).
func zero(n int) {
	for i := 0; i < n; i++ {
		w("\tVXORPS Y%d, Y%d, Y%d", i, i, i)
	}
}

// splitCount sets DX = CX/4 (unrolled iterations) and CX = CX%4, jumping
// to label_tail when DX is 0.
func splitCount(label string) {
	w("\tMOVQ CX, DX")
	w("\tSHRQ $2, DX")
	w("\tANDQ $3, CX")
	w("\tTESTQ DX, DX")
	w("\tJZ   %s_tail", label)
}

// step6 is one step p of the 6x16 kernel: B row at boff(BX); A rows 0-2 at
// AX, AX+R9, AX+2*R9 and 3-5 at R8, R8+R9, R8+2*R9, which then advance by
// R10 (the byte step between A columns).
func step6(boff int) {
	w("\tVMOVUPS %d(BX), Y12", boff)
	w("\tVMOVUPS %d(BX), Y13", boff+32)
	src := []string{"(AX)", "(AX)(R9*1)", "(AX)(R9*2)", "(R8)", "(R8)(R9*1)", "(R8)(R9*2)"}
	for i, s := range src {
		r := []string{"Y14", "Y15"}[i%2]
		w("\tVBROADCASTSS %s, %s", s, r)
		w("\tVFMADD231PS Y12, %s, Y%d", r, 2*i)
		w("\tVFMADD231PS Y13, %s, Y%d", r, 2*i+1)
	}
	w("\tADDQ R10, AX")
	w("\tADDQ R10, R8")
}

func kernel6() {
	w("// func kernel6x16(tiles, cols, kc int, a *float32, aStep, rsA, csA int, b, c *float32, ldc int, alpha, beta float32)")
	w("TEXT ·kernel6x16(SB), NOSPLIT, $0-88")
	w("\tMOVQ tiles+0(FP), R11")
	w("\tMOVQ a+24(FP), R12")
	w("\tMOVQ aStep+32(FP), R13")
	w("\tSHLQ $2, R13")
	w("\tMOVQ rsA+40(FP), R9")
	w("\tSHLQ $2, R9")
	w("\tMOVQ csA+48(FP), R10")
	w("\tSHLQ $2, R10")
	w("\tMOVQ c+64(FP), DI")
	w("\tMOVQ ldc+72(FP), SI")
	w("\tSHLQ $2, SI")
	w("")
	w("k6_tile:")
	w("\tMOVQ R12, AX")
	w("\tLEAQ (AX)(R9*2), R8")
	w("\tADDQ R9, R8")
	w("\tMOVQ b+56(FP), BX")
	w("\tMOVQ kc+16(FP), CX")
	zero(12)
	splitCount("k6")
	w("k6_loop4:")
	for u := 0; u < 4; u++ {
		step6(64 * u)
	}
	w("\tADDQ $256, BX")
	w("\tDECQ DX")
	w("\tJNZ  k6_loop4")
	w("k6_tail:")
	w("\tTESTQ CX, CX")
	w("\tJZ   k6_store")
	w("k6_loop1:")
	step6(0)
	w("\tADDQ $64, BX")
	w("\tDECQ CX")
	w("\tJNZ  k6_loop1")
	w("k6_store:")
	w("\tLEAQ (DI)(SI*2), R8")
	w("\tADDQ SI, R8")
	epilogue("k6", 6, 80, 84, 8, "")
	w("\tADDQ R13, R12")
	w("\tLEAQ (DI)(SI*4), DI")
	w("\tLEAQ (DI)(SI*2), DI")
	w("\tDECQ R11")
	w("\tJNZ  k6_tile")
	w("\tVZEROUPPER")
	w("\tRET")
	w("")
}

// edgeKernel writes kernelRx16 for a packed A panel (6 floats per step).
// The 2-row kernel alternates two accumulator sets so that the FMAs of
// consecutive steps do not wait for each other.
func edgeKernel(rows int) {
	name := fmt.Sprintf("kernel%dx16", rows)
	l := fmt.Sprintf("k%d", rows)
	nacc := 2 * rows
	sets := 1
	if rows == 2 {
		sets = 2
	}
	w("// func %s(rows, cols, kc int, a, b, c *float32, ldc int, alpha, beta float32)", name)
	w("TEXT ·%s(SB), NOSPLIT, $0-64", name)
	w("\tMOVQ rows+0(FP), R11")
	w("\tMOVQ kc+16(FP), CX")
	w("\tMOVQ a+24(FP), AX")
	w("\tMOVQ b+32(FP), BX")
	w("\tMOVQ c+40(FP), DI")
	w("\tMOVQ ldc+48(FP), SI")
	w("\tSHLQ $2, SI")
	zero(nacc * sets)
	splitCount(l)
	step := func(boff, aoff, set int) {
		base := set * nacc
		w("\tVMOVUPS %d(BX), Y12", boff)
		w("\tVMOVUPS %d(BX), Y13", boff+32)
		for i := 0; i < rows; i++ {
			r := []string{"Y14", "Y15"}[i%2]
			w("\tVBROADCASTSS %d(AX), %s", aoff+4*i, r)
			w("\tVFMADD231PS Y12, %s, Y%d", r, base+2*i)
			w("\tVFMADD231PS Y13, %s, Y%d", r, base+2*i+1)
		}
	}
	w("%s_loop4:", l)
	for u := 0; u < 4; u++ {
		step(64*u, 24*u, u%sets)
	}
	w("\tADDQ $96, AX")
	w("\tADDQ $256, BX")
	w("\tDECQ DX")
	w("\tJNZ  %s_loop4", l)
	w("%s_tail:", l)
	w("\tTESTQ CX, CX")
	w("\tJZ   %s_store", l)
	w("%s_loop1:", l)
	step(0, 0, 0)
	w("\tADDQ $24, AX")
	w("\tADDQ $64, BX")
	w("\tDECQ CX")
	w("\tJNZ  %s_loop1", l)
	w("%s_store:", l)
	if sets == 2 {
		for i := 0; i < nacc; i++ {
			w("\tVADDPS Y%d, Y%d, Y%d", nacc+i, i, i)
		}
	}
	w("\tLEAQ (DI)(SI*2), R8")
	w("\tADDQ SI, R8")
	epilogue(l, rows, 56, 60, 8, "R11")
	w("\tVZEROUPPER")
	w("\tRET")
	w("")
}

const header = `// Code generated by gen_asm.go; DO NOT EDIT.

//go:build amd64 && !purego

#include "textflag.h"

// Micro-kernels: C tile = alpha * (A panel × B panel) + beta * C tile, with
// B packed in rows of 16 floats (two YMM registers) and each A element
// broadcast. Accumulators: Y0..Y11 (row i in Y(2i), Y(2i+1)); Y12, Y13 hold
// the B row, Y14, Y15 the broadcasts (and alpha/beta in the epilogue).
// alpha == 1 skips the scaling; beta == ±0 stores without reading C.
`

const packing = `// func packB16(kc int, src *float32, ldb int, dst *float32)
// Copies kc rows of 16 floats, src rows ldb floats apart, to dst contiguously.
TEXT ·packB16(SB), NOSPLIT, $0-32
	MOVQ kc+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), DX
	MOVQ dst+24(FP), DI
	SHLQ $2, DX

packb16loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    DX, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     packb16loop
	VZEROUPPER
	RET
`

func main() {
	out.WriteString(header)
	w("")
	w("// maskTable: 16 all-ones words, then 16 zero words (VMASKMOVPS lane masks).")
	for i := 0; i < 8; i++ {
		w("DATA maskTable<>+%d(SB)/8, $-1", 8*i)
	}
	w("GLOBL maskTable<>(SB), RODATA|NOPTR, $128")
	w("")
	kernel6()
	edgeKernel(4)
	edgeKernel(2)
	out.WriteString(packing)
	w("")
	transpose8()
	if err := os.WriteFile("gemm_amd64.s", out.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// transpose8 writes transpose8: 8x8 float32 block transposes of 8 source
// rows into 16-float destination rows (packing of Bᵀ panels).
func transpose8() {
	w("// func transpose8(n8 int, src *float32, ldb int, dst *float32)")
	w("// For 8 rows of src (ldb floats apart) and p < 8*n8:")
	w("// dst[p*16+j] = src[j*ldb+p], j < 8 (8x8 block transposes, dst rows 16 floats apart).")
	w("TEXT ·transpose8(SB), NOSPLIT, $0-32")
	w("\tMOVQ n8+0(FP), CX")
	w("\tMOVQ src+8(FP), SI")
	w("\tMOVQ ldb+16(FP), DX")
	w("\tMOVQ dst+24(FP), DI")
	w("\tSHLQ $2, DX")
	w("\tLEAQ (SI)(DX*2), R8")
	w("\tADDQ DX, R8         // row 3")
	w("\tLEAQ (R8)(DX*2), R9")
	w("\tADDQ DX, R9         // row 6")
	w("")
	w("tr8loop:")
	for i, s := range []string{"(SI)", "(SI)(DX*1)", "(SI)(DX*2)", "(R8)", "(R8)(DX*1)", "(R8)(DX*2)", "(R9)", "(R9)(DX*1)"} {
		w("\tVMOVUPS %s, Y%d", s, i)
	}
	w("")
	// Interleave row pairs, then 64-bit pairs, then 128-bit halves.
	for i := 0; i < 4; i++ {
		w("\tVUNPCKLPS Y%d, Y%d, Y%d", 2*i+1, 2*i, 8+2*i)
		w("\tVUNPCKHPS Y%d, Y%d, Y%d", 2*i+1, 2*i, 9+2*i)
	}
	w("")
	for h := 0; h < 2; h++ {
		t := 8 + 4*h
		w("\tVSHUFPS $0x44, Y%d, Y%d, Y%d", t+2, t, 4*h)
		w("\tVSHUFPS $0xEE, Y%d, Y%d, Y%d", t+2, t, 4*h+1)
		w("\tVSHUFPS $0x44, Y%d, Y%d, Y%d", t+3, t+1, 4*h+2)
		w("\tVSHUFPS $0xEE, Y%d, Y%d, Y%d", t+3, t+1, 4*h+3)
	}
	w("")
	for i := 0; i < 4; i++ {
		w("\tVPERM2F128 $0x20, Y%d, Y%d, Y%d", 4+i, i, 8+i)
	}
	for i := 0; i < 4; i++ {
		w("\tVPERM2F128 $0x31, Y%d, Y%d, Y%d", 4+i, i, 12+i)
	}
	w("")
	for i := 0; i < 8; i++ {
		if i == 0 {
			w("\tVMOVUPS Y8, (DI)")
			continue
		}
		w("\tVMOVUPS Y%d, %d(DI)", 8+i, 64*i)
	}
	w("")
	w("\tADDQ $32, SI")
	w("\tADDQ $32, R8")
	w("\tADDQ $32, R9")
	w("\tADDQ $512, DI")
	w("\tDECQ CX")
	w("\tJNZ  tr8loop")
	w("\tVZEROUPPER")
	w("\tRET")
}
