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
		// Four columns at a time keeps the accumulators, the A value and
		// the products in registers.
		for h := 0; h < nr; h += 4 {
			var s0, s1, s2, s3 float32
			bb := b[h:]
			q := 0
			for p := 0; p < kc; p++ {
				ai := ar[q]
				v := bb[p*nr : p*nr+4 : p*nr+4]
				s0 += ai * v[0]
				s1 += ai * v[1]
				s2 += ai * v[2]
				s3 += ai * v[3]
				q += csA
			}
			row := c[i*ldc+h : i*ldc+h+4 : i*ldc+h+4]
			if beta == 0 {
				row[0], row[1], row[2], row[3] = alpha*s0, alpha*s1, alpha*s2, alpha*s3
				continue
			}
			row[0] = alpha*s0 + beta*row[0]
			row[1] = alpha*s1 + beta*row[1]
			row[2] = alpha*s2 + beta*row[2]
			row[3] = alpha*s3 + beta*row[3]
		}
	}
}
