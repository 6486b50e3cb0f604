package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/actrec/actrec/query"
	"github.com/actrec/actrec/store"
)

// errNotStore: the store path exists but is not a store directory (exit
// status 4, like a store that is corrupt).
var errNotStore = errors.New("not a store directory")

// openStore opens the store read-only, with a clear error when there is
// none.
func openStore(dir string) (*store.Store, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no store at %s (set --store or ACTREC_STORE): %w", dir, store.ErrNotFound)
	}
	if err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("%s: %w (a store is a directory; set --store or ACTREC_STORE)", dir, errNotStore)
	}
	s, err := store.OpenReadOnly(dir)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return s, nil
}

// forceHint adds the flag to use to an error refusing an existing output.
func forceHint(err error) error {
	if errors.Is(err, query.ErrOutputExists) {
		return fmt.Errorf("%w (use --force to overwrite)", err)
	}
	return err
}

// writeJSON writes v as indented JSON with a trailing newline.
func writeJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns an aligned table writer; call Flush.
func newTable(out io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
}

// humanBytes formats a byte count (1024-based).
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// Schema names of the --json documents (see JSON.md). The version changes
// only when a field is removed or changes meaning.
const (
	schemaRuns   = "actquery.runs/v1"
	schemaLayers = "actquery.layers/v1"
	schemaStats  = "actquery.stats/v1"
	schemaShow   = "actquery.show/v1"
	schemaDiff   = "actquery.diff/v1"
	schemaCheck  = "actquery.check/v1"
	schemaExport = "actquery.export/v1"
)
