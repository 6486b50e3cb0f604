package store

import "time"

// DefaultDir is the store directory the CLIs use when none is given.
const DefaultDir = "actrec-data"

// Compression selects the Arrow IPC body compression of new segments.
type Compression int

const (
	// None stores buffers uncompressed; reads are zero-copy from a memory map. The default.
	None Compression = iota
	// LZ4 compresses record batch bodies with LZ4 frames (fast, ~2x on activations).
	LZ4
	// Zstd compresses record batch bodies with Zstandard (slower, smaller).
	Zstd
)

func (c Compression) String() string {
	switch c {
	case None:
		return "none"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return "unknown"
}

// ParseCompression parses "none", "lz4" or "zstd".
func ParseCompression(s string) (Compression, bool) {
	switch s {
	case "none", "":
		return None, true
	case "lz4":
		return LZ4, true
	case "zstd":
		return Zstd, true
	}
	return None, false
}

// Options configure a Store opened with Open. The zero value of a field means its default;
// use DefaultOptions for the explicit defaults.
type Options struct {
	// Compression of new tensor segments. Default None (zero-copy reads). Readers handle any
	// codec. Stats segments are always compressed (LZ4 when this is None, else this codec):
	// their histogram columns shrink about 4x (10x with Zstd, at ~45 MB more writer memory)
	// and are never read zero-copy anyway.
	Compression Compression
	// SegmentMaxBytes: a segment is sealed and a new one begun once it holds at least this
	// many bytes. Default 256 MiB. Unit: bytes.
	SegmentMaxBytes int64
	// SegmentMaxAge: a segment older than this is sealed at the next flush. Default 10 min.
	SegmentMaxAge time.Duration
	// FlushInterval: a Writer flushes buffered rows, fsyncs and commits the index this often,
	// so a crash loses at most this much. Default 1 s. Negative disables the timer (only
	// explicit Flush/Close and MaxBufferBytes flush).
	FlushInterval time.Duration
	// MaxBufferBytes: a Writer flushes early once it buffers this many bytes of rows.
	// Default 64 MiB, at most 256 MiB. Unit: bytes.
	MaxBufferBytes int64
	// LockTimeout: how long an operation waits for the index lock held by another process
	// before failing with ErrLocked. Default 2 s.
	LockTimeout time.Duration
	// NoSync skips fsync of segments and index (tests and benchmarks only: a crash may lose
	// or corrupt committed data). Default false.
	NoSync bool
}

// DefaultOptions returns the defaults documented on each Options field.
func DefaultOptions() Options {
	return Options{
		Compression:     None,
		SegmentMaxBytes: 256 << 20,
		SegmentMaxAge:   10 * time.Minute,
		FlushInterval:   time.Second,
		MaxBufferBytes:  64 << 20,
		LockTimeout:     2 * time.Second,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.SegmentMaxBytes <= 0 {
		o.SegmentMaxBytes = d.SegmentMaxBytes
	}
	if o.SegmentMaxAge <= 0 {
		o.SegmentMaxAge = d.SegmentMaxAge
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = d.FlushInterval
	}
	if o.MaxBufferBytes <= 0 {
		o.MaxBufferBytes = d.MaxBufferBytes
	}
	o.MaxBufferBytes = min(o.MaxBufferBytes, maxChunkBytes)
	if o.LockTimeout <= 0 {
		o.LockTimeout = d.LockTimeout
	}
	return o
}

// segmentCompression is the codec of a new segment of the given kind (see Options.Compression).
func (o Options) segmentCompression(kind byte) Compression {
	if kind == kindStats && o.Compression == None {
		return LZ4
	}
	return o.Compression
}
