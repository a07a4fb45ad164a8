#!/usr/bin/env bash
# Runs every test warren has, installing what the tests need first.
#   ./scripts/test.sh           the whole suite (what CI runs)
#   WARREN_FUZZTIME=500000x ./scripts/test.sh   longer fuzz runs
# Needs root for Debian packages and network namespaces: run by another
# user, it runs itself again through sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then
		echo "scripts/test.sh: not root; running again through sudo" >&2
		exec sudo env "PATH=$PATH" ${WARREN_FUZZTIME:+"WARREN_FUZZTIME=$WARREN_FUZZTIME"} ${WARREN_SEEDS:+"WARREN_SEEDS=$WARREN_SEEDS"} ./scripts/test.sh "$@"
	fi
	echo "scripts/test.sh needs root (Debian packages, network namespaces): run it as root, or install sudo" >&2
	exit 1
fi

# A count of runs, not a duration: with a duration, Go's fuzzing
# coordinator (up to Go 1.26) can report its own deadline as a failure,
# "context deadline exceeded" with no failing input, on a loaded machine
# (golang/go#75804).
fuzztime=${WARREN_FUZZTIME:-50000x}

step() { printf '\n=== %s\n' "$*"; }

step "debian packages"
want=$(grep -hv '^\s*#' scripts/deps/*.txt | sed '/^\s*$/d' | sort -u)
missing=()
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "ok: $(echo $want | wc -w) packages"

step "go modules"
go mod download
go mod verify

step "build"
go build -o bin/ ./cmd/...

step "generated code is up to date"
gen_files=$(grep -rl --include='*.go' '^// Code generated .* DO NOT EDIT' . || true)
before=$(cat $gen_files | sha256sum)
go generate ./...
if [ "$(cat $gen_files | sha256sum)" != "$before" ]; then
	echo "go generate changed $gen_files: commit its output" >&2
	exit 1
fi
echo "ok: $gen_files"

step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt would change: $bad" >&2; exit 1; fi

step "go vet"
go vet ./...

step "staticcheck"
go tool staticcheck ./...

step "runbooks"
# The tests of the runbooks' configurations run where the runbooks are
# (WARREN_SEEDS, or shared/seeds beside the repository) and skip, saying
# so, in a clone alone.
if [ -n "${WARREN_SEEDS:-}" ]; then
	echo "runbooks at $WARREN_SEEDS (WARREN_SEEDS): their configurations are tested"
elif [ -d ../shared/seeds ]; then
	echo "runbooks at $(cd ../shared/seeds && pwd): their configurations are tested"
else
	echo "runbooks not found (no ../shared/seeds beside the repository, WARREN_SEEDS not set): their configurations are not tested"
fi

step "fuse"
# The power-cut tests mount a FUSE file system (internal/crashfs).
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
if [ ! -e /dev/fuse ]; then
	echo "no /dev/fuse, and modprobe fuse did not make one: the power-cut tests need FUSE" >&2
	exit 1
fi
echo "ok: /dev/fuse"

step "unit and integration tests (race)"
go test -race -count=1 -timeout 20m ./...

step "amqp091-go's own integration tests against a warren node"
./scripts/amqp091-integration.sh

step "rabbit-hole's test suite against a warren node (management API)"
./scripts/rabbit-hole-suite.sh

step "fuzz"
# Every FuzzXxx function in the repo, each for a short run.
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
	for name in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | cut -d' ' -f2); do
		go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$(dirname "$f")"
	done
done

step "done"
