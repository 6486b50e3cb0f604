package recorder

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actrec/actrec/nn"
)

func recipeModules(t *testing.T) []nn.ModuleInfo {
	t.Helper()
	m, err := nn.RecipeCNN(3, 10)
	if err != nil {
		t.Fatal(err)
	}
	return m.Modules()
}

func TestSelectModules(t *testing.T) {
	mods := recipeModules(t)
	cases := []struct {
		name      string
		selectors []string
		want      []string
		errHas    string
	}{
		{"all-default", nil, []string{"conv1", "relu1", "maxpool1", "conv2", "relu2", "maxpool2", "flatten", "fc1", "relu3", "fc2"}, ""},
		{"exact", []string{"relu1", "fc1"}, []string{"relu1", "fc1"}, ""},
		{"glob", []string{"relu*"}, []string{"relu1", "relu2", "relu3"}, ""},
		{"glob-class", []string{"conv[12]", "fc?"}, []string{"conv1", "conv2", "fc1", "fc2"}, ""},
		{"op", []string{"op:MaxPool2d"}, []string{"maxpool1", "maxpool2"}, ""},
		{"unknown", []string{"relu9"}, nil, "unknown layer \"relu9\"; modules: conv1, relu1"},
		{"glob-nothing", []string{"bn*"}, nil, "matches no module; modules: conv1"},
		{"op-nothing", []string{"op:BatchNorm2d"}, nil, "ops in the model: Conv2d, Flatten"},
		{"bad-pattern", []string{"relu["}, nil, "bad layer pattern"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sel, err := selectModules(mods, c.selectors)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err = %v, want it to contain %q", err, c.errHas)
				}
				// A selector matching nothing is ErrUnknownLayer (the CLI's
				// usage exit code); a malformed pattern is not.
				if unknown := c.name != "bad-pattern"; errors.Is(err, ErrUnknownLayer) != unknown {
					t.Fatalf("errors.Is(%v, ErrUnknownLayer) = %v, want %v", err, !unknown, unknown)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range mods {
				if sel[m.Path] {
					got = append(got, m.Path)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("selected %v, want %v", got, c.want)
			}
		})
	}
}

// Globs follow path.Match on dotted paths: '*' does not cross a dot.
func TestSelectGlobDots(t *testing.T) {
	mods := []nn.ModuleInfo{
		{Path: "", Op: "Net", Order: -1},
		{Path: "layer1", Op: "Sequential", Order: 0},
		{Path: "layer1.0", Op: "BasicBlock", Order: 0},
		{Path: "layer1.0.conv1", Op: "Conv2d", Order: 0, Leaf: true},
		{Path: "layer1.1", Op: "BasicBlock", Order: 1},
		{Path: "layer1.1.conv1", Op: "Conv2d", Order: 1, Leaf: true},
	}
	sel, err := selectModules(mods, []string{"layer1.*"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sel) != 2 || !sel["layer1.0"] || !sel["layer1.1"] {
		t.Fatalf("layer1.* selected %v, want layer1.0 and layer1.1", sel)
	}
	sel, err = selectModules(mods, []string{"layer1.*.conv1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sel) != 2 || !sel["layer1.0.conv1"] || !sel["layer1.1.conv1"] {
		t.Fatalf("layer1.*.conv1 selected %v", sel)
	}
}

func TestParseRanges(t *testing.T) {
	got, err := parseRanges("0-9, 20,50-")
	if err != nil {
		t.Fatal(err)
	}
	want := []span{{0, 9}, {20, 20}, {50, -1}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"a", "5-3", "-3", "1,,2", "1-2-3", "1-x"} {
		if _, err := parseRanges(bad); err == nil {
			t.Errorf("parseRanges(%q): no error", bad)
		}
	}
}

func keptBatches(f *batchFilter, n int64) []int64 {
	var out []int64
	for b := int64(0); b < n; b++ {
		if f.keep(b) {
			out = append(out, b)
		}
	}
	return out
}

func TestBatchPolicies(t *testing.T) {
	now := time.Now
	cases := []struct {
		name string
		p    BatchPolicy
		want []int64
	}{
		{"all", BatchPolicy{}, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}},
		{"every3", BatchPolicy{Every: 3}, []int64{0, 3, 6, 9}},
		{"first4", BatchPolicy{First: 4}, []int64{0, 1, 2, 3}},
		{"ranges", BatchPolicy{Ranges: "0-2,5,9-"}, []int64{0, 1, 2, 5, 9, 10, 11}},
		{"combined", BatchPolicy{Every: 2, Ranges: "3-"}, []int64{4, 6, 8, 10}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := keptBatches(newBatchFilter(c.p, now), 12); !slices.Equal(got, c.want) {
				t.Fatalf("kept %v, want %v", got, c.want)
			}
		})
	}
}

func TestBatchProbabilitySeeded(t *testing.T) {
	p := BatchPolicy{Probability: 0.25, Seed: 42}
	a := keptBatches(newBatchFilter(p, time.Now), 4000)
	b := keptBatches(newBatchFilter(p, time.Now), 4000)
	if !slices.Equal(a, b) {
		t.Fatal("same seed selected different batches")
	}
	if len(a) < 850 || len(a) > 1150 {
		t.Fatalf("kept %d of 4000 at p=0.25", len(a))
	}
	p.Seed = 43
	if c := keptBatches(newBatchFilter(p, time.Now), 4000); slices.Equal(a, c) {
		t.Fatal("different seeds selected the same batches")
	}
	// Tensor batches draw independently of stats batches with the same
	// seed: about p² of the batches are kept by both, not p.
	p.Seed = 42
	ta := newTensorBatchFilter(p, time.Now)
	both := 0
	for _, b := range a {
		if ta.keep(b) {
			both++
		}
	}
	if both < 180 || both > 330 { // 4000 * 0.25 * 0.25 = 250
		t.Fatalf("%d of 4000 batches kept by both filters at p=0.25, want about 250", both)
	}
}

func TestBatchMinInterval(t *testing.T) {
	t0 := time.Unix(1000, 0)
	clock := t0
	f := newBatchFilter(BatchPolicy{MinInterval: 10 * time.Second}, func() time.Time { return clock })
	var kept []int64
	for b := int64(0); b < 10; b++ {
		clock = t0.Add(time.Duration(b) * 4 * time.Second) // 0, 4, 8, 12, ...
		if f.keep(b) {
			kept = append(kept, b)
		}
	}
	// kept at t=0, then first t>=10 (b=3, t=12), then t>=22 (b=6, t=24), then t>=34 (b=9, t=36)
	if want := []int64{0, 3, 6, 9}; !slices.Equal(kept, want) {
		t.Fatalf("kept %v, want %v", kept, want)
	}
}

func TestSamplePolicies(t *testing.T) {
	cases := []struct {
		name string
		p    SamplePolicy
		n    int
		want []int
	}{
		{"all", SamplePolicy{}, 4, []int{0, 1, 2, 3}},
		{"indices-recipe", SamplePolicy{Indices: []int{0, 2}}, 64, []int{0, 2}},
		{"indices-out-of-range", SamplePolicy{Indices: []int{2, 0, 7, 2}}, 3, []int{0, 2}},
		{"first", SamplePolicy{First: 3}, 64, []int{0, 1, 2}},
		{"first-more-than-n", SamplePolicy{First: 9}, 2, []int{0, 1}},
		{"random-all", SamplePolicy{Random: 9}, 3, []int{0, 1, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.samples(5, c.n); !slices.Equal(got, c.want) {
				t.Fatalf("samples = %v, want %v", got, c.want)
			}
		})
	}
}

func TestSampleRandomSeeded(t *testing.T) {
	p := SamplePolicy{Random: 5, Seed: 7}
	a := p.samples(3, 64)
	if len(a) != 5 || !slices.IsSorted(a) || slices.Compact(slices.Clone(a))[4] != a[4] {
		t.Fatalf("samples %v: want 5 distinct sorted indices", a)
	}
	if b := p.samples(3, 64); !slices.Equal(a, b) {
		t.Fatalf("same (seed, batch) gave %v and %v", a, b)
	}
	differs := false
	for b := int64(4); b < 20; b++ {
		if !slices.Equal(a, p.samples(b, 64)) {
			differs = true
		}
	}
	if !differs {
		t.Fatal("random samples identical for every batch")
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []func(c *Config){
		func(c *Config) { c.Batches.Probability = 1.5 },
		func(c *Config) { c.Batches.Ranges = "x" },
		func(c *Config) { c.Samples = SamplePolicy{First: 2, Random: 2} },
		func(c *Config) { c.Samples.Indices = []int{-1} },
		func(c *Config) { c.TensorBudget = -1 },
		func(c *Config) { c.Overrides = []LayerMode{{Select: "relu1"}} },
	}
	for i, f := range bad {
		c := DefaultConfig()
		f(&c)
		if err := c.validate(); err == nil {
			t.Errorf("case %d: no error for %+v", i, c)
		}
	}
	c := DefaultConfig()
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
}

// Batch ranges and layer selectors come from flags and config files: no
// input may panic, and parsed ranges are well formed.
func FuzzParseRanges(f *testing.F) {
	for _, s := range []string{"0-9,20,50-", "", "1", "5-3", "-", ",", "9223372036854775807-", "1-2-3", " 4 - 7 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spans, err := parseRanges(s)
		if err != nil {
			return
		}
		for _, sp := range spans {
			if sp.lo < 0 || (sp.hi >= 0 && sp.hi < sp.lo) || sp.hi < -1 {
				t.Fatalf("parseRanges(%q) gave bad span %+v", s, sp)
			}
		}
		f := newBatchFilter(BatchPolicy{Ranges: s}, time.Now)
		for b := int64(0); b < 4; b++ {
			f.keep(b)
		}
	})
}

func FuzzSelector(f *testing.F) {
	for _, s := range []string{"relu*", "op:Conv2d", "all", "layer1.*", "[", `\`, "conv1", ""} {
		f.Add(s)
	}
	mods := []nn.ModuleInfo{
		{Path: "", Op: "Net", Order: -1},
		{Path: "layer1", Op: "Sequential"},
		{Path: "layer1.0", Op: "Conv2d", Leaf: true},
		{Path: "relu1", Op: "ReLU", Order: 1, Leaf: true},
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := matchSelector(mods, s)
		if err == nil && len(got) == 0 && s != "all" {
			t.Fatalf("selector %q matched nothing without an error", s)
		}
	})
}
