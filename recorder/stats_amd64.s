#include "textflag.h"

// func histAsm(h *[denseLen]uint32, x []float32)
// Counts h[bits>>16]++ for every element; an element that is ±0 is counted
// in dummy slot zeroBase+(bits>>16)+lane instead (lane 0..7), see stats.go.
TEXT ·histAsm(SB), NOSPLIT, $0-32
	MOVQ h+0(FP), DI
	MOVQ x_base+8(FP), SI
	MOVQ x_len+16(FP), CX

#define LANE(off, j) \
	MOVL off(SI), AX \
	MOVL AX, BX \
	SHRL $16, BX \
	LEAL (65536+j)(BX), DX \
	SHLL $1, AX \
	CMOVLEQ DX, BX \
	INCL (DI)(BX*4)

loop8:
	CMPQ CX, $8
	JLT tail
	LANE(0, 0)
	LANE(4, 1)
	LANE(8, 2)
	LANE(12, 3)
	LANE(16, 4)
	LANE(20, 5)
	LANE(24, 6)
	LANE(28, 7)
	ADDQ $32, SI
	SUBQ $8, CX
	JMP loop8

tail:
	TESTQ CX, CX
	JEQ done
	LANE(0, 0)
	ADDQ $4, SI
	DECQ CX
	JMP tail

done:
	RET

// MOMENTS_INIT zeroes the accumulators of MOMENTS16: sums Y1, Y2,
// squares Y3, Y4, zero counts Y12, -0 counts Y11, and Y13 (0.0).
#define MOMENTS_INIT \
	VXORPD Y1, Y1, Y1 \
	VXORPD Y2, Y2, Y2 \
	VXORPD Y3, Y3, Y3 \
	VXORPD Y4, Y4, Y4 \
	VPXOR Y12, Y12, Y12 \
	VXORPS Y13, Y13, Y13 \
	VPXOR Y11, Y11, Y11

// MOMENTS_START(koff) sets up MOMENTS16 for x at SI: the shift k (at the
// frame offset koff) in Y0, zeroed accumulators, the -0 pattern in Y10,
// and min Y5 and max Y6 from the first elements.
#define MOMENTS_START(koff) \
	VBROADCASTSD koff(FP), Y0 \
	MOMENTS_INIT \
	MOVL $0x80000000, AX \
	VMOVD AX, X10 \
	VPBROADCASTD X10, Y10 \
	VMOVUPS (SI), Y5 \
	VMOVUPS (SI), Y6

// MOMENTS_STORE writes the accumulators (and min Y5, max Y6) to the
// momentsOut at R8 and returns.
#define MOMENTS_STORE \
	VADDPD Y2, Y1, Y1 \
	VADDPD Y4, Y3, Y3 \
	VMOVUPD Y1, 0(R8) \
	VMOVUPD Y3, 32(R8) \
	VMOVUPS Y5, 64(R8) \
	VMOVUPS Y6, 96(R8) \
	VMOVDQU Y12, 128(R8) \
	VMOVDQU Y11, 160(R8) \
	VZEROUPPER \
	RET

// func chunkAVX2(h *[denseLen]uint32, x []float32, k float64, simple bool, out *momentsOut)
// Fused pass over x (len a multiple of 16): the histogram counts of
// histAsm and the moments of momentsAVX2, plus the number of elements equal
// to zero (±0) in out.z and of -0 in out.nz. With simple set, exact zeros are counted in their
// own keys (0x0000/0x8000) instead of the rotating spare slots; that is
// cheaper when zeros are rare (the caller predicts it from the previous
// chunk) and equally correct.
TEXT ·chunkAVX2(SB), NOSPLIT, $0-56
	MOVQ h+0(FP), DI
	MOVQ x_base+8(FP), SI
	MOVQ x_len+16(FP), CX
	MOVQ out+48(FP), R8
	MOMENTS_START(k+32)
	MOVBLZX simple+40(FP), R9
	TESTQ R9, R9
	JNE simple16

// MOMENTS16 is split in parts that MOMENTS16R (the ReLU kernels) reuses:
// MOM_SCAN loads the 16 elements at SI into Y7, Y14 and updates min, max
// and the zero counts; MOM_SUM8(off) converts the 8 elements at off(SI)
// to float64 in Y8, Y9; MOM_ADD8 adds them (shifted by k) to the sums.
#define MOM_SCAN \
	VMOVUPS (SI), Y7 \
	VMOVUPS 32(SI), Y14 \
	VMINPS Y7, Y5, Y5 \
	VMAXPS Y7, Y6, Y6 \
	VMINPS Y14, Y5, Y5 \
	VMAXPS Y14, Y6, Y6 \
	VCMPPS $0, Y13, Y7, Y15 \
	VPSUBD Y15, Y12, Y12 \
	VCMPPS $0, Y13, Y14, Y15 \
	VPSUBD Y15, Y12, Y12 \
	VPCMPEQD Y10, Y7, Y15 \
	VPSUBD Y15, Y11, Y11 \
	VPCMPEQD Y10, Y14, Y15 \
	VPSUBD Y15, Y11, Y11

#define MOM_CVT8(off) \
	VCVTPS2PD off(SI), Y8 \
	VCVTPS2PD (off+16)(SI), Y9

#define MOM_ADD8 \
	VSUBPD Y0, Y8, Y8 \
	VSUBPD Y0, Y9, Y9 \
	VADDPD Y8, Y1, Y1 \
	VADDPD Y9, Y2, Y2 \
	VFMADD231PD Y8, Y8, Y3 \
	VFMADD231PD Y9, Y9, Y4

#define MOMENTS16 \
	MOM_SCAN \
	MOM_CVT8(0) \
	MOM_ADD8 \
	MOM_CVT8(32) \
	MOM_ADD8

#define SIMPLE(off) \
	MOVL off(SI), AX \
	SHRL $16, AX \
	INCL (DI)(AX*4)

// LANES16 and SIMPLES16 count the 16 elements at SI in stride-4 order, so
// that neighbours (often in the same bucket) are not incremented back to
// back; LANES16 sends exact zeros to per-lane spare slots.
#define LANES16 \
	LANE(0, 0) \
	LANE(16, 4) \
	LANE(32, 8) \
	LANE(48, 12) \
	LANE(4, 1) \
	LANE(20, 5) \
	LANE(36, 9) \
	LANE(52, 13) \
	LANE(8, 2) \
	LANE(24, 6) \
	LANE(40, 10) \
	LANE(56, 14) \
	LANE(12, 3) \
	LANE(28, 7) \
	LANE(44, 11) \
	LANE(60, 15)

#define SIMPLES16 \
	SIMPLE(0) \
	SIMPLE(16) \
	SIMPLE(32) \
	SIMPLE(48) \
	SIMPLE(4) \
	SIMPLE(20) \
	SIMPLE(36) \
	SIMPLE(52) \
	SIMPLE(8) \
	SIMPLE(24) \
	SIMPLE(40) \
	SIMPLE(56) \
	SIMPLE(12) \
	SIMPLE(28) \
	SIMPLE(44) \
	SIMPLE(60)

dummy16:
	CMPQ CX, $16
	JLT done
	MOMENTS16
	LANES16
	ADDQ $64, SI
	SUBQ $16, CX
	JMP dummy16

simple16:
	CMPQ CX, $16
	JLT done
	MOMENTS16
	SIMPLES16
	ADDQ $64, SI
	SUBQ $16, CX
	JMP simple16

done:
	MOMENTS_STORE

// func momentsAVX2(x []float32, k float64, out *momentsOut)
// The moments part of chunkAVX2 alone (no histogram); len(x) must be a
// multiple of 16.
TEXT ·momentsAVX2(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ out+32(FP), R8
	MOMENTS_START(k+24)

moments16:
	CMPQ CX, $16
	JLT mdone
	MOMENTS16
	ADDQ $64, SI
	SUBQ $16, CX
	JMP moments16

mdone:
	MOMENTS_STORE

// func reluMomentsAVX2(x []float32, k float64, out *momentsOut)
// momentsAVX2 of max(x, 0) (+0 for x <= 0) without writing it; for x free
// of NaN (a NaN would count as 0). len(x) must be a multiple of 16.
TEXT ·reluMomentsAVX2(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ out+32(FP), R8
	VBROADCASTSD k+24(FP), Y0
	MOMENTS_INIT
	VMOVUPS (SI), Y5
	VMAXPS Y13, Y5, Y5
	VMOVAPS Y5, Y6

rmoments16:
	CMPQ CX, $16
	JLT rmdone
	VMOVUPS (SI), Y7
	VMOVUPS 32(SI), Y14
	VMAXPS Y13, Y7, Y7
	VMAXPS Y13, Y14, Y14
	VMINPS Y7, Y5, Y5
	VMAXPS Y7, Y6, Y6
	VMINPS Y14, Y5, Y5
	VMAXPS Y14, Y6, Y6
	VCMPPS $0, Y13, Y7, Y15
	VPSUBD Y15, Y12, Y12
	VCMPPS $0, Y13, Y14, Y15
	VPSUBD Y15, Y12, Y12
	VCVTPS2PD X7, Y8
	VEXTRACTF128 $1, Y7, X9
	VCVTPS2PD X9, Y9
	MOM_ADD8
	VCVTPS2PD X14, Y8
	VEXTRACTF128 $1, Y14, X9
	VCVTPS2PD X9, Y9
	MOM_ADD8
	ADDQ $64, SI
	SUBQ $16, CX
	JMP rmoments16

rmdone:
	MOMENTS_STORE

// RELU8 adds max(x, 0) - ky of the 8 float64 values in Y8, Y9 (x
// converted exactly) to the ReLU sums Y17, Y18 and their squares to Y19,
// Y20 (AVX-512VL registers; Y16 = ky, Y13 = 0, Y21 and Y23 scratch).
#define RELU8 \
	VMAXPD Y13, Y8, Y21 \
	VMAXPD Y13, Y9, Y23 \
	VSUBPD Y16, Y21, Y21 \
	VSUBPD Y16, Y23, Y23 \
	VADDPD Y21, Y17, Y17 \
	VADDPD Y23, Y18, Y18 \
	VFMADD231PD Y21, Y21, Y19 \
	VFMADD231PD Y23, Y23, Y20

// MOMENTS16R is MOMENTS16 plus, for the ReLU of the same 16 elements, the
// moments (RELU8) and the count of elements < 0 in Y22.
#define MOMENTS16R \
	MOM_SCAN \
	VCMPPS $1, Y13, Y7, Y15 \
	VPSUBD Y15, Y22, Y22 \
	VCMPPS $1, Y13, Y14, Y15 \
	VPSUBD Y15, Y22, Y22 \
	MOM_CVT8(0) \
	RELU8 \
	MOM_ADD8 \
	MOM_CVT8(32) \
	RELU8 \
	MOM_ADD8

// RELU_INIT loads ky (at the frame offset given) into Y16 and zeroes the
// ReLU accumulators of MOMENTS16R; RELU_STORE writes them to the
// momentsOut at R10 (s, q and the counts of elements < 0 in z).
#define RELU_INIT(kyoff) \
	VBROADCASTSD kyoff(FP), Y16 \
	VPXORQ Y17, Y17, Y17 \
	VPXORQ Y18, Y18, Y18 \
	VPXORQ Y19, Y19, Y19 \
	VPXORQ Y20, Y20, Y20 \
	VPXORQ Y22, Y22, Y22

#define RELU_STORE \
	VADDPD Y18, Y17, Y17 \
	VADDPD Y20, Y19, Y19 \
	VMOVUPD Y17, 0(R10) \
	VMOVUPD Y19, 32(R10) \
	VMOVDQU32 Y22, 128(R10)

// func chunkReLUAVX512(h *[denseLen]uint32, x []float32, k, ky float64, simple bool, out, outy *momentsOut)
// chunkAVX2, plus in outy the sums of max(x, 0) - ky and their squares
// (s, q) and in outy.z the number of elements < 0, in the same pass (for a
// ReLU of x, whose other statistics follow from x's). Needs AVX-512VL for
// the extra registers. x must be free of NaN for outy to mean anything (a
// NaN counts as 0); len(x) must be a multiple of 16.
TEXT ·chunkReLUAVX512(SB), NOSPLIT, $0-72
	MOVQ h+0(FP), DI
	MOVQ x_base+8(FP), SI
	MOVQ x_len+16(FP), CX
	MOVQ out+56(FP), R8
	MOVQ outy+64(FP), R10
	RELU_INIT(ky+40)
	MOMENTS_START(k+32)
	MOVBLZX simple+48(FP), R9
	TESTQ R9, R9
	JNE rsimple16

rdummy16:
	CMPQ CX, $16
	JLT rdone
	MOMENTS16R
	LANES16
	ADDQ $64, SI
	SUBQ $16, CX
	JMP rdummy16

rsimple16:
	CMPQ CX, $16
	JLT rdone
	MOMENTS16R
	SIMPLES16
	ADDQ $64, SI
	SUBQ $16, CX
	JMP rsimple16

rdone:
	RELU_STORE
	MOMENTS_STORE

// func momentsReLUAVX512(x []float32, k, ky float64, out, outy *momentsOut)
// momentsAVX2 plus, in outy, what chunkReLUAVX512 puts there (the moments
// of max(x, 0) and the count of x < 0), in one pass without histogram.
// AVX-512VL; len(x) must be a multiple of 16.
TEXT ·momentsReLUAVX512(SB), NOSPLIT, $0-56
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ out+40(FP), R8
	MOVQ outy+48(FP), R10
	RELU_INIT(ky+32)
	MOMENTS_START(k+24)

mrmoments16:
	CMPQ CX, $16
	JLT mrdone
	MOMENTS16R
	ADDQ $64, SI
	SUBQ $16, CX
	JMP mrmoments16

mrdone:
	RELU_STORE
	MOMENTS_STORE
