#include "textflag.h"

// One step p of the 6x16 tile: Y12,Y13 = b[p*16:p*16+16];
// acc row i (Y(2i), Y(2i+1)) += a[p*6+i] * (Y12, Y13).
#define STEP(aoff, boff) \
	VMOVUPS boff(BX), Y12 \
	VMOVUPS boff+32(BX), Y13 \
	VBROADCASTSS aoff(AX), Y14 \
	VFMADD231PS Y12, Y14, Y0 \
	VFMADD231PS Y13, Y14, Y1 \
	VBROADCASTSS aoff+4(AX), Y15 \
	VFMADD231PS Y12, Y15, Y2 \
	VFMADD231PS Y13, Y15, Y3 \
	VBROADCASTSS aoff+8(AX), Y14 \
	VFMADD231PS Y12, Y14, Y4 \
	VFMADD231PS Y13, Y14, Y5 \
	VBROADCASTSS aoff+12(AX), Y15 \
	VFMADD231PS Y12, Y15, Y6 \
	VFMADD231PS Y13, Y15, Y7 \
	VBROADCASTSS aoff+16(AX), Y14 \
	VFMADD231PS Y12, Y14, Y8 \
	VFMADD231PS Y13, Y14, Y9 \
	VBROADCASTSS aoff+20(AX), Y15 \
	VFMADD231PS Y12, Y15, Y10 \
	VFMADD231PS Y13, Y15, Y11

// Store row (lo, hi) to (R), applying beta from Y13: (lo,hi) += beta*C.
#define STOREBETA(lo, hi, R) \
	VFMADD231PS (R), Y13, lo \
	VFMADD231PS 32(R), Y13, hi \
	VMOVUPS lo, (R) \
	VMOVUPS hi, 32(R)

#define STORE(lo, hi, R) \
	VMOVUPS lo, (R) \
	VMOVUPS hi, 32(R)

// func kernel6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)
TEXT ·kernel6x16(SB), NOSPLIT, $0-48
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), BX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), SI
	SHLQ $2, SI

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
	STEP(0, 0)
	STEP(24, 64)
	STEP(48, 128)
	STEP(72, 192)
	ADDQ $96, AX
	ADDQ $256, BX
	DECQ DX
	JNZ  loop4

tail:
	TESTQ CX, CX
	JZ    done

loop1:
	STEP(0, 0)
	ADDQ $24, AX
	ADDQ $64, BX
	DECQ CX
	JNZ  loop1

done:
	VBROADCASTSS alpha+40(FP), Y12
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

	MOVL beta+44(FP), DX
	ANDL $0x7fffffff, DX
	JZ   nobeta

	VBROADCASTSS beta+44(FP), Y13
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
