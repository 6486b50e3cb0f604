package store

// A bounds checker for index.db's pages, run before bbolt reads them (before a write-mode
// open too, which reads the freelist: openDB checks under a read-only open first). bbolt turns page ids
// and element offsets found in the file into pointers without checking them against the
// file (db.page indexes a 256 TiB array), so a flipped byte in a branch element's child id
// can make it form a pointer into this process's Go heap. Reading through it is harmless,
// but if the garbage collector finds that pointer on a stack it marks whatever object lies
// there, and a later sweep stops the process ("found pointer to free object"): no recover
// helps. So every page reachable from the meta page bbolt will use is checked here, in
// plain bounds-checked Go, whenever the file has changed: page ids below the high-water
// mark and inside the file, page headers, element offsets and sizes inside their page,
// inline buckets inside their value, the freelist's ids, each page reached once.
//
// Layout (go.etcd.io/bbolt v1.5, internal/common): a page starts with a 16-byte header
// (id u64, flags u16, count u16, overflow u32); meta pages 0 and 1 hold after it magic,
// version, page size, flags (u32 each), the root bucket (root page u64, sequence u64), the
// freelist page, the high-water page id and the txid (u64 each), then an FNV-64a checksum
// of the 56 bytes before it. Branch elements are (pos u32, ksize u32, child u64), leaf
// elements (flags u32, pos u32, ksize u32, vsize u32), 16 bytes each after the header; an
// element's key starts pos bytes after the element itself, its value right after the key.
// A leaf element with flag 1 is a bucket: its value starts with (root page u64, sequence
// u64), and a root of 0 means the bucket's page follows inline in the value.

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
)

const (
	bboltMagic       = 0xED0CDAED
	bboltVersion     = 2
	pageHeaderSize   = 16
	pageElemSize     = 16
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	noFreelist       = ^uint64(0)
	maxBucketDepth   = 64
)

// indexMeta is the part of a bbolt meta page the check needs.
type indexMeta struct {
	pageSize        uint64
	root, freelist  uint64
	highWater, txid uint64
}

// readIndexMeta returns the meta page bbolt uses: the valid one (magic, version, checksum)
// with the higher txid.
func readIndexMeta(b []byte) (indexMeta, error) {
	var best indexMeta
	found := false
	for i := 0; i < 2; i++ {
		m, err := parseMeta(b, i)
		if err != nil {
			continue
		}
		if !found || m.txid > best.txid {
			best, found = m, true
		}
	}
	if !found {
		return best, &CorruptionError{File: indexFile, Offset: 0, Err: fmt.Errorf("no valid meta page")}
	}
	return best, nil
}

func parseMeta(b []byte, i int) (indexMeta, error) {
	// meta page i is at i*pageSize; the page size is in the meta itself, so page 0's is
	// found at offset 0 and page 1 at the page size page 0 names or, if page 0 is not
	// valid, where bbolt looks for it
	if i == 0 {
		return parseMetaAt(b, 0)
	}
	if m0, err := parseMetaAt(b, 0); err == nil {
		return parseMetaAt(b, int64(m0.pageSize))
	}
	// as bbolt's getPageSizeFromSecondMeta: the first valid meta at 1 KiB << k
	for k := 0; k <= 14 && 1024<<k < len(b); k++ {
		if m, err := parseMetaAt(b, 1024<<k); err == nil {
			return m, nil
		}
	}
	return indexMeta{}, fmt.Errorf("no second meta page")
}

func validPageSize(ps uint64) bool {
	return ps >= 512 && ps <= 1<<20 && ps&(ps-1) == 0
}

func parseMetaAt(b []byte, off int64) (indexMeta, error) {
	const metaLen = 64
	if off < 0 || off+pageHeaderSize+metaLen > int64(len(b)) {
		return indexMeta{}, fmt.Errorf("meta page at %d: past the end", off)
	}
	m := b[off+pageHeaderSize : off+pageHeaderSize+metaLen]
	le := binary.LittleEndian
	if le.Uint32(m) != bboltMagic || le.Uint32(m[4:]) != bboltVersion {
		return indexMeta{}, fmt.Errorf("meta page at %d: bad magic or version", off)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return indexMeta{}, fmt.Errorf("meta page at %d: checksum", off)
	}
	md := indexMeta{pageSize: uint64(le.Uint32(m[8:])), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]),
		highWater: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}
	if !validPageSize(md.pageSize) {
		return indexMeta{}, fmt.Errorf("meta page at %d: page size %d", off, md.pageSize)
	}
	return md, nil
}

// pageChecker walks index.db's page graph.
type pageChecker struct {
	b       []byte
	m       indexMeta
	visited map[uint64]bool
}

func (c *pageChecker) corrupt(off int64, format string, args ...any) error {
	return &CorruptionError{File: indexFile, Offset: off, Err: fmt.Errorf("page check: "+format, args...)}
}

// page returns the bytes of page id (header and overflow pages included) after checking
// that it lies below the high-water mark and inside the file and has flags want.
func (c *pageChecker) page(id uint64, want uint16) ([]byte, error) {
	ps := c.m.pageSize
	if id < 2 || id >= c.m.highWater || id > uint64(len(c.b))/ps {
		return nil, c.corrupt(-1, "page id %d outside the file (high water %d, %d pages)", id, c.m.highWater, uint64(len(c.b))/ps)
	}
	off := id * ps
	if off+pageHeaderSize > uint64(len(c.b)) {
		return nil, c.corrupt(int64(off), "page %d past the end", id)
	}
	le := binary.LittleEndian
	h := c.b[off:]
	if got := le.Uint64(h); got != id {
		return nil, c.corrupt(int64(off), "page %d has id %d", id, got)
	}
	if f := le.Uint16(h[8:]); f != want {
		return nil, c.corrupt(int64(off), "page %d has flags %#x, want %#x", id, f, want)
	}
	over := uint64(le.Uint32(h[12:]))
	if id+over >= c.m.highWater || (id+over+1)*ps > uint64(len(c.b)) {
		return nil, c.corrupt(int64(off), "page %d with %d overflow pages past the end", id, over)
	}
	if c.visited[id] {
		return nil, c.corrupt(int64(off), "page %d reached twice", id)
	}
	for p := id; p <= id+over; p++ {
		c.visited[p] = true
	}
	return c.b[off : (id+over+1)*ps], nil
}

// elements checks the count of a branch or leaf page p (at file offset off) and calls fn
// with each element's fields and its key and value slices.
func (c *pageChecker) elements(p []byte, off int64, leaf bool, fn func(flags uint32, child uint64, key, val []byte) error) error {
	le := binary.LittleEndian
	n := int(le.Uint16(p[10:]))
	if n == 0 || pageHeaderSize+n*pageElemSize > len(p) {
		if n == 0 && leaf {
			return nil // an empty leaf (an empty bucket's root)
		}
		return c.corrupt(off, "%d elements do not fit a page of %d bytes", n, len(p))
	}
	for i := 0; i < n; i++ {
		e := pageHeaderSize + i*pageElemSize
		var flags, pos, ksize, vsize uint32
		var child uint64
		if leaf {
			flags, pos, ksize, vsize = le.Uint32(p[e:]), le.Uint32(p[e+4:]), le.Uint32(p[e+8:]), le.Uint32(p[e+12:])
		} else {
			pos, ksize, child = le.Uint32(p[e:]), le.Uint32(p[e+4:]), le.Uint64(p[e+8:])
		}
		start := uint64(e) + uint64(pos)
		end := start + uint64(ksize) + uint64(vsize)
		if end > uint64(len(p)) {
			return c.corrupt(off+int64(e), "element %d: key and value [%d, %d) outside the page's %d bytes", i, start, end, len(p))
		}
		if err := fn(flags, child, p[start:start+uint64(ksize)], p[start+uint64(ksize):end]); err != nil {
			return err
		}
	}
	return nil
}

// tree checks the B+tree rooted at page id (a bucket's pages).
func (c *pageChecker) tree(id uint64, depth int) error {
	if depth > maxBucketDepth {
		return c.corrupt(-1, "tree deeper than %d", maxBucketDepth)
	}
	ps := c.m.pageSize
	le := binary.LittleEndian
	if id < 2 || id >= uint64(len(c.b))/ps {
		return c.corrupt(-1, "page id %d outside the file", id)
	}
	flags := le.Uint16(c.b[id*ps+8:])
	if flags != branchPageFlag && flags != leafPageFlag {
		return c.corrupt(int64(id*ps), "page %d has flags %#x, want a branch or leaf page", id, flags)
	}
	p, err := c.page(id, flags)
	if err != nil {
		return err
	}
	if flags == branchPageFlag {
		return c.elements(p, int64(id*ps), false, func(_ uint32, child uint64, _, _ []byte) error {
			return c.tree(child, depth+1)
		})
	}
	return c.leaf(p, int64(id*ps), depth)
}

// leaf checks a leaf page's elements and the buckets they hold.
func (c *pageChecker) leaf(p []byte, off int64, depth int) error {
	return c.elements(p, off, true, func(flags uint32, _ uint64, _, val []byte) error {
		if flags&bucketLeafFlag == 0 {
			return nil
		}
		if len(val) < 16 {
			return c.corrupt(off, "bucket value of %d bytes", len(val))
		}
		root := binary.LittleEndian.Uint64(val)
		if root != 0 {
			return c.tree(root, depth+1)
		}
		inline := val[16:]
		le := binary.LittleEndian
		if len(inline) < pageHeaderSize || le.Uint64(inline) != 0 || le.Uint16(inline[8:]) != leafPageFlag || le.Uint32(inline[12:]) != 0 {
			return c.corrupt(off, "inline bucket without a leaf page")
		}
		if depth+1 > maxBucketDepth {
			return c.corrupt(off, "buckets nested deeper than %d", maxBucketDepth)
		}
		return c.leaf(inline, off, depth+1)
	})
}

// freelistPage checks the freelist page's ids.
func (c *pageChecker) freelistPage() error {
	if c.m.freelist == noFreelist {
		return nil
	}
	p, err := c.page(c.m.freelist, freelistPageFlag)
	if err != nil {
		return err
	}
	off := int64(c.m.freelist * c.m.pageSize)
	le := binary.LittleEndian
	n, start := uint64(le.Uint16(p[10:])), uint64(pageHeaderSize)
	if n == 0xffff {
		if len(p) < pageHeaderSize+8 {
			return c.corrupt(off, "freelist count past the page")
		}
		n, start = le.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if n > (uint64(len(p))-start)/8 {
		return c.corrupt(off, "freelist of %d ids in a page of %d bytes", n, len(p))
	}
	for i := uint64(0); i < n; i++ {
		id := le.Uint64(p[start+8*i:])
		if id < 2 || id >= c.m.highWater {
			return c.corrupt(off, "freelist id %d outside the file (high water %d)", id, c.m.highWater)
		}
		if c.visited[id] {
			return c.corrupt(off, "freelist id %d is in use or listed twice", id)
		}
		c.visited[id] = true
	}
	return nil
}

// checkIndexPages checks the page graph of the index file at path (see the top of this
// file) and returns the txid of the meta page it checked.
func checkIndexPages(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	m, err := readIndexMeta(b)
	if err != nil {
		return 0, err
	}
	c := &pageChecker{b: b, m: m, visited: map[uint64]bool{}}
	if err := c.tree(m.root, 0); err != nil {
		return 0, err
	}
	if err := c.freelistPage(); err != nil {
		return 0, err
	}
	return m.txid, nil
}

// indexTxid returns the txid of the meta page bbolt uses in the index file at path, reading
// only the two meta pages.
func indexTxid(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// 8 KiB hold both meta pages of 4 KiB pages (the common case); otherwise 128 KiB hold
	// them up to 64 KiB pages, and whatever bbolt's search for meta 1 (parseMeta) can find
	// in a file whose meta 0 is torn
	var m indexMeta
	for _, size := range []int{8 << 10, 128 << 10} {
		b := make([]byte, size)
		n, _ := f.ReadAt(b, 0)
		b = b[:n]
		m0, err0 := parseMetaAt(b, 0)
		if m, err = readIndexMeta(b); n < size || err0 == nil && 2*m0.pageSize <= uint64(n) {
			break
		}
	}
	return m.txid, err
}

// checkPages runs checkIndexPages on index.db unless the meta page's txid is the one last
// checked (or last written by this Store).
func (s *Store) checkPages(path string) error {
	txid, err := indexTxid(path)
	if err != nil {
		return err
	}
	s.pagesMu.Lock()
	defer s.pagesMu.Unlock()
	if s.pagesOK && s.pagesTxid == txid {
		return nil
	}
	if txid, err = checkIndexPages(path); err != nil {
		return err
	}
	s.pagesOK, s.pagesTxid = true, txid
	return nil
}

// pagesChecked reports whether index.db's current txid is the one last checked or written.
func (s *Store) pagesChecked(path string) bool {
	txid, err := indexTxid(path)
	if err != nil {
		return false
	}
	s.pagesMu.Lock()
	defer s.pagesMu.Unlock()
	return s.pagesOK && s.pagesTxid == txid
}

// pagesWritten records that this Store committed transaction txid: the pages it wrote need
// no check.
func (s *Store) pagesWritten(txid uint64) {
	s.pagesMu.Lock()
	s.pagesOK, s.pagesTxid = true, txid
	s.pagesMu.Unlock()
}
