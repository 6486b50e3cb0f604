//go:build amd64 && !purego

#include "textflag.h"

// ReLU as VMAXPS(0, v) then + 0: VMAXPS returns its second source (v) when
// either is NaN or both are zeros, so NaN stays NaN; adding +0 turns -0
// into +0, as Go's max(v, 0) does, and changes nothing else.

// func biasReLUAVX2(x []float32, b float32, relu bool)
TEXT ·biasReLUAVX2(SB), NOSPLIT, $0-29
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS b+24(FP), Y1
	MOVBLZX      relu+28(FP), DX
	VXORPS       Y2, Y2, Y2
	SHRQ         $3, CX
	JZ           done
	TESTQ        DX, DX
	JZ           biasonly

reluloop:
	VMOVUPS (SI), Y0
	VADDPS  Y1, Y0, Y0
	VMAXPS  Y0, Y2, Y0
	VADDPS  Y2, Y0, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     reluloop
	JMP     done

biasonly:
	VMOVUPS (SI), Y0
	VADDPS  Y1, Y0, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     biasonly

done:
	VZEROUPPER
	RET

// func reluAVX2(dst, src []float32)
TEXT ·reluAVX2(SB), NOSPLIT, $0-48
	MOVQ   dst_base+0(FP), DI
	MOVQ   src_base+24(FP), SI
	MOVQ   src_len+32(FP), CX
	VXORPS Y2, Y2, Y2
	SHRQ   $3, CX
	JZ     rdone

rloop:
	VMOVUPS (SI), Y0
	VMAXPS  Y0, Y2, Y0
	VADDPS  Y2, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     rloop

rdone:
	VZEROUPPER
	RET
