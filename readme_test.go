// Package actrec_test keeps the README true: every command of its shell blocks is run.
package actrec_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// readmeCommands returns the lines of the README's ```sh blocks, without comments.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "```sh":
			in = true
		case line == "```":
			in = false
		case in && line != "":
			if i := strings.Index(line, "   # "); i >= 0 {
				line = strings.TrimSpace(line[:i])
			}
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// TestReadmeCommands builds the CLIs and runs every README command, in order, in a scratch
// directory that sees the shipped testdata/ (so the store and exports land there).
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the CLIs and records the full test set")
	}
	cmds := readmeCommands(t)
	if len(cmds) < 8 {
		t.Fatalf("found only %d README commands: %q", len(cmds), cmds)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin, "./cmd/actrec", "./cmd/actquery")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	root, _ := os.Getwd()
	work := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "testdata"), filepath.Join(work, "testdata")); err != nil {
		t.Fatal(err)
	}
	_, pyErr := exec.Command("/usr/bin/python3", "-c", "import numpy").CombinedOutput()
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "ACTREC_STORE=") {
			env = append(env, e)
		}
	}
	ran := 0
	for _, c := range cmds {
		switch {
		case c == "./scripts/test.sh":
			continue // this test is part of it
		case strings.HasPrefix(c, "/usr/bin/python3 "):
			if pyErr != nil {
				t.Logf("skipping %q: /usr/bin/python3 with numpy is not installed", c)
				continue
			}
		case strings.HasPrefix(c, "go run ./cmd/"):
			c = filepath.Join(bin, strings.TrimPrefix(c, "go run ./cmd/"))
		default:
			t.Fatalf("README command %q is neither go run ./cmd/... nor /usr/bin/python3: teach this test about it", c)
		}
		cmd := exec.Command("bash", "-c", c)
		cmd.Dir = work
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("README command %q: %v\n%s", c, err, out)
		}
		if len(bytes.TrimSpace(out)) == 0 && !strings.Contains(c, "export") {
			t.Errorf("README command %q printed nothing", c)
		}
		ran++
	}
	if _, err := os.Stat(filepath.Join(work, "actrec-data", "index.db")); err != nil {
		t.Fatalf("the README's commands left no store: %v", err)
	}
	t.Logf("ran %d README commands", ran)
}
