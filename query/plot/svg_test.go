package plot

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// svgSummary is the structure of an SVG that the golden files pin: element counts, the
// text labels in document order, and the stroke colours of polylines (one per series).
type svgSummary struct {
	Elements map[string]int
	Texts    []string
	Strokes  map[string]int // stroke colour -> number of stroked paths
	Images   int
}

func summarize(t *testing.T, svg []byte) svgSummary {
	t.Helper()
	s := svgSummary{Elements: map[string]int{}, Strokes: map[string]int{}}
	d := xml.NewDecoder(bytes.NewReader(svg))
	inText := false
	var cur strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse as XML: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			s.Elements[e.Name.Local]++
			switch e.Name.Local {
			case "text":
				inText = true
				cur.Reset()
			case "image":
				s.Images++
			case "path":
				for _, a := range e.Attr {
					if a.Name.Local == "style" && strings.Contains(a.Value, "stroke:") && strings.Contains(a.Value, "fill:none") {
						for _, part := range strings.Split(a.Value, ";") {
							if strings.HasPrefix(part, "stroke:") {
								s.Strokes[strings.TrimPrefix(part, "stroke:")]++
							}
						}
					}
				}
			}
		case xml.CharData:
			if inText {
				cur.Write(e)
			}
		case xml.EndElement:
			if e.Name.Local == "text" {
				inText = false
				s.Texts = append(s.Texts, strings.TrimSpace(cur.String()))
			}
		}
	}
	return s
}

func (s svgSummary) String() string {
	var b strings.Builder
	var names []string
	for n := range s.Elements {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "element %s %d\n", n, s.Elements[n])
	}
	var cols []string
	for c := range s.Strokes {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	for _, c := range cols {
		fmt.Fprintf(&b, "stroke %s %d\n", c, s.Strokes[c])
	}
	for _, t := range s.Texts {
		fmt.Fprintf(&b, "text %q\n", t)
	}
	return b.String()
}

func renderSVG(t *testing.T, f *Figure) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.Render(&buf, SVG); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// golden compares got with testdata/name.golden, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s: SVG structure changed (go test -update to accept):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

func hasText(s svgSummary, sub string) bool {
	for _, t := range s.Texts {
		if strings.Contains(t, sub) {
			return true
		}
	}
	return false
}

// seriesStrokes counts distinct series colours among the stroked paths.
func seriesStrokes(s svgSummary) int {
	n := 0
	for c := range s.Strokes {
		for i := range seriesColors {
			if c == colorCSS(seriesColors[i]) {
				n++
			}
		}
	}
	return n
}

func colorCSS(c color.Color) string {
	r, g, b, a := c.RGBA()
	k := 255.0 / float64(a)
	return fmt.Sprintf("#%02X%02X%02X", int(float64(r)*k), int(float64(g)*k), int(float64(b)*k))
}
