package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/actrec/actrec/query/plot"
	"github.com/actrec/actrec/store"
	"golang.org/x/net/html"
)

var fixedNow = func() time.Time { return time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC) }

func writeReport(t *testing.T, s *store.Store, run string, opts Options) []byte {
	t.Helper()
	opts.Now = fixedNow
	var buf bytes.Buffer
	if err := Write(t.Context(), &buf, s, run, opts); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// doc is what the tests look for in a parsed report.
type doc struct {
	elements map[string]int
	texts    []string
	refs     []string // every src/href/xlink:href/... attribute value
	styles   []string // <style> contents and style attributes
}

// referenceAttrs are the HTML/SVG attributes that make a browser fetch or navigate.
var referenceAttrs = map[string]bool{
	"src": true, "href": true, "srcset": true, "poster": true, "data": true, "action": true,
	"formaction": true, "background": true, "manifest": true, "longdesc": true, "cite": true,
	"codebase": true, "ping": true, "icon": true, "xlink:href": true,
}

func parseHTML(t *testing.T, b []byte) doc {
	t.Helper()
	d := doc{elements: map[string]int{}}
	z := html.NewTokenizer(bytes.NewReader(b))
	inStyle := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err().Error() != "EOF" {
				t.Fatalf("HTML tokenizer: %v", z.Err())
			}
			return d
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			d.elements[tok.Data]++
			inStyle = tok.Data == "style" && tt == html.StartTagToken
			for _, a := range tok.Attr {
				key := a.Key
				if a.Namespace != "" {
					key = a.Namespace + ":" + a.Key
				}
				if referenceAttrs[strings.ToLower(key)] || strings.HasSuffix(strings.ToLower(key), ":href") {
					d.refs = append(d.refs, a.Val)
				}
				if strings.ToLower(a.Key) == "style" {
					d.styles = append(d.styles, a.Val)
				}
			}
		case html.EndTagToken:
			inStyle = false
		case html.TextToken:
			txt := string(z.Text())
			if inStyle {
				d.styles = append(d.styles, txt)
			} else if s := strings.TrimSpace(txt); s != "" {
				d.texts = append(d.texts, s)
			}
		}
	}
}

var cssURL = regexp.MustCompile(`(?i)url\(\s*['"]?([^'")\s]*)`)

// selfContainedProblems lists every way the document could reach outside itself: a
// reference that is not inline (data:) or a fragment (#id), an element that loads code or
// frames, a CSS url(), @import or @font-face.
func selfContainedProblems(b []byte, d doc) []string {
	var p []string
	for _, el := range []string{"script", "link", "iframe", "object", "embed", "base", "frame", "audio", "video", "source"} {
		if d.elements[el] > 0 {
			p = append(p, fmt.Sprintf("%d <%s> elements", d.elements[el], el))
		}
	}
	for _, r := range d.refs {
		r = strings.TrimSpace(r)
		if !strings.HasPrefix(r, "#") && !strings.HasPrefix(r, "data:") {
			p = append(p, fmt.Sprintf("reference to outside the file: %.80q", r))
		}
	}
	for _, s := range d.styles {
		for _, m := range cssURL.FindAllStringSubmatch(s, -1) {
			if !strings.HasPrefix(m[1], "data:") && !strings.HasPrefix(m[1], "#") {
				p = append(p, fmt.Sprintf("CSS url() to outside the file: %q", m[0]))
			}
		}
		if strings.Contains(strings.ToLower(s), "@import") || strings.Contains(strings.ToLower(s), "@font-face") {
			p = append(p, fmt.Sprintf("CSS imports or loads fonts: %.120q", s))
		}
	}
	for _, bad := range []string{`href="http`, `url(http`, `src="http`, `href="//`, `src="//`} {
		if bytes.Contains(b, []byte(bad)) {
			p = append(p, fmt.Sprintf("contains %q", bad))
		}
	}
	return p
}

func checkSelfContained(t *testing.T, b []byte, d doc) {
	t.Helper()
	for _, p := range selfContainedProblems(b, d) {
		t.Errorf("report not self-contained: %s", p)
	}
	inline := 0
	for _, r := range d.refs {
		if strings.HasPrefix(r, "data:image/png;base64,") {
			inline++
		}
	}
	if d.elements["image"] == 0 || inline < d.elements["image"] {
		t.Errorf("%d <image> elements but %d inline PNG references", d.elements["image"], inline)
	}
}

// TestSelfContainedCheckFails makes sure the check above can fail.
func TestSelfContainedCheckFails(t *testing.T) {
	for name, page := range map[string]string{
		"script":     `<html><body><script src="x.js"></script></body></html>`,
		"inline js":  `<html><body><script>fetch("x")</script></body></html>`,
		"stylesheet": `<html><head><link rel="stylesheet" href="s.css"></head></html>`,
		"image":      `<html><body><img src="https://example.com/a.png"></body></html>`,
		"svg image":  `<html><body><svg><image xlink:href="a.png"/></svg></body></html>`,
		"css url":    `<html><head><style>body{background:url(http://x/a.png)}</style></head></html>`,
		"font":       `<html><head><style>@font-face{font-family:x;src:url(x.woff)}</style></head></html>`,
		"attr style": `<html><body><div style="background:url('a.png')"></div></body></html>`,
		"link":       `<html><body><a href="https://example.com/">x</a></body></html>`,
	} {
		b := []byte(page)
		if p := selfContainedProblems(b, parseHTML(t, b)); len(p) == 0 {
			t.Errorf("%s: %s passes the self-containment check", name, page)
		}
	}
	ok := []byte(`<html><body><a href="#x">x</a><img src="data:image/png;base64,AA=="><svg><image xlink:href="data:image/png;base64,AA=="/></svg></body></html>`)
	if p := selfContainedProblems(ok, parseHTML(t, ok)); len(p) != 0 {
		t.Errorf("inline page fails the check: %v", p)
	}
}

func hasText(d doc, sub string) bool {
	for _, s := range d.texts {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestReportTwoRunsSelfContained(t *testing.T) {
	dir := buildStore(t, testRun{name: "fp32", batches: 12}, testRun{name: "int8", noise: 0.05, extra: true, batches: 12})
	s := openStore(t, dir)
	minSQNR := 40.0
	opts := Options{RunB: "fp32"}
	opts.Diff.MinSQNR = &minSQNR
	b := writeReport(t, s, "int8", opts)
	d := parseHTML(t, b)
	checkSelfContained(t, b, d)

	// Provenance of both runs, layers table, diff with the first diverging layer.
	for _, want := range []string{"actrec report: int8 vs fp32", "recipe-cnn", "sha256:0123abcd",
		"fashion-mnist t10k[0:64]", "testhost", "go1.26.8", "complete", "dropped batches",
		"precision=int8", "Recorder configuration of both runs (identical)", "First diverging layer:", "fc1",
		"Layers only in int8: softmax.", "first batch beyond tol.", "Conv2d", "[4×8×8]", "stats+tensors", "FAIL"} {
		if !hasText(d, want) {
			t.Errorf("report has no text %q", want)
		}
	}
	// Per-layer summaries; relu1 has one NaN in batches 3 and 8 of 12, flagged.
	if d.elements["table"] != 3+4 {
		t.Errorf("%d tables, want provenance, diff, layers and one summary per layer (4)", d.elements["table"])
	}
	if !bytes.Contains(b, []byte(`<td class="num bad">2</td>`)) {
		t.Errorf("relu1's 2 NaNs are not flagged in its summary")
	}
	// Tag values are escaped, not markup.
	if d.elements["b"] > 0 || !hasText(d, "note=<b>not bold</b>") {
		t.Errorf("tag value was not escaped")
	}
	// Charts: diff chart + per layer (percentiles, mean/std, [NaN/Inf], hist per run).
	// conv1: 2+2, relu1: 3+2, fc1: 2+2, softmax: 2+1 (only in int8).
	if got, want := d.elements["svg"], 1+4+5+4+3; got != want {
		t.Errorf("%d inline SVG charts, want %d", got, want)
	}
	if !bytes.Contains(b, []byte("first divergence: fc1")) {
		t.Errorf("diff chart does not mark fc1")
	}
	if os.Getenv("ACTREC_REPORT_OUT") != "" {
		if err := os.WriteFile(os.Getenv("ACTREC_REPORT_OUT"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReportOneRun(t *testing.T) {
	dir := buildStore(t, testRun{name: "fp32", batches: 6})
	s := openStore(t, dir)
	b := writeReport(t, s, "fp32", Options{Layers: []string{"relu1", "conv1"}})
	d := parseHTML(t, b)
	checkSelfContained(t, b, d)
	if hasText(d, "Diff") && d.elements["table"] != 2 {
		t.Errorf("one-run report has %d tables, want provenance and layers", d.elements["table"])
	}
	if hasText(d, "fc1") {
		t.Errorf("layer fc1 reported though only relu1, conv1 were asked for")
	}
	// relu1 has NaNs: percentiles, mean/std, NaN/Inf, histogram; conv1: three charts.
	if got := d.elements["svg"]; got != 4+3 {
		t.Errorf("%d charts, want 7", got)
	}
}

func TestReportErrors(t *testing.T) {
	dir := buildStore(t, testRun{name: "fp32", batches: 2})
	s := openStore(t, dir)
	var buf bytes.Buffer
	err := Write(t.Context(), &buf, s, "fp33", Options{})
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "fp32") {
		t.Errorf("unknown run: %v, want ErrNotFound naming fp32", err)
	}
	err = Write(t.Context(), &buf, s, "fp32", Options{Layers: []string{"conv9"}})
	var le *LayerError
	if !errors.As(err, &le) || !errors.Is(err, ErrUnknownLayer) {
		t.Fatalf("unknown layer: %v, want *LayerError", err)
	}
	for _, n := range []string{"conv1", "relu1", "fc1"} {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not list valid layer %s", err, n)
		}
	}
}

func TestLoadSeriesTensorOnlyLayer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	opts := store.DefaultOptions()
	opts.NoSync = true
	s, err := store.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w, err := s.CreateRun(store.RunInfo{Name: "r", Created: fixedNow()}, []store.LayerInfo{{Path: "fc", Op: "Linear", Shape: []int{2}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AppendTensors("fc", store.TensorRow{Batch: 0, Data: []float32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(store.StateComplete); err != nil {
		t.Fatal(err)
	}
	ls, err := ResolveLayers(s, "r", []string{"fc"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = LoadSeries(s, "r", ls[0], store.BatchRange{})
	if !errors.Is(err, plot.ErrNoStats) || !strings.Contains(err.Error(), "tensors only") {
		t.Errorf("tensor-only layer: %v, want ErrNoStats saying tensors only", err)
	}
}

func TestReportStatsOnlyDiffUsesW1(t *testing.T) {
	dir := buildStore(t, testRun{name: "a", batches: 4, noTensors: true}, testRun{name: "b", noise: 0.5, batches: 4, noTensors: true})
	s := openStore(t, dir)
	b := writeReport(t, s, "b", Options{RunB: "a"})
	d := parseHTML(t, b)
	checkSelfContained(t, b, d)
	if !bytes.Contains(b, []byte("histogram W1 distance per layer")) {
		t.Errorf("stats-only diff chart does not use the histogram W1 distance")
	}
}

// TestReportScreenshot renders the two-run report with headless Chromium, when installed,
// and checks the screenshot is a real picture. ACTREC_REPORT_SCREENSHOT names where to
// keep the PNG.
func TestReportScreenshot(t *testing.T) {
	chromium := "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skip("no /usr/bin/chromium")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	dir := buildStore(t, testRun{name: "fp32", batches: 40}, testRun{name: "int8", noise: 0.05, extra: true, batches: 40})
	s := openStore(t, dir)
	minSQNR := 40.0
	opts := Options{RunB: "fp32"}
	opts.Diff.MinSQNR = &minSQNR
	b := writeReport(t, s, "int8", opts)
	tmp := t.TempDir()
	page := filepath.Join(tmp, "report.html")
	if err := os.WriteFile(page, b, 0o644); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(tmp, "report.png")
	if p := os.Getenv("ACTREC_REPORT_SCREENSHOT"); p != "" {
		shot, _ = filepath.Abs(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(tmp, "profile"), "--hide-scrollbars",
		"--screenshot="+shot, "--window-size=1280,2000", "file://"+page)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	bnd := img.Bounds()
	if bnd.Dx() < 1000 || bnd.Dy() < 1500 {
		t.Fatalf("screenshot is %v, want about 1280x2000", bnd)
	}
	// Non-trivial: many distinct colours and a fair share of non-white pixels.
	colours := map[uint32]bool{}
	nonWhite := 0
	for y := bnd.Min.Y; y < bnd.Max.Y; y += 3 {
		for x := bnd.Min.X; x < bnd.Max.X; x += 3 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[(r>>11)<<10|(g>>11)<<5|b>>11] = true
			if r < 0xf000 || g < 0xf000 || b < 0xf000 {
				nonWhite++
			}
		}
	}
	total := (bnd.Dx() / 3) * (bnd.Dy() / 3)
	if len(colours) < 50 || nonWhite < total/20 {
		t.Errorf("screenshot looks blank: %d colours, %d of %d sampled pixels not white", len(colours), nonWhite, total)
	}
	t.Logf("screenshot %s: %v, %d colours", shot, bnd, len(colours))
}
