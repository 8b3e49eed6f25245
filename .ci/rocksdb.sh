# Sourced by .ci/test and .ci/run: what RocksDB's build needs, and the compiled RocksDB archive.
#
# 1. librocksdb-sys generates its bindings with libclang at every build (there is no
#    pre-generated option), and compiles RocksDB's C++ with the system C++ compiler. A fresh
#    Debian machine has neither libclang nor g++: install them when we can (root with apt),
#    otherwise name the one command that does.
# 2. RocksDB's C++ takes ~20 minutes to compile on 2 cores. Compile it once per machine, keep
#    the archive under ~/.cache/paxos-rs (outside any target dir), and link every later build
#    against it (librocksdb-sys honours ROCKSDB_LIB_DIR/ROCKSDB_STATIC and then only regenerates
#    its bindings). A change in the dependency graph, a clean clone or `cargo doc` vs
#    `cargo test` feature resolution then never triggers a second C++ build.

rocksdb_missing=()
command -v c++ >/dev/null 2>&1 || rocksdb_missing+=(g++)
command -v clang >/dev/null 2>&1 || rocksdb_missing+=(clang)
dpkg -s libclang-dev >/dev/null 2>&1 || rocksdb_missing+=(libclang-dev)
if [ ${#rocksdb_missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "paxos-rs: installing ${rocksdb_missing[*]} (RocksDB's C++ build and bindings need them)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${rocksdb_missing[@]}" >/dev/null
  else
    echo "paxos-rs: the RocksDB tests need ${rocksdb_missing[*]}: run 'sudo apt-get install -y ${rocksdb_missing[*]}' and try again" >&2
    exit 1
  fi
fi

if [ -z "${ROCKSDB_LIB_DIR:-}" ]; then
  rocks_version=$(awk '/^name = "librocksdb-sys"/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
  rocks_cache="$HOME/.cache/paxos-rs/librocksdb-sys-${rocks_version}"
  if [ ! -f "$rocks_cache/librocksdb.a" ]; then
    echo "paxos-rs: compiling RocksDB ${rocks_version} once for this machine (~20 min on 2 cores; kept in $rocks_cache)"
    # Through paxos-storage: the default feature set of the workspace has no RocksDB in it, so
    # `-p librocksdb-sys` alone would match nothing.
    cargo build -q -p paxos-storage --features rocksdb
    lib=$(ls -t "${CARGO_TARGET_DIR:-target}"/debug/build/librocksdb-sys-*/out/librocksdb.a | head -n 1)
    mkdir -p "$rocks_cache.tmp"
    cp "$lib" "$rocks_cache.tmp/librocksdb.a"
    rm -rf "$rocks_cache" && mv "$rocks_cache.tmp" "$rocks_cache"
  fi
  export ROCKSDB_LIB_DIR="$rocks_cache" ROCKSDB_STATIC=1
fi
