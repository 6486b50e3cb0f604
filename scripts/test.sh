#!/usr/bin/env bash
# The project's test command (the README's quick start runs this).
# go test ./... for everything, then the race detector on the packages that run goroutines.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 ./...
# -race needs cgo (a C compiler); without one the build is pure Go and the race step is skipped.
if [ "$(go env CGO_ENABLED)" != "1" ]; then
  echo "scripts/test.sh: cgo is off (no C compiler?): skipping the -race step" >&2
  exit 0
fi
race_pkgs=$(go list ./recorder/... ./store/... ./nn/... ./query/... ./cmd/actquery 2>/dev/null || true)
if [ -n "$race_pkgs" ]; then
  go test -count=1 -race $race_pkgs
fi
