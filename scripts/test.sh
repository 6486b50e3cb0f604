#!/usr/bin/env bash
# The project's test command (the README's quick start runs this).
# go test ./... for everything, then the race detector on the packages that run goroutines.
set -euo pipefail
cd "$(dirname "$0")/.."
go test -count=1 ./...
race_pkgs=$(go list ./recorder/... ./store/... ./nn/... ./query/... ./cmd/actquery 2>/dev/null || true)
if [ -n "$race_pkgs" ]; then
  go test -count=1 -race $race_pkgs
fi
