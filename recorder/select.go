package recorder

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/actrec/actrec/nn"
)

// ErrUnknownLayer is wrapped by the errors of layer selectors that match
// no module (an unknown path, a glob or an op type matching nothing); their
// messages list the valid names. Test with errors.Is.
var ErrUnknownLayer = errors.New("recorder: unknown layer")

// selectModules resolves selectors against the modules of a model and
// returns the selected module paths in mods order. An empty selector list
// or "all" selects every leaf. A selector that matches nothing is an error
// listing the valid names.
func selectModules(mods []nn.ModuleInfo, selectors []string) (map[string]bool, error) {
	sel := make(map[string]bool)
	if len(selectors) == 0 {
		selectors = []string{"all"}
	}
	for _, s := range selectors {
		got, err := matchSelector(mods, s)
		if err != nil {
			return nil, err
		}
		for _, p := range got {
			sel[p] = true
		}
	}
	return sel, nil
}

// matchSelector returns the module paths matched by one selector.
func matchSelector(mods []nn.ModuleInfo, s string) ([]string, error) {
	var out []string
	switch {
	case s == "all":
		for _, m := range mods {
			if m.Leaf {
				out = append(out, m.Path)
			}
		}
		return out, nil
	case strings.HasPrefix(s, "op:"):
		op := strings.TrimPrefix(s, "op:")
		var ops []string
		for _, m := range mods {
			if m.Path == "" {
				continue
			}
			if m.Op == op {
				out = append(out, m.Path)
			}
			if !slices.Contains(ops, m.Op) {
				ops = append(ops, m.Op)
			}
		}
		if len(out) == 0 {
			slices.Sort(ops)
			return nil, fmt.Errorf("%w: no module has op %q; ops in the model: %s", ErrUnknownLayer, op, strings.Join(ops, ", "))
		}
		return out, nil
	case strings.ContainsAny(s, `*?[\`):
		pat := strings.ReplaceAll(s, ".", "/")
		if _, err := path.Match(pat, ""); err != nil {
			return nil, fmt.Errorf("recorder: bad layer pattern %q: %w", s, err)
		}
		for _, m := range mods {
			if m.Path == "" {
				continue
			}
			if ok, _ := path.Match(pat, strings.ReplaceAll(m.Path, ".", "/")); ok {
				out = append(out, m.Path)
			}
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: pattern %q matches no module; modules: %s", ErrUnknownLayer, s, modulePaths(mods))
		}
		return out, nil
	default:
		for _, m := range mods {
			if m.Path == s && s != "" {
				return []string{s}, nil
			}
		}
		return nil, fmt.Errorf("%w %q; modules: %s", ErrUnknownLayer, s, modulePaths(mods))
	}
}

func modulePaths(mods []nn.ModuleInfo) string {
	var ps []string
	for _, m := range mods {
		if m.Path != "" {
			ps = append(ps, m.Path)
		}
	}
	return strings.Join(ps, ", ")
}
