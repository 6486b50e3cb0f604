package gemm

// packA copies rows ic:ic+mc, columns pc:pc+kc of op(A) into dst as
// ceil(mc/mr) panels of kc×mr values (element (i, p) of a panel at
// p*mr+i), zero-padding the last panel to mr rows.
func packA(trans bool, a []float32, lda, ic, pc, mc, kc int, dst []float32) {
	for i0 := 0; i0 < mc; i0 += mr {
		rows := min(mr, mc-i0)
		pan := dst[i0*kc : i0*kc+kc*mr]
		if trans {
			// op(A)[i][p] = A[p*lda+i]: row p of A holds the mr values of step p.
			for p := 0; p < kc; p++ {
				src := a[(pc+p)*lda+ic+i0:]
				d := pan[p*mr : p*mr+mr]
				if rows == mr {
					d[0], d[1], d[2], d[3], d[4], d[5] = src[0], src[1], src[2], src[3], src[4], src[5]
					continue
				}
				n := copy(d[:rows], src)
				clear(d[n:])
			}
			continue
		}
		if rows == mr {
			base := (ic+i0)*lda + pc
			r0 := a[base : base+kc]
			r1 := a[base+lda : base+lda+kc]
			r2 := a[base+2*lda : base+2*lda+kc]
			r3 := a[base+3*lda : base+3*lda+kc]
			r4 := a[base+4*lda : base+4*lda+kc]
			r5 := a[base+5*lda : base+5*lda+kc]
			for p := range r0 {
				d := pan[p*mr : p*mr+mr : p*mr+mr]
				d[0], d[1], d[2], d[3], d[4], d[5] = r0[p], r1[p], r2[p], r3[p], r4[p], r5[p]
			}
			continue
		}
		clear(pan)
		for i := 0; i < rows; i++ {
			row := a[(ic+i0+i)*lda+pc : (ic+i0+i)*lda+pc+kc]
			for p, v := range row {
				pan[p*mr+i] = v
			}
		}
	}
}

// packB copies rows pc:pc+kc, columns jc:jc+nc of op(B) into dst as
// ceil(nc/nr) panels of kc×nr values (element (p, j) of a panel at
// p*nr+j), zero-padding the last panel to nr columns.
func packB(trans bool, b []float32, ldb, pc, jc, kc, nc int, dst []float32) {
	for j0 := 0; j0 < nc; j0 += nr {
		cols := min(nr, nc-j0)
		pan := dst[j0*kc : j0*kc+kc*nr]
		if !trans {
			// op(B) = B: row p of B holds the nr values of step p.
			off := pc*ldb + jc + j0
			if cols == nr {
				packB16Full(kc, b[off:], ldb, pan)
				continue
			}
			for p := 0; p < kc; p++ {
				d := pan[p*nr : p*nr+nr]
				n := copy(d[:cols], b[off:off+cols])
				clear(d[n:])
				off += ldb
			}
			continue
		}
		// op(B)[p][j] = B[j*ldb+p]: row j of B is column j of the panel.
		off := (jc+j0)*ldb + pc
		if cols == nr {
			packBT16Full(kc, b[off:], ldb, pan)
			continue
		}
		clear(pan)
		packBTGo(kc, b[off:], ldb, cols, pan)
	}
}

// packB16Go is the portable packB16Full.
func packB16Go(kc int, b []float32, ldb int, dst []float32) {
	off := 0
	for p := 0; p < kc; p++ {
		s := b[off : off+nr : off+nr]
		d := dst[p*nr : p*nr+nr : p*nr+nr]
		d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7] = s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
		d[8], d[9], d[10], d[11], d[12], d[13], d[14], d[15] = s[8], s[9], s[10], s[11], s[12], s[13], s[14], s[15]
		off += ldb
	}
}

// packBTGo sets dst[p*nr+j] = b[j*ldb+p] for p < kc, j < cols.
func packBTGo(kc int, b []float32, ldb, cols int, dst []float32) {
	for j := 0; j < cols; j++ {
		row := b[j*ldb : j*ldb+kc]
		for p, v := range row {
			dst[p*nr+j] = v
		}
	}
}
