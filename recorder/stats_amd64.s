#include "textflag.h"

// func histAsm(h *[denseLen]uint32, x []float32)
// Counts h[bits>>16]++ for every element; an element that is ±0 is counted
// in dummy slot zeroBase+(bits>>16)+lane instead (lane 0..7), see stats.go.
TEXT ·histAsm(SB), NOSPLIT, $0-32
	MOVQ h+0(FP), DI
	MOVQ x_base+8(FP), SI
	MOVQ x_len+16(FP), CX

// LANEKEY(off, j) puts into BX the counter of the element at off(SI):
// its key, or the zero spare slot zeroBase+key+j if it is ±0. LANE
// increments it.
#define LANEKEY(off, j) \
	MOVL off(SI), AX \
	MOVL AX, BX \
	SHRL $16, BX \
	LEAL (65536+j)(BX), DX \
	SHLL $1, AX \
	CMOVLEQ DX, BX

#define LANE(off, j) \
	LANEKEY(off, j) \
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

// The AVX-512 kernels (useAVX512) share one summation order, different
// from the AVX2 kernels': 32 elements per step in two blocks of 16 with
// their own accumulators (so that no add or FMA chain waits on the one
// before it: the AVX2 order is latency bound), reduced by M512_RED. All of
// them (moments, ReLU moments, with or without histogram) use the same
// macros, so that they agree to the last bit (TestChunkStatsReLU).
//
// Registers: Z0 k, Z12 ky, Z13 0.0, Z10 the -0 pattern, Z5 min, Z6 max,
// Z7 x, Z8 Z9 x as float64 (then x-k), Z11 Z14 the ReLU's; sums and
// squares of block A in Z1 Z2, Z3 Z4, of block B in Z15 Z16, Z17 Z18; the
// ReLU's in Z19 Z20, Z21 Z22 (A) and Z23 Z24, Z25 Z26 (B); counts of ±0
// in R11, of -0 in R12, of x < 0 in R13 (mask popcounts). The two-pass
// histogram (KEYS16) uses Z27-Z31, K4, K5 and R9; the one-pass loops AX,
// BX, DX.

// M512_SCAN(off, clamp) loads the 16 elements at off(SI) into Z7 (clamp
// may clamp them at 0), updates min, max and the zero counts and converts
// them to float64 in Z8, Z9.
#define M512_SCAN(off, clamp) \
	VMOVUPS off(SI), Z7 \
	clamp \
	VMINPS Z7, Z5, Z5 \
	VMAXPS Z7, Z6, Z6 \
	VCMPPS $0, Z13, Z7, K1 \
	KMOVW K1, AX \
	POPCNTL AX, AX \
	ADDQ AX, R11 \
	VPCMPEQD Z10, Z7, K2 \
	KMOVW K2, BX \
	POPCNTL BX, BX \
	ADDQ BX, R12 \
	VCVTPS2PD Y7, Z8 \
	VEXTRACTF64X4 $1, Z7, Y9 \
	VCVTPS2PD Y9, Z9

#define NOCLAMP
#define CLAMP0 VMAXPS Z13, Z7, Z7

// M512_ADD(s, t, q, r) adds x-k (Z8, Z9, shifted in place) to the sums s,
// t and their squares to q, r.
#define M512_ADD(s, t, q, r) \
	VSUBPD Z0, Z8, Z8 \
	VSUBPD Z0, Z9, Z9 \
	VADDPD Z8, s, s \
	VADDPD Z9, t, t \
	VFMADD231PD Z8, Z8, q \
	VFMADD231PD Z9, Z9, r

// M512_RELU(s, t, q, r) adds max(x, 0)-ky of Z8, Z9 (before M512_ADD) to
// the ReLU sums s, t and squares q, r, and counts x < 0 in R13.
#define M512_RELU(s, t, q, r) \
	VCMPPS $1, Z13, Z7, K3 \
	KMOVW K3, DX \
	POPCNTL DX, DX \
	ADDQ DX, R13 \
	VMAXPD Z13, Z8, Z11 \
	VMAXPD Z13, Z9, Z14 \
	VSUBPD Z12, Z11, Z11 \
	VSUBPD Z12, Z14, Z14 \
	VADDPD Z11, s, s \
	VADDPD Z14, t, t \
	VFMADD231PD Z11, Z11, q \
	VFMADD231PD Z14, Z14, r

// M512_START(koff, clamp) sets up the moments for x at SI: k from the frame
// offset koff, zeroed accumulators and counts, min and max from the first
// 16 elements.
#define M512_START(koff, clamp) \
	VBROADCASTSD koff(FP), Z0 \
	VPXORQ Z1, Z1, Z1 \
	VPXORQ Z2, Z2, Z2 \
	VPXORQ Z3, Z3, Z3 \
	VPXORQ Z4, Z4, Z4 \
	VPXORQ Z15, Z15, Z15 \
	VPXORQ Z16, Z16, Z16 \
	VPXORQ Z17, Z17, Z17 \
	VPXORQ Z18, Z18, Z18 \
	VPXORQ Z13, Z13, Z13 \
	XORQ R11, R11 \
	XORQ R12, R12 \
	MOVL $0x80000000, AX \
	VPBROADCASTD AX, Z10 \
	VMOVUPS (SI), Z7 \
	clamp \
	VMOVAPS Z7, Z5 \
	VMOVAPS Z7, Z6

// M512_RELU_START(kyoff) sets up the ReLU moments: ky from the frame
// offset kyoff, zeroed accumulators and count.
#define M512_RELU_START(kyoff) \
	VBROADCASTSD kyoff(FP), Z12 \
	VPXORQ Z19, Z19, Z19 \
	VPXORQ Z20, Z20, Z20 \
	VPXORQ Z21, Z21, Z21 \
	VPXORQ Z22, Z22, Z22 \
	VPXORQ Z23, Z23, Z23 \
	VPXORQ Z24, Z24, Z24 \
	VPXORQ Z25, Z25, Z25 \
	VPXORQ Z26, Z26, Z26 \
	XORQ R13, R13

// M512_RED(a, b, c, d, ya, off, base) stores (a+c) + (b+d), reduced from 8
// lanes to 4, at off(base); ya is a's ymm name.
#define M512_RED(a, b, c, d, ya, off, base) \
	VADDPD c, a, a \
	VADDPD d, b, b \
	VADDPD b, a, a \
	VEXTRACTF64X4 $1, a, Y8 \
	VADDPD Y8, ya, ya \
	VMOVUPD ya, off(base)

// M512_STORE writes the moments to the momentsOut at R8 in the AVX2
// kernels' layout (sums and squares in 4 lanes, min and max in 8, the
// counts in lane 0: the caller's momentsOut must be zero).
#define M512_STORE \
	M512_RED(Z1, Z2, Z15, Z16, Y1, 0, R8) \
	M512_RED(Z3, Z4, Z17, Z18, Y3, 32, R8) \
	VEXTRACTF64X4 $1, Z5, Y7 \
	VMINPS Y7, Y5, Y5 \
	VEXTRACTF64X4 $1, Z6, Y7 \
	VMAXPS Y7, Y6, Y6 \
	VMOVUPS Y5, 64(R8) \
	VMOVUPS Y6, 96(R8) \
	MOVL R11, 128(R8) \
	MOVL R12, 160(R8)

// M512_RELU_STORE writes the ReLU's sums, squares and count of x < 0 to
// the momentsOut at R10 (s, q, z[0]).
#define M512_RELU_STORE \
	M512_RED(Z19, Z20, Z23, Z24, Y19, 0, R10) \
	M512_RED(Z21, Z22, Z25, Z26, Y21, 32, R10) \
	MOVL R13, 128(R10)

// M512_STEP32 processes the 32 elements at SI (block A at 0, B at 64):
// moments, then, with ra and rb set to RELU_A and RELU_B, the ReLU's, and
// with hist set to LANES16, SIMPLES16 or KEYS16 the histogram; M512_STEP16 is
// block A alone. M512_LOOP runs them over the CX elements at SI (a
// multiple of 16), then falls through to the label done.
#define RELU_A M512_RELU(Z19, Z20, Z21, Z22)
#define RELU_B M512_RELU(Z23, Z24, Z25, Z26)
#define NORELU
#define NOHIST

#define M512_STEP32(clamp, ra, rb, hist) \
	M512_SCAN(0, clamp) \
	ra \
	M512_ADD(Z1, Z2, Z3, Z4) \
	M512_SCAN(64, clamp) \
	rb \
	M512_ADD(Z15, Z16, Z17, Z18) \
	hist \
	ADDQ $64, SI \
	hist \
	ADDQ $64, SI \
	SUBQ $32, CX

#define M512_STEP16(clamp, ra, hist) \
	M512_SCAN(0, clamp) \
	ra \
	M512_ADD(Z1, Z2, Z3, Z4) \
	hist

#define M512_LOOP(clamp, ra, rb, hist, l32, l16, done) \
l32: \
	CMPQ CX, $32 \
	JLT l16 \
	M512_STEP32(clamp, ra, rb, hist) \
	JMP l32 \
l16: \
	CMPQ CX, $16 \
	JLT done \
	M512_STEP16(clamp, ra, hist) \
done:

// func momentsAVX512(x []float32, k float64, out *momentsOut)
// momentsAVX2 in the AVX-512 order. out must be zero; len(x) must be a
// positive multiple of 16 (as for all the kernels below).
TEXT ·momentsAVX512(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ out+32(FP), R8
	M512_START(k+24, NOCLAMP)
	M512_LOOP(NOCLAMP, NORELU, NORELU, NOHIST, mo32, mo16, modone)
	M512_STORE
	VZEROUPPER
	RET

// func reluMomentsAVX512(x []float32, k float64, out *momentsOut)
// reluMomentsAVX2 (the moments of max(x, 0), NaN counting as 0) in the
// AVX-512 order.
TEXT ·reluMomentsAVX512(SB), NOSPLIT, $0-40
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ out+32(FP), R8
	M512_START(k+24, CLAMP0)
	M512_LOOP(CLAMP0, NORELU, NORELU, NOHIST, rmo32, rmo16, rmodone)
	M512_STORE
	VZEROUPPER
	RET

// func chunkAVX512(h *[denseLen]uint32, x []float32, k float64, simple bool, out *momentsOut)
// chunkAVX2 with the moments in the AVX-512 order (the histogram loops are
// the same; chunkKeysAVX512 is the faster one where values repeat).
TEXT ·chunkAVX512(SB), NOSPLIT, $0-56
	MOVQ h+0(FP), DI
	MOVQ x_base+8(FP), SI
	MOVQ x_len+16(FP), CX
	MOVQ out+48(FP), R8
	M512_START(k+32, NOCLAMP)
	MOVBLZX simple+40(FP), R9
	TESTQ R9, R9
	JNE csimple
	M512_LOOP(NOCLAMP, NORELU, NORELU, LANES16, cd32, cd16, cddone)
	JMP cdone

csimple:
	M512_LOOP(NOCLAMP, NORELU, NORELU, SIMPLES16, cs32, cs16, cdone)
	M512_STORE
	VZEROUPPER
	RET

// func chunkReLUAVX512(h *[denseLen]uint32, x []float32, k, ky float64, simple bool, out, outy *momentsOut)
// chunkAVX512, plus in outy the sums of max(x, 0) - ky and their squares
// (s, q) and in outy.z[0] the number of elements < 0, in the same pass (for
// a ReLU of x, whose other statistics follow from x's). x must be free of
// NaN for outy to mean anything (a NaN counts as 0). outy must be zero.
TEXT ·chunkReLUAVX512(SB), NOSPLIT, $0-72
	MOVQ h+0(FP), DI
	MOVQ x_base+8(FP), SI
	MOVQ x_len+16(FP), CX
	MOVQ out+56(FP), R8
	MOVQ outy+64(FP), R10
	M512_RELU_START(ky+40)
	M512_START(k+32, NOCLAMP)
	MOVBLZX simple+48(FP), R9
	TESTQ R9, R9
	JNE rsimple
	M512_LOOP(NOCLAMP, RELU_A, RELU_B, LANES16, rd32, rd16, rddone)
	JMP rdone

rsimple:
	M512_LOOP(NOCLAMP, RELU_A, RELU_B, SIMPLES16, rs32, rs16, rdone)
	M512_RELU_STORE
	M512_STORE
	VZEROUPPER
	RET

// func momentsReLUAVX512(x []float32, k, ky float64, out, outy *momentsOut)
// momentsAVX512 plus, in outy, what chunkReLUAVX512 puts there (the
// moments of max(x, 0) and the count of x < 0), without histogram.
TEXT ·momentsReLUAVX512(SB), NOSPLIT, $0-56
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ out+40(FP), R8
	MOVQ outy+48(FP), R10
	M512_RELU_START(ky+32)
	M512_START(k+24, NOCLAMP)
	M512_LOOP(NOCLAMP, RELU_A, RELU_B, NOHIST, mr32, mr16, mrdone)
	M512_RELU_STORE
	M512_STORE
	VZEROUPPER
	RET

// VHIST_START(hotoff) loads the hot key from the frame offset hotoff into
// Z28 and the spare-slot vectors hotBase+lane into Z29, zeroBase+lane into
// Z30.
#define VHIST_START(hotoff) \
	MOVL hotoff(FP), AX \
	VPBROADCASTD AX, Z28 \
	VMOVDQU32 hotlanes<>(SB), Z29 \
	VMOVDQU32 zerolanes<>(SB), Z30

DATA zerolanes<>+0(SB)/4, $0x10000
DATA zerolanes<>+4(SB)/4, $0x10001
DATA zerolanes<>+8(SB)/4, $0x10002
DATA zerolanes<>+12(SB)/4, $0x10003
DATA zerolanes<>+16(SB)/4, $0x10004
DATA zerolanes<>+20(SB)/4, $0x10005
DATA zerolanes<>+24(SB)/4, $0x10006
DATA zerolanes<>+28(SB)/4, $0x10007
DATA zerolanes<>+32(SB)/4, $0x10008
DATA zerolanes<>+36(SB)/4, $0x10009
DATA zerolanes<>+40(SB)/4, $0x1000a
DATA zerolanes<>+44(SB)/4, $0x1000b
DATA zerolanes<>+48(SB)/4, $0x1000c
DATA zerolanes<>+52(SB)/4, $0x1000d
DATA zerolanes<>+56(SB)/4, $0x1000e
DATA zerolanes<>+60(SB)/4, $0x1000f
GLOBL zerolanes<>(SB), RODATA|NOPTR, $64

DATA hotlanes<>+0(SB)/4, $0x14000
DATA hotlanes<>+4(SB)/4, $0x14001
DATA hotlanes<>+8(SB)/4, $0x14002
DATA hotlanes<>+12(SB)/4, $0x14003
DATA hotlanes<>+16(SB)/4, $0x14004
DATA hotlanes<>+20(SB)/4, $0x14005
DATA hotlanes<>+24(SB)/4, $0x14006
DATA hotlanes<>+28(SB)/4, $0x14007
DATA hotlanes<>+32(SB)/4, $0x14008
DATA hotlanes<>+36(SB)/4, $0x14009
DATA hotlanes<>+40(SB)/4, $0x1400a
DATA hotlanes<>+44(SB)/4, $0x1400b
DATA hotlanes<>+48(SB)/4, $0x1400c
DATA hotlanes<>+52(SB)/4, $0x1400d
DATA hotlanes<>+56(SB)/4, $0x1400e
DATA hotlanes<>+60(SB)/4, $0x1400f
GLOBL hotlanes<>(SB), RODATA|NOPTR, $64

// The two-pass AVX-512 histogram, for chunks with many equal values (±0,
// a hot key): KEYS16 stores at (R9) the counters of the 16 elements at SI
// (their keys; the zero spare slot zeroBase+key+lane for ±0; the hot spare
// slot hotBase+lane for the hot key in Z28; Z29 and Z30 as loaded by
// VHIST_START), computed with vector instructions in the moments' pass, and
// advances R9; KEYS_INC then increments the stored counters, 16 per step
// in stride-4 order. The counters go to the dense array's scratch area
// (keysBase, byte offset 0x70000, room for chunkLen), so that they are
// loaded long after they were stored (a scalar load right after a 64-byte
// vector store waits for the store to commit). On data without repeated
// values the one-pass SIMPLES16 loop is faster (BenchmarkKernelsL1).
#define KEYS16 \
	VMOVDQU32 (SI), Z27 \
	VPSLLD $1, Z27, Z31 \
	VPTESTNMD Z31, Z31, K4 \
	VPSRLD $16, Z27, Z27 \
	VPCMPEQD Z28, Z27, K5 \
	VPADDD Z30, Z27, K4, Z27 \
	VMOVDQA32 Z29, K5, Z27 \
	VMOVDQU32 Z27, (R9) \
	ADDQ $64, R9

#define KINC(off) \
	MOVL off(R9), AX \
	INCL (DI)(AX*4)

#define KEYS_INC(lenoff, loop, done) \
	MOVQ lenoff(FP), CX \
	LEAQ 0x70000(DI), R9 \
loop: \
	CMPQ CX, $16 \
	JLT done \
	KINC(0) \
	KINC(16) \
	KINC(32) \
	KINC(48) \
	KINC(4) \
	KINC(20) \
	KINC(36) \
	KINC(52) \
	KINC(8) \
	KINC(24) \
	KINC(40) \
	KINC(56) \
	KINC(12) \
	KINC(28) \
	KINC(44) \
	KINC(60) \
	ADDQ $64, R9 \
	SUBQ $16, CX \
	JMP loop \
done:

// func chunkKeysAVX512(h *[denseLen]uint32, x []float32, k float64, hot uint32, out *momentsOut)
// chunkAVX512 with the two-pass histogram; len(x) <= chunkLen.
TEXT ·chunkKeysAVX512(SB), NOSPLIT, $0-56
	MOVQ h+0(FP), DI
	MOVQ x_base+8(FP), SI
	MOVQ x_len+16(FP), CX
	MOVQ out+48(FP), R8
	VHIST_START(hot+40)
	LEAQ 0x70000(DI), R9
	M512_START(k+32, NOCLAMP)
	M512_LOOP(NOCLAMP, NORELU, NORELU, KEYS16, ck32, ck16, ckdone)
	M512_STORE
	KEYS_INC(x_len+16, ckinc, ckincdone)
	VZEROUPPER
	RET

// func chunkKeysReLUAVX512(h *[denseLen]uint32, x []float32, k, ky float64, hot uint32, out, outy *momentsOut)
// chunkReLUAVX512 with the two-pass histogram; len(x) <= chunkLen.
TEXT ·chunkKeysReLUAVX512(SB), NOSPLIT, $0-72
	MOVQ h+0(FP), DI
	MOVQ x_base+8(FP), SI
	MOVQ x_len+16(FP), CX
	MOVQ out+56(FP), R8
	MOVQ outy+64(FP), R10
	VHIST_START(hot+48)
	LEAQ 0x70000(DI), R9
	M512_RELU_START(ky+40)
	M512_START(k+32, NOCLAMP)
	M512_LOOP(NOCLAMP, RELU_A, RELU_B, KEYS16, crk32, crk16, crkdone)
	M512_RELU_STORE
	M512_STORE
	KEYS_INC(x_len+16, crkinc, crkincdone)
	VZEROUPPER
	RET
