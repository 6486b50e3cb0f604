// Package gemm provides single-precision general matrix multiplication
// (SGEMM) for the nn runtime's Conv2d (im2col + GEMM) and Linear layers.
//
// Matrices are row-major, with the argument conventions of gonum's
// blas32.Implementation.Sgemm. The implementation follows the Goto/BLIS
// scheme: op(B) is packed into panels of nr columns, op(A) into panels of mr
// rows, blocked by kc/mc/nc for the caches, and an mr×nr micro-kernel
// (AVX2+FMA assembly on amd64 when the CPU has it, pure Go otherwise)
// computes each tile of C.
//
// All functions are safe for concurrent use as long as the C matrices of
// concurrent calls do not overlap. Inputs A and B are never modified.
// Invalid arguments (negative sizes, too small leading dimensions, too short
// slices) are programmer errors and panic, as in gonum's BLAS.
//
// Results are deterministic: for given arguments the same bits come out on
// every call, and SgemmParallel produces the same bits as Sgemm.
package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Micro-kernel tile and cache blocking sizes (float32 elements).
const (
	mr = 6  // rows of a micro-tile (A panel height)
	nr = 16 // columns of a micro-tile (B panel width)

	kcBlock = 256  // depth of a packed block: an nr-wide B panel (16 KiB) stays in L1
	mcBlock = 144  // rows of packed A per block (144 KiB at kcBlock): stays in L2
	ncBlock = 4096 // columns of packed B per block (4 MiB at kcBlock): stays in L3
)

// microKernels compute tiles of C = alpha*A*B + beta*C from an A panel
// (element (i, p) at a[i*rsA+p*csA]) and a packed B panel (element (p, j)
// at b[p*nr+j]), over p < kc. When beta == 0, C is not read.
type microKernels struct {
	// full computes tiles consecutive full mr×nr tiles: tile t reads the A
	// panel at a[t*aStep:] and writes c[t*mr*ldc:].
	full func(tiles, kc int, a []float32, aStep, rsA, csA int, b, c []float32, ldc int, alpha, beta float32)
	// edge computes and writes the first rows (< mr) rows of a tile whose A
	// panel is packed (rsA = 1, csA = mr).
	edge func(rows, kc int, a, b, c []float32, ldc int, alpha, beta float32)
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices,
// where op(X) is X, or its transpose if transX is set. op(A) is m×k, op(B)
// is k×n and C is m×n. When beta == 0, C is not read (NaNs in it vanish).
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	sgemm(defaultKernels(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SgemmParallel is Sgemm splitting the work over up to threads goroutines
// (threads <= 0 means runtime.GOMAXPROCS(0)). Small products run on the
// calling goroutine. The result is bit-identical to Sgemm's.
func SgemmParallel(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	sgemmParallel(defaultKernels(), threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Parallel split parameters (m*n*k counts multiply-adds).
const (
	// minParallelWork: below it SgemmParallel stays on the calling
	// goroutine; starting goroutines costs more than it saves.
	minParallelWork = 64 * 64 * 64
	// chunksPerThread: C is cut into up to this many blocks per goroutine,
	// taken from a shared counter, so a goroutine whose core is busy with
	// other work holds up at most a small block (the machine may be shared).
	chunksPerThread = 4
	// minChunkWork is the least work per block.
	minChunkWork = 32 * 64 * 64
)

func sgemmParallel(kern microKernels, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	// C is cut into a tm×tn grid of independent blocks whose boundaries lie
	// on the serial tile grid (multiples of mr rows, nr columns), so every
	// element of C sees exactly the same operations as in Sgemm.
	mTiles := (m + mr - 1) / mr
	nTiles := (n + nr - 1) / nr
	work := m * n * k
	if threads <= 1 || work < minParallelWork || mTiles*nTiles < 2 {
		sgemm(kern, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	chunks := min(threads*chunksPerThread, max(threads, work/minChunkWork), mTiles*nTiles)
	tm, tn := splitGrid(chunks, mTiles, nTiles)
	total := tm * tn
	var next atomic.Int64
	worker := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= total {
				return
			}
			bi, bj := i/tn, i%tn
			i0 := bi * mTiles / tm * mr
			i1 := min((bi+1)*mTiles/tm*mr, m)
			j0 := bj * nTiles / tn * nr
			j1 := min((bj+1)*nTiles/tn*nr, n)
			// Sub-matrices of op(A), op(B) and C for rows i0:i1, columns j0:j1.
			aOff := i0 * lda
			if transA {
				aOff = i0
			}
			bOff := j0
			if transB {
				bOff = j0 * ldb
			}
			sgemm(kern, transA, transB, i1-i0, j1-j0, k, alpha, a[aOff:], lda, b[bOff:], ldb, beta, c[i0*ldc+j0:], ldc)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < min(threads, total); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker()
		}()
	}
	worker()
	wg.Wait()
}

// splitGrid picks tm*tn <= threads blocks for an mTiles×nTiles tile grid,
// minimising the largest block (in tiles), preferring splits along n (a
// split along m makes every block pack the same rows of B again).
func splitGrid(threads, mTiles, nTiles int) (tm, tn int) {
	best := -1
	for t := threads; t >= 1 && best < 0; t-- {
		for x := 1; x <= t; x++ {
			if t%x != 0 {
				continue
			}
			y := t / x // x blocks along m, y along n
			if x > mTiles || y > nTiles {
				continue
			}
			cost := ((mTiles + x - 1) / x) * ((nTiles + y - 1) / y)
			if best < 0 || cost < best || (cost == best && y > tn) {
				best, tm, tn = cost, x, y
			}
		}
	}
	return tm, tn
}

// bufPool holds *[]float32 scratch buffers for packed panels.
var bufPool sync.Pool

func getBuf(size int) *[]float32 {
	if p, ok := bufPool.Get().(*[]float32); ok && cap(*p) >= size {
		*p = (*p)[:size]
		return p
	}
	s := make([]float32, size)
	return &s
}

func sgemm(kern microKernels, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	// Split k into equal blocks of at most kcBlock: a short last block would
	// cost a full extra pass over C.
	kcMax := (k + (k+kcBlock-1)/kcBlock - 1) / ((k + kcBlock - 1) / kcBlock)
	mcMax := min(roundUp(m, mr), mcBlock)
	ncMax := min(roundUp(n, nr), ncBlock)
	// A untransposed is read in place (its rows are contiguous in p), except
	// a last panel of fewer than mr rows; Aᵀ is packed.
	apLen := mcMax * kcMax
	if !transA {
		apLen = mr * kcMax
	}
	bufp := getBuf(apLen + kcMax*ncMax + mr*nr)
	buf := *bufp
	ap := buf[:apLen]
	bp := buf[apLen : apLen+kcMax*ncMax]
	tmp := buf[apLen+kcMax*ncMax:]

	for jc := 0; jc < n; jc += ncBlock {
		nc := min(ncBlock, n-jc)
		for pc := 0; pc < k; pc += kcMax {
			kc := min(kcMax, k-pc)
			packB(transB, b, ldb, pc, jc, kc, nc, bp)
			bet := beta
			if pc > 0 {
				bet = 1
			}
			for ic := 0; ic < m; ic += mcBlock {
				mc := min(mcBlock, m-ic)
				full := mc / mr * mr
				blk := aBlock{a: ap, step: kc, rs: 1, cs: mr}
				if transA {
					packA(true, a, lda, ic, pc, mc, kc, ap)
					blk.edge = ap[full*kc:]
				} else {
					blk = aBlock{a: a[ic*lda+pc:], step: lda, rs: lda, cs: 1}
					if full < mc {
						packA(false, a, lda, ic+full, pc, mc-full, kc, ap)
						blk.edge = ap
					}
				}
				macroKernel(kern, mc, nc, kc, alpha, bet, blk, bp, c[ic*ldc+jc:], ldc, tmp)
			}
		}
	}
	bufPool.Put(bufp)
}

// aBlock locates the mr-row panels of an mc×kc block of op(A): the panel
// of rows ir..ir+mr starts at a[ir*step], its element (i, p) at i*rs+p*cs.
// A last panel of fewer than mr rows is at edge instead, packed and
// zero-padded (rs = 1, cs = mr).
type aBlock struct {
	a            []float32
	step, rs, cs int
	edge         []float32
}

// macroKernel multiplies an mc×kc block of A by a packed kc×nc block of B
// into the mc×nc block of C at c.
func macroKernel(kern microKernels, mc, nc, kc int, alpha, beta float32, blk aBlock, bp, c []float32, ldc int, tmp []float32) {
	tiles := mc / mr
	rows := mc - tiles*mr // of the edge panel
	aStep := mr * blk.step
	for jr := 0; jr < nc; jr += nr {
		bpan := bp[jr*kc : (jr+nr)*kc]
		if nn := nc - jr; nn < nr {
			// Last, partial column panel: compute each tile into tmp.
			for t := 0; t < tiles; t++ {
				kern.full(1, kc, blk.a[t*aStep:], aStep, blk.rs, blk.cs, bpan, tmp, nr, 1, 0)
				storeTile(mr, nn, alpha, beta, tmp, c[t*mr*ldc+jr:], ldc)
			}
			if rows > 0 {
				kern.edge(rows, kc, blk.edge, bpan, tmp, nr, 1, 0)
				storeTile(rows, nn, alpha, beta, tmp, c[tiles*mr*ldc+jr:], ldc)
			}
			continue
		}
		if tiles > 0 {
			kern.full(tiles, kc, blk.a, aStep, blk.rs, blk.cs, bpan, c[jr:], ldc, alpha, beta)
		}
		if rows > 0 {
			kern.edge(rows, kc, blk.edge, bpan, c[tiles*mr*ldc+jr:], ldc, alpha, beta)
		}
	}
}

// storeTile writes the top-left mm×nn part of the mr×nr tile t into C.
func storeTile(mm, nn int, alpha, beta float32, t, c []float32, ldc int) {
	for i := 0; i < mm; i++ {
		row := c[i*ldc : i*ldc+nn]
		src := t[i*nr : i*nr+nn]
		if beta == 0 {
			for j := range row {
				row[j] = alpha * src[j]
			}
			continue
		}
		for j := range row {
			row[j] = alpha*src[j] + beta*row[j]
		}
	}
}

// scaleC sets C = beta*C (C = 0 when beta == 0, without reading C).
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

func roundUp(x, to int) int { return (x + to - 1) / to * to }
