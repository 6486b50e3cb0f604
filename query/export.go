package query

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/actrec/actrec/store"
)

// Export formats.
const (
	FormatArrow   = "arrow"   // Arrow IPC file(s), tensors as arrow.fixed_shape_tensor
	FormatParquet = "parquet" // Parquet file, or Hive-partitioned dataset directory
	FormatNPZ     = "npz"     // one (n, *shape) float32 array per layer + index arrays
	FormatNPY     = "npy"     // one layer as one (n, *shape) float32 array
	FormatCSV     = "csv"     // stats rows
	FormatJSONL   = "jsonl"   // stats rows, one JSON object per line
)

// Formats lists the export formats.
var Formats = []string{FormatArrow, FormatParquet, FormatNPZ, FormatNPY, FormatCSV, FormatJSONL}

// Errors of Export about its output path.
var (
	// ErrOutputExists: the output exists and ExportOptions.Force is false.
	ErrOutputExists = errors.New("output exists")
	// ErrOutputInStore: the output path is inside the store directory.
	ErrOutputInStore = errors.New("output path is inside the store directory")
	// ErrOneLayer: a single-layer output (npy, a .parquet or .arrow file)
	// was asked for several layers.
	ErrOneLayer = errors.New("output holds one layer")
)

// ExportOptions configure Export.
type ExportOptions struct {
	Format string // one of Formats
	// Out is the output path. For parquet, a path ending in ".parquet" is
	// one file (one layer); any other path is a directory holding a
	// Hive-partitioned dataset run=<run>/layer=<layer>/part-0.parquet,
	// which may already hold other runs. For arrow, a path ending in
	// ".arrow" is one file (one layer); any other path is a directory with
	// one <layer>.arrow per layer.
	Out     string
	Layers  []string         // default: all layers with data of the format's kind
	Batches store.BatchRange // default all
	// Force replaces an existing output (for a dataset directory: the
	// run's partition).
	Force bool
	// Progress, if set, is called with the tensor bytes written so far and
	// the total.
	Progress func(done, total int64)
}

// ExportResult describes what Export wrote.
type ExportResult struct {
	Run    string   `json:"run"`
	Format string   `json:"format"`
	Out    string   `json:"out"`
	Files  []string `json:"files"` // files written (relative to Out when Out is a directory)
	Layers []string `json:"layers"`
	Rows   int64    `json:"rows"`  // tensor rows or stats rows written
	Bytes  int64    `json:"bytes"` // tensor data bytes written
}

// Export writes the data of run to opts.Out in opts.Format. Tensor formats
// (arrow, parquet, npz, npy) export tensor rows; csv and jsonl export
// stats rows. A selection holding no rows of the format's kind is an error
// wrapping store.ErrNotFound that names the batch range and the batches the
// run has; nothing is written then. Outputs are written to a temporary name and renamed into
// place, so a failed export leaves no partial output. When ctx is done
// Export stops within a row, removes its temporary output and returns an
// error wrapping ctx.Err().
func Export(ctx context.Context, s *store.Store, run string, opts ExportOptions) (*ExportResult, error) {
	if !isFormat(opts.Format) {
		return nil, fmt.Errorf("unknown export format %q (want one of %s)", opts.Format, strings.Join(Formats, ", "))
	}
	if opts.Out == "" {
		return nil, errors.New("export: no output path")
	}
	all, err := layerSummaries(s, run)
	if err != nil {
		return nil, err
	}
	layers, err := findLayers(all, run, opts.Layers)
	if err != nil {
		return nil, err
	}
	if err := checkOutsideStore(s.Dir(), opts.Out); err != nil {
		return nil, err
	}
	res := &ExportResult{Run: run, Format: opts.Format, Out: opts.Out, Files: []string{}, Layers: []string{}}
	switch opts.Format {
	case FormatCSV, FormatJSONL:
		sel, err := statsSelection(s, run, layers, opts.Batches)
		if err != nil {
			return nil, err
		}
		return res, writeFileAtomic(opts.Out, opts.Force, func(f *os.File) error {
			return exportStats(ctx, s, run, sel, opts, f, res)
		})
	}
	var sel []store.LayerSummary
	for _, l := range layers {
		if l.TensorBatches > 0 {
			sel = append(sel, l)
		} else if len(opts.Layers) > 0 {
			return nil, fmt.Errorf("run %q layer %q has no tensors recorded (only stats): %w", run, l.Path, store.ErrNotFound)
		}
	}
	if len(sel) == 0 {
		return nil, emptySelection(s, run, layers, store.BatchRange{}, "tensors")
	}
	if bs, err := recordedBatches(s, run, sel, opts.Batches); err != nil {
		return nil, err
	} else if bs.tensRows == 0 {
		return nil, emptySelection(s, run, sel, opts.Batches, "tensors")
	}
	single := opts.Format == FormatNPY ||
		(opts.Format == FormatParquet && strings.HasSuffix(opts.Out, ".parquet")) ||
		(opts.Format == FormatArrow && strings.HasSuffix(opts.Out, ".arrow"))
	if single && len(sel) > 1 {
		names := make([]string, len(sel))
		for i, l := range sel {
			names[i] = l.Path
		}
		hint := ""
		if opts.Format != FormatNPY {
			hint = ", or give a directory"
		}
		return nil, fmt.Errorf("%w: %s output %s; choose a layer (layers with tensors: %s)%s",
			ErrOneLayer, opts.Format, opts.Out, strings.Join(names, ", "), hint)
	}
	// npy and npz put the row count in the header, before the data: list
	// the rows first. Arrow and Parquet stream without.
	plans, total, err := planTensors(ctx, s, run, sel, opts.Batches, opts.Format == FormatNPZ || opts.Format == FormatNPY)
	if err != nil {
		return nil, err
	}
	pr := &progress{fn: opts.Progress, total: total}
	for _, p := range plans {
		res.Layers = append(res.Layers, p.layer.Path)
	}
	defer func() { res.Rows, res.Bytes = pr.rows, pr.done }()
	switch {
	case opts.Format == FormatNPZ:
		res.Files = append(res.Files, filepath.Base(opts.Out))
		return res, writeFileAtomic(opts.Out, opts.Force, func(f *os.File) error {
			return exportNPZ(ctx, s, run, plans, opts.Batches, f, pr)
		})
	case opts.Format == FormatNPY:
		res.Files = append(res.Files, filepath.Base(opts.Out))
		return res, writeFileAtomic(opts.Out, opts.Force, func(f *os.File) error {
			return exportNPY(ctx, s, run, plans[0], opts.Batches, f, pr)
		})
	case single && opts.Format == FormatParquet:
		res.Files = append(res.Files, filepath.Base(opts.Out))
		return res, writeFileAtomic(opts.Out, opts.Force, func(f *os.File) error {
			return exportParquet(ctx, s, run, plans[0], opts.Batches, f, pr)
		})
	case single && opts.Format == FormatArrow:
		res.Files = append(res.Files, filepath.Base(opts.Out))
		return res, writeFileAtomic(opts.Out, opts.Force, func(f *os.File) error {
			return exportArrow(ctx, s, run, plans[0], opts.Batches, f, pr)
		})
	case opts.Format == FormatParquet:
		return res, exportDataset(opts.Out, fileName("run=", run, ""), opts.Force, func(dir string) error {
			for _, p := range plans {
				rel := filepath.Join(fileName("layer=", p.layer.Path, ""), "part-0.parquet")
				if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(rel)), 0o755); err != nil {
					return err
				}
				f, err := os.Create(filepath.Join(dir, rel))
				if err != nil {
					return err
				}
				err = exportParquet(ctx, s, run, p, opts.Batches, f, pr)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				res.Files = append(res.Files, filepath.Join(fileName("run=", run, ""), rel))
			}
			return nil
		})
	default: // arrow directory
		return res, exportDir(opts.Out, opts.Force, func(dir string) error {
			for _, p := range plans {
				name := fileName("", p.layer.Path, ".arrow")
				f, err := os.Create(filepath.Join(dir, name))
				if err != nil {
					return err
				}
				err = exportArrow(ctx, s, run, p, opts.Batches, f, pr)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				res.Files = append(res.Files, name)
			}
			return nil
		})
	}
}

// WriteStats writes the stats rows of run as csv or jsonl (opts.Format) to
// w, e.g. a pipe to DuckDB or pandas; opts.Out, opts.Force and
// opts.Progress are not used. Errors are those of Export; a failure part-way
// leaves what was written in w.
func WriteStats(ctx context.Context, s *store.Store, run string, opts ExportOptions, w io.Writer) (*ExportResult, error) {
	if opts.Format != FormatCSV && opts.Format != FormatJSONL {
		return nil, fmt.Errorf("WriteStats: format %q is not csv or jsonl", opts.Format)
	}
	all, err := layerSummaries(s, run)
	if err != nil {
		return nil, err
	}
	layers, err := findLayers(all, run, opts.Layers)
	if err != nil {
		return nil, err
	}
	sel, err := statsSelection(s, run, layers, opts.Batches)
	if err != nil {
		return nil, err
	}
	res := &ExportResult{Run: run, Format: opts.Format, Out: "-", Files: []string{}, Layers: []string{}}
	return res, exportStats(ctx, s, run, sel, opts, w, res)
}

// statsSelection returns the layers with stats, or an error naming what
// the run has when r selects no stats row.
func statsSelection(s *store.Store, run string, layers []store.LayerSummary, r store.BatchRange) ([]store.LayerSummary, error) {
	var sel []store.LayerSummary
	for _, l := range layers {
		if l.StatsBatches > 0 {
			sel = append(sel, l)
		}
	}
	if len(sel) == 0 {
		return nil, emptySelection(s, run, layers, store.BatchRange{}, "stats")
	}
	if bs, err := recordedBatches(s, run, sel, r); err != nil {
		return nil, err
	} else if bs.statsRows == 0 {
		return nil, emptySelection(s, run, sel, r, "stats")
	}
	return sel, nil
}

func isFormat(f string) bool {
	for _, x := range Formats {
		if x == f {
			return true
		}
	}
	return false
}

// tensorPlan is a layer to export with its rows, listed before writing so
// that shapes are known up front.
type tensorPlan struct {
	layer store.LayerSummary
	elems int
	keys  []keyRow
}

// planTensors returns the layers' plans and the total tensor bytes
// (estimated from the index when the rows are not listed).
func planTensors(ctx context.Context, s *store.Store, run string, layers []store.LayerSummary, r store.BatchRange, listRows bool) ([]tensorPlan, int64, error) {
	var plans []tensorPlan
	var total int64
	for _, l := range layers {
		elems := 1
		for _, d := range l.Shape {
			elems *= d
		}
		if !listRows {
			plans = append(plans, tensorPlan{layer: l, elems: elems})
			total += l.Bytes
			continue
		}
		keys, err := tensorKeys(ctx, s, run, l.Path, r)
		if err != nil {
			return nil, 0, err
		}
		plans = append(plans, tensorPlan{layer: l, elems: elems, keys: keys})
		total += int64(len(keys)) * int64(elems) * 4
	}
	return plans, total, nil
}

// progress counts the tensor rows and bytes written and reports them.
type progress struct {
	fn          func(done, total int64)
	done, total int64
	rows        int64
}

func (p *progress) add(rows, n int64) {
	p.rows += rows
	p.done += n
	if p.fn != nil {
		p.fn(p.done, max(p.total, p.done))
	}
}

// hiveEscape escapes a partition value or file name the way Hive and Spark
// do: characters that are special in paths or partition syntax, and
// control characters, become %XX. pyarrow and DuckDB decode it.
func hiveEscape(v string) string {
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte("\"#%'*/:=?\\{}[]^", c) >= 0 {
			fmt.Fprintf(&sb, "%%%02X", c)
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// maxFileName bounds the file and directory names an export creates, in
// bytes: under NAME_MAX (255) with room for the ".<name>.tmp-<n>" of the
// atomic renames.
const maxFileName = 200

// fileName returns prefix + hiveEscape(v) + suffix, shortened when longer
// than maxFileName: the escaped value is cut (never inside an escape) and
// "~" and 16 hex digits of the SHA-256 of v are appended, so that names
// stay distinct. (Names and layer paths may be 255 bytes, and escaping
// can triple them.) The exact value is always in the file's metadata
// (actrec.run, actrec.layer).
func fileName(prefix, v, suffix string) string {
	e := hiveEscape(v)
	if len(prefix)+len(e)+len(suffix) <= maxFileName {
		return prefix + e + suffix
	}
	sum := sha256.Sum256([]byte(v))
	tag := "~" + hex.EncodeToString(sum[:8])
	n := maxFileName - len(prefix) - len(suffix) - len(tag)
	for n > 0 && (e[n-1] == '%' || (n > 1 && e[n-2] == '%')) {
		n--
	}
	for n > 0 && !utf8.RuneStart(e[n]) {
		n--
	}
	return prefix + e[:n] + tag + suffix
}

// HiveUnescape reverses hiveEscape.
func HiveUnescape(v string) (string, error) { return url.PathUnescape(v) }

// CheckOutput is what every command that writes a file checks before doing
// any work: out must not be inside the store directory (ErrOutputInStore),
// nor a directory, nor an existing file unless force (ErrOutputExists).
func CheckOutput(storeDir, out string, force bool) error {
	if err := checkOutsideStore(storeDir, out); err != nil {
		return err
	}
	if fi, err := os.Stat(out); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("%w: %s is a directory; give a file name", ErrOutputExists, out)
		}
		if !force {
			return fmt.Errorf("%w: %s", ErrOutputExists, out)
		}
	}
	return nil
}

// WriteFile writes data to path through a temporary file in the same
// directory renamed into place (mode 0644), so that a failed write never
// leaves a truncated file; an existing path is refused unless force.
func WriteFile(path string, force bool, data []byte) error {
	err := writeFileAtomic(path, force, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// checkOutsideStore refuses an output path inside the store directory, as
// the operating system resolves it (physicallyInside).
func checkOutsideStore(storeDir, out string) error {
	if physicallyInside(storeDir, out) {
		return fmt.Errorf("%w: %s is inside %s", ErrOutputInStore, out, storeDir)
	}
	return nil
}

// physicallyInside reports whether p (if it is not an existing directory,
// the existing directory it is or would be created in) is dir or inside it, as
// the operating system walks p: symlinks and ".." are followed physically
// (filepath.Abs removes "lnk/.." as text, the kernel goes to lnk's
// target's parent). It compares dir with p's ancestors by device and inode.
func physicallyInside(dir, p string) bool {
	dfi, err := os.Stat(dir)
	if err != nil {
		return false
	}
	cur := p
	for {
		if fi, err := os.Stat(cur); err == nil && fi.IsDir() {
			break
		}
		i := strings.LastIndexByte(cur, os.PathSeparator)
		switch {
		case i < 0:
			cur = "."
		case i == 0:
			cur = string(os.PathSeparator)
		default:
			cur = cur[:i]
		}
		if cur == "." || cur == string(os.PathSeparator) {
			break
		}
	}
	for depth := 0; depth < 256; depth++ {
		fi, err := os.Stat(cur)
		if err != nil {
			return false
		}
		if os.SameFile(fi, dfi) {
			return true
		}
		up := cur + string(os.PathSeparator) + ".."
		ufi, err := os.Stat(up)
		if err != nil || os.SameFile(ufi, fi) { // the root
			return false
		}
		cur = up
	}
	return false
}

// writeFileAtomic writes path through a temporary file in the same
// directory, renamed into place on success.
func writeFileAtomic(path string, force bool, fn func(*os.File) error) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%w: %s", ErrOutputExists, path)
	} else if err == nil {
		if fi, _ := os.Stat(path); fi != nil && fi.IsDir() {
			return fmt.Errorf("%s is a directory; give a file name", path)
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o644) // CreateTemp makes 0600; exports are for sharing
	if err == nil {
		err = fn(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// exportDir writes a directory through a temporary sibling directory,
// renamed into place on success (an existing directory is replaced only
// with force).
func exportDir(path string, force bool, fn func(dir string) error) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%w: %s", ErrOutputExists, path)
	}
	parent := filepath.Dir(filepath.Clean(path))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes 0700
		os.RemoveAll(tmp)
		return err
	}
	if err := fn(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.RemoveAll(path); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// exportDataset writes the partition directory part (e.g. "run=x") of the
// dataset root, leaving other partitions of the root alone.
func exportDataset(root, part string, force bool, fn func(dir string) error) error {
	if fi, err := os.Stat(root); err == nil && !fi.IsDir() {
		return fmt.Errorf("%w: %s is a file, not a dataset directory", ErrOutputExists, root)
	}
	_, statErr := os.Stat(root)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	err := exportDir(filepath.Join(root, part), force, fn)
	if err != nil && statErr != nil {
		os.Remove(root) // created here, and empty after a failure
	}
	return err
}
