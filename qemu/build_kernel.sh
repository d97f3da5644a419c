#!/bin/bash
# Build the guest kernel (arm64 Image, everything built in) from Debian's linux-source-6.1.
#
#   qemu/build_kernel.sh OUT_IMAGE
#
# Config = allnoconfig + qemu/kernel/virt.config + board/kernel/ikecore.fragment + qemu/kernel.extra,
# merged with the kernel's own scripts/kconfig/merge_config.sh. After olddefconfig every "=y" / "is not
# set" line of those files is checked against the final .config; the build fails naming the option.
# The Image is cached machine-wide in $IKECORE_CACHE/kernel keyed by the hash of the inputs and of the
# final .config, so a fresh clone on the same machine (CI) reuses it and a rebuild takes a second.
set -euo pipefail
out=${1:?usage: build_kernel.sh OUT_IMAGE}
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${IKECORE_CACHE:-/var/cache/ikecore}/kernel
tarball=/usr/src/linux-source-6.1.tar.xz
fragments=("$top/qemu/kernel/virt.config" "$top/board/kernel/ikecore.fragment" "$top/qemu/kernel.extra")
jobs=${KERNEL_JOBS:-$(nproc)}
make_k=(make -s ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- KBUILD_BUILD_USER=ikecore KBUILD_BUILD_HOST=ikecore
        KBUILD_BUILD_TIMESTAMP="2026-01-01")

for f in "${fragments[@]}" "$tarball"; do
  [ -f "$f" ] || { echo "build_kernel: missing $f" >&2; exit 1; }
done
command -v aarch64-linux-gnu-gcc >/dev/null || { echo "build_kernel: aarch64-linux-gnu-gcc missing (make deps)" >&2; exit 1; }
mkdir -p "$cache"
# one kernel build at a time per machine (parallel clones share the cache and its build tree)
exec 9>"$cache/.lock"
flock 9

# 1. fast path: same inputs as a previous build -> reuse its Image without touching the source
srcver=$(dpkg-query -W -f='${Version}' linux-source-6.1)
inputs_key=$( { echo "$srcver"; cat "${fragments[@]}"; aarch64-linux-gnu-gcc --version | head -1; } | sha256sum | cut -c1-16)
if [ -f "$cache/Image-in-$inputs_key" ]; then
  cp "$cache/Image-in-$inputs_key" "$out"; cp "$cache/config-in-$inputs_key" "$out.config"
  echo ">> kernel: cached ($inputs_key)"; exit 0
fi

# 2. unpack the source once per source version (in the machine-wide cache)
src=$cache/linux-source-6.1
if [ "$(cat "$cache/source.version" 2>/dev/null)" != "$srcver" ]; then
  echo ">> kernel: unpacking linux-source-6.1 $srcver"
  rm -rf "$src" "$cache/build"; tar -C "$cache" -xJf "$tarball"; echo "$srcver" > "$cache/source.version"
fi
build=$cache/build
mkdir -p "$build"

# 3. configure: allnoconfig with our fragments forced
echo ">> kernel: configuring (allnoconfig + $(basename -a "${fragments[@]}" | tr '\n' ' '))"
(cd "$src" && ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- \
   scripts/kconfig/merge_config.sh -n -O "$build" "${fragments[@]}" >"$build/merge.log" 2>&1) \
   || { cat "$build/merge.log" >&2; exit 1; }

# 4. check every requested option is set as requested
missing=0
while IFS= read -r line; do
  if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
    opt=${BASH_REMATCH[1]}; want="$line"
  elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set ]]; then
    opt=${BASH_REMATCH[1]}; want=""
  else continue; fi
  got=$(grep -E "^$opt=" "$build/.config" || true)
  if [ "$got" != "$want" ]; then
    echo "build_kernel: $opt requested as '${want:-not set}' but the final .config has '${got:-not set}'" >&2
    echo "  (a dependency is missing or the name is wrong; see Kconfig for $opt)" >&2
    missing=1
  fi
done < <(cat "${fragments[@]}")
[ $missing = 0 ] || exit 1

# 5. same final config as an earlier build -> reuse; else build
config_key=$(grep '^CONFIG_' "$build/.config" | sort | sha256sum | cut -c1-16)
if [ ! -f "$cache/Image-cfg-$config_key" ]; then
  echo ">> kernel: building Image with -j$jobs (config $config_key; ~10 min on 2 cores)"
  start=$SECONDS
  (cd "$src" && "${make_k[@]}" O="$build" -j"$jobs" Image) >"$build/build.log" 2>&1 \
    || { tail -40 "$build/build.log" >&2; exit 1; }
  cp "$build/arch/arm64/boot/Image" "$cache/Image-cfg-$config_key.tmp"
  mv "$cache/Image-cfg-$config_key.tmp" "$cache/Image-cfg-$config_key"
  echo ">> kernel: built in $((SECONDS - start)) s"
fi
cp "$build/.config" "$cache/config-in-$inputs_key"
ln -f "$cache/Image-cfg-$config_key" "$cache/Image-in-$inputs_key"
cp "$cache/Image-in-$inputs_key" "$out"; cp "$cache/config-in-$inputs_key" "$out.config"
echo ">> kernel: $(stat -c %s "$out") bytes ($config_key)"
