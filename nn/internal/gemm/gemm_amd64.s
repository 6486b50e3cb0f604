//go:build amd64 && !purego

#include "textflag.h"

// One step p of the 6x16 tile: Y12,Y13 = b[p*16:p*16+16];
// acc row i (Y(2i), Y(2i+1)) += A(i, p) * (Y12, Y13), where rows 0-2 of A
// are at AX, AX+R9, AX+2*R9 and rows 3-5 at R8, R8+R9, R8+2*R9; then
// AX and R8 advance by R10 (the byte step between A columns).
#define STEP(boff) \
	VMOVUPS boff(BX), Y12 \
	VMOVUPS boff+32(BX), Y13 \
	VBROADCASTSS (AX), Y14 \
	VFMADD231PS Y12, Y14, Y0 \
	VFMADD231PS Y13, Y14, Y1 \
	VBROADCASTSS (AX)(R9*1), Y15 \
	VFMADD231PS Y12, Y15, Y2 \
	VFMADD231PS Y13, Y15, Y3 \
	VBROADCASTSS (AX)(R9*2), Y14 \
	VFMADD231PS Y12, Y14, Y4 \
	VFMADD231PS Y13, Y14, Y5 \
	VBROADCASTSS (R8), Y15 \
	VFMADD231PS Y12, Y15, Y6 \
	VFMADD231PS Y13, Y15, Y7 \
	VBROADCASTSS (R8)(R9*1), Y14 \
	VFMADD231PS Y12, Y14, Y8 \
	VFMADD231PS Y13, Y14, Y9 \
	VBROADCASTSS (R8)(R9*2), Y15 \
	VFMADD231PS Y12, Y15, Y10 \
	VFMADD231PS Y13, Y15, Y11 \
	ADDQ R10, AX \
	ADDQ R10, R8

// Store row (lo, hi) to (R), applying beta from Y13: (lo,hi) += beta*C.
#define STOREBETA(lo, hi, R) \
	VFMADD231PS (R), Y13, lo \
	VFMADD231PS 32(R), Y13, hi \
	VMOVUPS lo, (R) \
	VMOVUPS hi, 32(R)

#define STORE(lo, hi, R) \
	VMOVUPS lo, (R) \
	VMOVUPS hi, 32(R)

// func kernel6x16(kc int, a *float32, rsA, csA int, b, c *float32, ldc int, alpha, beta float32)
TEXT ·kernel6x16(SB), NOSPLIT, $0-64
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rsA+16(FP), R9
	MOVQ csA+24(FP), R10
	MOVQ b+32(FP), BX
	MOVQ c+40(FP), DI
	MOVQ ldc+48(FP), SI
	SHLQ $2, SI
	SHLQ $2, R9
	SHLQ $2, R10
	LEAQ (AX)(R9*2), R8
	ADDQ R9, R8

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	MOVQ CX, DX
	SHRQ $2, DX
	ANDQ $3, CX
	TESTQ DX, DX
	JZ   tail

loop4:
	STEP(0)
	STEP(64)
	STEP(128)
	STEP(192)
	ADDQ $256, BX
	DECQ DX
	JNZ  loop4

tail:
	TESTQ CX, CX
	JZ    done

loop1:
	STEP(0)
	ADDQ $64, BX
	DECQ CX
	JNZ  loop1

done:
	VBROADCASTSS alpha+56(FP), Y12
	VMULPS Y12, Y0, Y0
	VMULPS Y12, Y1, Y1
	VMULPS Y12, Y2, Y2
	VMULPS Y12, Y3, Y3
	VMULPS Y12, Y4, Y4
	VMULPS Y12, Y5, Y5
	VMULPS Y12, Y6, Y6
	VMULPS Y12, Y7, Y7
	VMULPS Y12, Y8, Y8
	VMULPS Y12, Y9, Y9
	VMULPS Y12, Y10, Y10
	VMULPS Y12, Y11, Y11

	LEAQ (DI)(SI*1), R10 // row 1
	LEAQ (DI)(SI*2), R8  // row 2
	LEAQ (R8)(SI*1), R11 // row 3
	LEAQ (R8)(SI*2), R9  // row 4
	LEAQ (R9)(SI*1), R12 // row 5

	MOVL beta+60(FP), DX
	ANDL $0x7fffffff, DX
	JZ   nobeta

	VBROADCASTSS beta+60(FP), Y13
	STOREBETA(Y0, Y1, DI)
	STOREBETA(Y2, Y3, R10)
	STOREBETA(Y4, Y5, R8)
	STOREBETA(Y6, Y7, R11)
	STOREBETA(Y8, Y9, R9)
	STOREBETA(Y10, Y11, R12)
	VZEROUPPER
	RET

nobeta:
	STORE(Y0, Y1, DI)
	STORE(Y2, Y3, R10)
	STORE(Y4, Y5, R8)
	STORE(Y6, Y7, R11)
	STORE(Y8, Y9, R9)
	STORE(Y10, Y11, R12)
	VZEROUPPER
	RET

// func packB16(kc int, src *float32, ldb int, dst *float32)
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

// func transpose8(n8 int, src *float32, ldb int, dst *float32)
// For 8 rows of src (ldb floats apart) and p < 8*n8:
// dst[p*16+j] = src[j*ldb+p], j < 8 (8x8 block transposes, dst rows 16 floats apart).
TEXT ·transpose8(SB), NOSPLIT, $0-32
	MOVQ n8+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), DX
	MOVQ dst+24(FP), DI
	SHLQ $2, DX
	LEAQ (SI)(DX*2), R8
	ADDQ DX, R8         // row 3
	LEAQ (R8)(DX*2), R9
	ADDQ DX, R9         // row 6

tr8loop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(DX*1), Y1
	VMOVUPS (SI)(DX*2), Y2
	VMOVUPS (R8), Y3
	VMOVUPS (R8)(DX*1), Y4
	VMOVUPS (R8)(DX*2), Y5
	VMOVUPS (R9), Y6
	VMOVUPS (R9)(DX*1), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	VMOVUPS Y8, (DI)
	VMOVUPS Y9, 64(DI)
	VMOVUPS Y10, 128(DI)
	VMOVUPS Y11, 192(DI)
	VMOVUPS Y12, 256(DI)
	VMOVUPS Y13, 320(DI)
	VMOVUPS Y14, 384(DI)
	VMOVUPS Y15, 448(DI)

	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $512, DI
	DECQ CX
	JNZ  tr8loop
	VZEROUPPER
	RET
