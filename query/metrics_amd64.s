//go:build amd64 && !purego

#include "textflag.h"

// func errSumsAVX2(a, b *float32, n int, atol, rtol float64, l *lanes)
//
// Per 4 pairs: x, y = float64(a[i:i+4]), float64(b[i:i+4]); d = |x-y|;
// abs += d; sq += d*d; a2 += x*x; b2 += y*y; ab += x*y; mx = max(mx, d);
// out -= (d > atol + rtol*|y|) (a true compare is all ones, i.e. -1).
// The threshold uses a separate multiply and add, like the Go code.
//
// Registers: Y0 x, Y1 y, Y2 d, Y3 abs, Y4 sq, Y5 a2, Y6 b2, Y7 ab, Y8 mx,
// Y9 threshold, Y10 mask, Y11 out, Y13 abs mask, Y14 atol, Y15 rtol.
TEXT ·errSumsAVX2(SB), NOSPLIT, $0-48
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ l+40(FP), DX
	VBROADCASTSD atol+24(FP), Y14
	VBROADCASTSD rtol+32(FP), Y15
	MOVQ $0x7fffffffffffffff, AX
	MOVQ AX, X13
	VPBROADCASTQ X13, Y13
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VPXOR  Y11, Y11, Y11
	XORQ BX, BX

loop:
	CMPQ BX, CX
	JGE  done
	VCVTPS2PD (SI)(BX*4), Y0
	VCVTPS2PD (DI)(BX*4), Y1
	VSUBPD    Y1, Y0, Y2
	VANDPD    Y13, Y2, Y2
	VADDPD    Y2, Y3, Y3
	VFMADD231PD Y2, Y2, Y4
	VFMADD231PD Y0, Y0, Y5
	VFMADD231PD Y1, Y1, Y6
	VFMADD231PD Y1, Y0, Y7
	VMAXPD    Y8, Y2, Y8
	VANDPD    Y13, Y1, Y9
	VMULPD    Y15, Y9, Y9
	VADDPD    Y14, Y9, Y9
	VCMPPD    $0x1e, Y9, Y2, Y10
	VPSUBQ    Y10, Y11, Y11
	ADDQ $4, BX
	JMP  loop

done:
	VMOVUPD Y3, 0(DX)
	VMOVUPD Y4, 32(DX)
	VMOVUPD Y5, 64(DX)
	VMOVUPD Y6, 96(DX)
	VMOVUPD Y7, 128(DX)
	VMOVUPD Y8, 160(DX)
	VMOVDQU Y11, 192(DX)
	VZEROUPPER
	RET
