#!/usr/bin/env bash
# Packs what a GPU machine without this machine's packages needs to run the
# CUDA build, small enough for a 64 MiB transfer: DIR/gpu.tar.xz holds the
# binaries (bin/) and the shared libraries they link that an Ubuntu CUDA image
# lacks (lib/: Highway, cpp-httplib, libedit and their own dependencies);
# DIR/tokenizers/ holds the two real tokenizer.json files xz-compressed, so
# the uncompressed ones (50 MB) can stay behind. There:
#   mkdir -p /tmp/g && tar xJf DIR/gpu.tar.xz -C /tmp/g && export LD_LIBRARY_PATH=/tmp/g/lib
#   for t in gemma gemma3; do xz -dc DIR/tokenizers/$t.json.xz > tests/data/tokenizer/$t/tokenizer.json; done
#
#   tools/gpu_carry.sh BUILD_DIR DIR
set -eu
build=$1 dir=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$dir/tokenizers"
for binary in "$build/gemmarun" "$build/tests/cuda/cuda_ops_test" "$build/tests/cuda/cuda_engine_test" \
  "$build/bench/cuda/cuda_gemv_bench"; do
  [ -x "$binary" ] && cp "$binary" "$stage/bin/"
done
strip "$stage"/bin/* 2>/dev/null || true
ldd "$stage"/bin/* | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libhwy*|libcpp-httplib*|libedit*|libbrotli*|libtinfo*|libbsd*|libmd*) cp -L "$lib" "$stage/lib/" ;;
  esac
done
tar cJf "$dir/gpu.tar.xz" -C "$stage" bin lib
for t in gemma gemma3; do
  src="$repo/tests/data/tokenizer/$t/tokenizer.json"
  [ -f "$dir/tokenizers/$t.json.xz" ] && [ "$dir/tokenizers/$t.json.xz" -nt "$src" ] && continue
  xz -T2 -6 -c "$src" >"$dir/tokenizers/$t.json.xz"
done
du -sh "$dir"
