package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/actrec/actrec/nn"
	"github.com/actrec/actrec/nn/onnx"
)

// fashionTestSet is the shipped input, and fashionNorm the normalization the shipped models were
// trained with (testdata/models/README.md).
const fashionTestSet = "testdata/fashion-mnist/t10k-images-idx3-ubyte.gz"

var fashionNorm = normalization{Mean: []float64{0.2860}, Std: []float64{0.3530}}

// builtin is a model actrec can build by name.
type builtin struct {
	Name        string
	Description string
	Input       []int  // per-sample input shape
	Weights     string // default weights, relative to the repository root ("" = none shipped)
	Dataset     string // default input, relative to the repository root
	Build       func() (*nn.Model, error)
}

// builtins lists the built-in models; the first is the default.
func builtins() []builtin {
	return []builtin{
		{
			Name:        "recipe-cnn",
			Description: "the hook recipe's CNN for Fashion-MNIST (conv1..fc2), trained weights v1, v2, v1-int8",
			Input:       []int{1, 28, 28},
			Weights:     "testdata/models/recipe-cnn-v1.safetensors",
			Dataset:     fashionTestSet,
			Build:       func() (*nn.Model, error) { return nn.RecipeCNN(1, 10) },
		},
		{
			Name:        "paritynet",
			Description: "small model with every nn layer type (PyTorch parity fixture weights), 3x17x17 input",
			Input:       []int{3, 17, 17},
			Weights:     "testdata/nn/paritynet.weights.safetensors",
			Build:       nn.ParityNet,
		},
	}
}

func builtinNames() []string {
	var n []string
	for _, b := range builtins() {
		n = append(n, b.Name)
	}
	return n
}

// loadedModel is a model ready to run, with its provenance.
type loadedModel struct {
	Model       *nn.Model
	Name        string
	Version     string
	WeightsHash string
	WeightsPath string
	Input       []int // per-sample input shape
	Dataset     string
	Norm        normalization
}

// usageError marks errors caused by the command line (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// loadModel builds --model (a built-in name or an .onnx file) and loads --weights into it.
// weights may be a file, a version name of the built-in ("v2", "v1-int8"), or "" for the default.
func loadModel(model, weights string) (*loadedModel, error) {
	if strings.HasSuffix(strings.ToLower(model), ".onnx") {
		if weights != "" {
			return nil, usagef("--weights does not apply to an ONNX model (%s carries its own)", model)
		}
		// Exports without dynamic_axes fix the batch size (usually 1); try making it dynamic
		// so --batch-size works, and fall back to the file's own batch size.
		if _, err := os.Stat(model); err != nil {
			return nil, usagef("--model: %w", err)
		}
		m, err := onnx.LoadWithOptions(model, onnx.LoadOptions{DynamicBatch: true})
		if err != nil {
			if m, err = onnx.Load(model); err != nil {
				return nil, err
			}
		}
		raw, err := os.ReadFile(model)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(raw)
		lm := &loadedModel{Model: m, Name: strings.TrimSuffix(filepath.Base(model), filepath.Ext(model)),
			Version: "onnx", WeightsHash: "sha256:" + hex.EncodeToString(sum[:]), WeightsPath: model}
		if in := m.InputShapes(); len(in) == 1 && len(in[0]) >= 2 {
			lm.Input = append([]int(nil), in[0][1:]...)
		} else {
			return nil, fmt.Errorf("model %s: want one input of shape [N, ...], have %v", model, in)
		}
		if sameShape(lm.Input, []int{1, 28, 28}) {
			// A Fashion-MNIST-shaped model gets the shipped test set, normalized as the shipped models.
			lm.Dataset, _ = shippedPath(fashionTestSet)
			lm.Norm = fashionNorm
		}
		return lm, nil
	}
	var b *builtin
	for _, c := range builtins() {
		if c.Name == model {
			b = &c
			break
		}
	}
	if b == nil {
		return nil, usagef("unknown model %q: valid models are %s, or a path to an .onnx file", model, strings.Join(builtinNames(), ", "))
	}
	m, err := b.Build()
	if err != nil {
		return nil, err
	}
	lm := &loadedModel{Model: m, Name: b.Name, Input: b.Input}
	if b.Dataset != "" {
		lm.Dataset, _ = shippedPath(b.Dataset)
	}
	switch {
	case weights == "" && b.Weights == "":
		lm.Version = "random"
		return lm, nil
	case weights == "":
		p, err := shippedPath(b.Weights)
		if err != nil {
			return nil, err
		}
		weights = p
	case !strings.ContainsAny(weights, "/.") && b.Name == "recipe-cnn":
		p, err := shippedPath("testdata/models/recipe-cnn-" + weights + ".safetensors")
		if err != nil {
			return nil, usagef("unknown weights version %q for %s: shipped versions are v1, v2, v1-int8", weights, b.Name)
		}
		weights = p
	}
	raw, err := os.ReadFile(weights)
	if err != nil {
		return nil, usagef("--weights: %w", err)
	}
	sd, meta, err := nn.DecodeSafetensors(raw)
	if err != nil {
		return nil, fmt.Errorf("weights %s: %w", weights, err)
	}
	delete(sd, "num_batches_tracked")
	for k := range sd {
		if strings.HasSuffix(k, ".num_batches_tracked") {
			delete(sd, k)
		}
	}
	if err := m.LoadStateDict(sd); err != nil {
		return nil, fmt.Errorf("weights %s: %w", weights, err)
	}
	sum := sha256.Sum256(raw)
	lm.WeightsHash = "sha256:" + hex.EncodeToString(sum[:])
	lm.WeightsPath = weights
	lm.Version = meta["version"]
	if lm.Version == "" {
		lm.Version = strings.TrimSuffix(filepath.Base(weights), filepath.Ext(weights))
	}
	if mean, err1 := strconv.ParseFloat(meta["normalize_mean"], 64); err1 == nil {
		if std, err2 := strconv.ParseFloat(meta["normalize_std"], 64); err2 == nil && std > 0 {
			lm.Norm = normalization{Mean: []float64{mean}, Std: []float64{std}}
		}
	}
	return lm, nil
}

// shippedPath finds a file shipped in the repository (testdata/...): relative to the working
// directory or to any parent directory, so that actrec runs from anywhere inside a clone.
func shippedPath(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", usagef("shipped file %s not found in the working directory or its parents: run actrec inside a clone of the repository or pass the file explicitly", rel)
		}
		dir = parent
	}
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

var errInterrupted = errors.New("interrupted")
