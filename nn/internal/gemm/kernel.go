package gemm

// genericKernels are the portable micro-kernels.
var genericKernels = microKernels{full: fullGeneric, edge: edgeGeneric}

func fullGeneric(tiles, cols, kc int, a []float32, aStep, rsA, csA int, b, c []float32, ldc int, alpha, beta float32) {
	for t := 0; t < tiles; t++ {
		kernelGeneric(mr, cols, kc, a[t*aStep:], rsA, csA, b, c[t*mr*ldc:], ldc, alpha, beta)
	}
}

func edgeGeneric(rows, cols, kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	kernelGeneric(rows, cols, kc, a, 1, mr, b, c, ldc, alpha, beta)
}

// kernelGeneric computes the first rows rows and cols columns of an mr×nr
// tile: c[i*ldc+j] = alpha*Σ_p a[i*rsA+p*csA]*b[p*nr+j] + beta*c[i*ldc+j].
func kernelGeneric(rows, cols, kc int, a []float32, rsA, csA int, b, c []float32, ldc int, alpha, beta float32) {
	a = a[:(rows-1)*rsA+(kc-1)*csA+1]
	b = b[:kc*nr]
	if cols < nr {
		var t [mr * nr]float32
		kernelGeneric(rows, nr, kc, a, rsA, csA, b, t[:], nr, 1, 0)
		storeTile(rows, cols, alpha, beta, t[:], c, ldc)
		return
	}
	for i := 0; i < rows; i++ {
		ar := a[i*rsA:]
		for h := 0; h < nr; h += 8 {
			var s0, s1, s2, s3, s4, s5, s6, s7 float32
			for p := 0; p < kc; p++ {
				ai := ar[p*csA]
				bb := b[p*nr+h : p*nr+h+8 : p*nr+h+8]
				s0 += ai * bb[0]
				s1 += ai * bb[1]
				s2 += ai * bb[2]
				s3 += ai * bb[3]
				s4 += ai * bb[4]
				s5 += ai * bb[5]
				s6 += ai * bb[6]
				s7 += ai * bb[7]
			}
			row := c[i*ldc+h : i*ldc+h+8 : i*ldc+h+8]
			if beta == 0 {
				row[0], row[1], row[2], row[3] = alpha*s0, alpha*s1, alpha*s2, alpha*s3
				row[4], row[5], row[6], row[7] = alpha*s4, alpha*s5, alpha*s6, alpha*s7
				continue
			}
			row[0] = alpha*s0 + beta*row[0]
			row[1] = alpha*s1 + beta*row[1]
			row[2] = alpha*s2 + beta*row[2]
			row[3] = alpha*s3 + beta*row[3]
			row[4] = alpha*s4 + beta*row[4]
			row[5] = alpha*s5 + beta*row[5]
			row[6] = alpha*s6 + beta*row[6]
			row[7] = alpha*s7 + beta*row[7]
		}
	}
}
