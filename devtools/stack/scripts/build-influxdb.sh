#!/usr/bin/env bash
# Build influxd (InfluxDB OSS 2.7, API only) from its Go module, with libflux built by cargo.
# No registry ships an influxd binary, so this is the only way to get the real server here.
# The result is cached: $ECOWATCH_CACHE/influxdb/<version>/influxd. Re-running is a no-op.
set -euo pipefail

INFLUX_VERSION="${INFLUX_VERSION:-v2.7.12}"
CACHE="${ECOWATCH_CACHE:-$HOME/.cache/ecowatch}"
OUT="$CACHE/influxdb/$INFLUX_VERSION"
BIN="$OUT/influxd"
WORK="$OUT/build"
start=$(date +%s)

step() { printf '[influxdb build +%4ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

if [ -x "$BIN" ]; then
  step "cached: $BIN"
  exit 0
fi
mkdir -p "$WORK"

# A writable copy of a module (the module cache is read-only). Kept across a failed run so
# that cargo and go can resume their incremental builds instead of starting over.
copy_module() {
  if [ ! -f "$2/.ecowatch-copied" ]; then
    rm -rf "$2" && cp -r "$1" "$2" && chmod -R u+w "$2" && touch "$2/.ecowatch-copied"
  fi
}

step "downloading github.com/influxdata/influxdb/v2@$INFLUX_VERSION from the Go module proxy"
influx_dir=$(go mod download -json "github.com/influxdata/influxdb/v2@$INFLUX_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
copy_module "$influx_dir" "$WORK/influxdb"

flux_version=$(cd "$WORK/influxdb" && go list -m -f '{{.Version}}' github.com/influxdata/flux)
step "downloading github.com/influxdata/flux@$flux_version (carries libflux, Rust)"
flux_dir=$(go mod download -json "github.com/influxdata/flux@$flux_version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
# libflux's build script reads the Flux stdlib two folders up, so copy the whole module.
copy_module "$flux_dir" "$WORK/flux"
LIBFLUX="$WORK/flux/libflux"

# flux pins an old Rust in rust-toolchain.toml, and its default feature `strict` turns
# warnings into errors, which newer compilers' lints break. Build with stable, without strict.
rm -f "$LIBFLUX/rust-toolchain.toml" "$LIBFLUX/rust-toolchain" "$WORK/flux/rust-toolchain.toml"
for toml in "$LIBFLUX/flux/Cargo.toml" "$LIBFLUX/flux-core/Cargo.toml"; do
  [ -f "$toml" ] && sed -i -E 's/^default = \[(.*)"strict",?\s*(.*)\]/default = [\1\2]/' "$toml"
done
step "building libflux with cargo (release); this is the slow part"
(cd "$LIBFLUX" && RUSTUP_TOOLCHAIN=stable RUSTFLAGS="--cap-lints=warn" cargo build --release --quiet -p flux)

# Link libflux statically: the cache keeps only the influxd binary, not libflux.so. Removing
# the shared object also covers a Go build cache that still remembers an earlier -lflux.
rm -f "$LIBFLUX/target/release/libflux.so"
mkdir -p "$WORK/pkgconfig"
cat > "$WORK/pkgconfig/flux.pc" <<PC
Name: flux
Description: the Flux language library
Version: ${flux_version#v}
Cflags: -I$LIBFLUX/include
Libs: $LIBFLUX/target/release/libflux.a -ldl -lm -lpthread
PC

step "building influxd with go (tags sqlite_foreign_keys,sqlite_json; API only, no UI assets)"
# Go's build cache does not key on pkg-config's answer, only on CGO_LDFLAGS: naming libflux's
# folder there keeps a package built against another folder's libflux (an earlier
# ECOWATCH_CACHE_DIR, or a dynamically linked build) from being reused: its link failed with
# "cannot find .../libflux.a" after the cache folder moved.
(cd "$WORK/influxdb" && CGO_ENABLED=1 PKG_CONFIG_PATH="$WORK/pkgconfig" \
  CGO_LDFLAGS="-g -O2 -Wl,-O1 -L$LIBFLUX/target/release" \
  go build -tags sqlite_foreign_keys,sqlite_json -ldflags "-checklinkname=0 -s -w -X main.version=${INFLUX_VERSION#v} -X main.date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  -o "$OUT/influxd.tmp" ./cmd/influxd)
version=$("$OUT/influxd.tmp" version) || { echo "the built influxd does not run" >&2; exit 1; }
mv "$OUT/influxd.tmp" "$BIN"
step "built $BIN: $version"
# Keep the cache small: the Go and cargo caches already hold the sources.
rm -rf "$WORK"
