#!/bin/sh
# Builds a release from a clean checkout: static binaries for linux-amd64 and
# linux-arm64, a tarball for each, and SHA256SUMS.
#
#   contrib/release.sh VERSION          # e.g. contrib/release.sh 0.2.0
#
# In order, and it stops at the first failure:
#   1. refuses a working tree with changes (a release is built from a commit)
#      and a CHANGELOG.md with no "## VERSION" entry;
#   2. runs the tests ($PRISN_RELEASE_TESTS, default contrib/test.sh: the
#      whole suite), then installs what the release needs (bootstrap.sh release);
#   3. bumps the version in its one place, project() in CMakeLists.txt, and
#      commits that ("Release VERSION") when it changed;
#   4. builds each target static and dynamic (the dynamic one only to report
#      its size: it must stay under 5 MB stripped), reports what each library
#      adds (from the link map), strips, smoke-tests each
#      static binary (contrib/smoke.sh; arm64 under qemu-aarch64-static);
#   5. stages each tarball with `cmake --install` plus what that does not
#      install yet (completions, the systemd unit, README), and writes
#      SHA256SUMS.
# Output: build-release/VERSION/dist/. Tag the release commit yourself.
set -eu
cd "$(dirname "$0")/.."
src=$(pwd)

die() { echo "Error: $1" >&2; [ -n "${2:-}" ] && echo "Hint: $2" >&2; exit "${3:-1}"; }

[ $# -eq 1 ] || die "usage: contrib/release.sh VERSION" "for example: contrib/release.sh 0.2.0" 2
version=$1
echo "$version" | grep -Eqx '[0-9]+\.[0-9]+\.[0-9]+' ||
  die "version '$version' is not MAJOR.MINOR.PATCH" "for example: contrib/release.sh 0.2.0" 2

git rev-parse --git-dir >/dev/null 2>&1 || die "$src is not a git checkout" "release from a clone of prisn"
if [ -n "$(git status --porcelain)" ]; then
  die "the working tree has uncommitted changes" "commit or stash them first (git status): a release is built from a commit"
fi
escaped=$(echo "$version" | sed 's/\./\\./g')
grep -Eq "^## \[?v?$escaped\]?([[:space:]]|$)" CHANGELOG.md ||
  die "CHANGELOG.md has no entry for $version" \
    "add a '## $version' section with the release notes (e.g. rename '## Unreleased'), commit it, and run again"

echo "Running the tests: ${PRISN_RELEASE_TESTS:-contrib/test.sh}" >&2
sh -c "${PRISN_RELEASE_TESTS:-contrib/test.sh}" >&2 || die "the tests failed: no release" "fix them, commit, and run again"
contrib/bootstrap.sh release

current=$(sed -n 's/^project(prisn VERSION \([0-9.]*\) .*/\1/p' CMakeLists.txt)
if [ "$current" != "$version" ]; then
  sed -i "s/^project(prisn VERSION $current /project(prisn VERSION $version /" CMakeLists.txt
  git commit -q -m "Release $version" CMakeLists.txt
  echo "Bumped the version $current -> $version (commit $(git rev-parse --short HEAD))" >&2
fi

out="$src/build-release/$version"
dist="$out/dist"
rm -rf "$out"
mkdir -p "$dist"

# build TARGET LINKAGE: configures and builds $out/TARGET-LINKAGE/prisn.
build() {
  # The link map says what each library adds (contrib/link_sizes.lua).
  flags="-DCMAKE_BUILD_TYPE=Release -DCMAKE_EXE_LINKER_FLAGS=-Wl,-Map=$out/$1-$2/prisn.map"
  [ "$2" = static ] && flags="$flags -DPRISN_STATIC=ON"
  [ "$1" = linux-arm64 ] && flags="$flags -DCMAKE_TOOLCHAIN_FILE=$src/cmake/aarch64-linux-gnu.cmake"
  # shellcheck disable=SC2086
  cmake -S "$src" -B "$out/$1-$2" $flags >/dev/null
  cmake --build "$out/$1-$2" -j"$(nproc)" --target prisn >"$out/$1-$2.log" 2>&1 ||
    { tail -n 30 "$out/$1-$2.log" >&2; die "the $1 $2 build failed (log: $out/$1-$2.log)"; }
}
strip_for() { if [ "$1" = linux-arm64 ]; then echo aarch64-linux-gnu-strip; else echo strip; fi; }
size_of() { stat -c %s "$1"; }

# Stages the tarball of TARGET from `cmake --install` (for /usr/local, where
# docs/INSTALL.md puts it: the systemd unit names that path), filling in what
# the install rules do not provide.
stage() {
  target=$1 name="prisn-$version-$1"
  stage_dir="$out/stage/$name"
  cmake --build "$out/$target-static" -j"$(nproc)" --target prisn_install_files >>"$out/$target-static.log" 2>&1 ||
    die "building what $target installs failed (log: $out/$target-static.log)"
  DESTDIR="$out/stage/destdir-$target" cmake --install "$out/$target-static" --prefix /usr/local >/dev/null
  mkdir -p "$out/stage/destdir-$target/usr/local"
  mv "$out/stage/destdir-$target/usr/local" "$stage_dir"
  mkdir -p "$stage_dir/bin"
  cp "$dist/$name" "$stage_dir/bin/prisn"
  host="$out/linux-amd64-static/prisn" # completion scripts are text: the host binary writes them
  if [ -z "$(find "$stage_dir" -path '*completion*' -o -name '_prisn' | head -n 1)" ]; then
    mkdir -p "$stage_dir/share/bash-completion/completions" "$stage_dir/share/zsh/site-functions" \
      "$stage_dir/share/fish/vendor_completions.d"
    "$host" completion bash >"$stage_dir/share/bash-completion/completions/prisn"
    "$host" completion zsh >"$stage_dir/share/zsh/site-functions/_prisn"
    "$host" completion fish >"$stage_dir/share/fish/vendor_completions.d/prisn.fish"
  fi
  if [ -z "$(find "$stage_dir" -name '*.service' | head -n 1)" ]; then
    mkdir -p "$stage_dir/lib/systemd/system"
    cp contrib/systemd/*.service "$stage_dir/lib/systemd/system/"
  fi
  mkdir -p "$stage_dir/share/doc/prisn"
  cp README.md CHANGELOG.md docs/INSTALL.md "$stage_dir/share/doc/prisn/"
  cp README.md "$stage_dir/"
  tar -C "$out/stage" --owner=0 --group=0 --numeric-owner -czf "$dist/$name.tar.gz" "$name"
}

sizes=""
for target in linux-amd64 linux-arm64; do
  for linkage in static dynamic; do
    echo "Building $target $linkage" >&2
    build "$target" "$linkage"
    "$(strip_for "$target")" -o "$out/$target-$linkage/prisn.stripped" "$out/$target-$linkage/prisn"
    bytes=$(size_of "$out/$target-$linkage/prisn.stripped")
    sizes="$sizes$(printf '%-12s %-8s %9d bytes stripped' "$target" "$linkage" "$bytes")
"
    sizes="$sizes$("$out/linux-amd64-static/prisn" lua contrib/link_sizes.lua "$out/$target-$linkage/prisn.map")
"
    if [ "$linkage" = dynamic ] && [ "$bytes" -ge 5000000 ]; then
      die "the dynamic $target binary is $bytes bytes stripped, over the 5 MB budget"
    fi
  done
  cp "$out/$target-static/prisn.stripped" "$dist/prisn-$version-$target"
done

for target in linux-amd64 linux-arm64; do
  echo "Smoke test: prisn-$version-$target" >&2
  emulator=""
  [ "$target" = linux-arm64 ] && emulator="--emulator qemu-aarch64-static"
  # shellcheck disable=SC2086
  contrib/smoke.sh $emulator "$dist/prisn-$version-$target" "$version" "$target" >&2 ||
    die "the smoke test of prisn-$version-$target failed: no release"
  stage "$target"
done

(cd "$dist" && sha256sum prisn-* >SHA256SUMS)
echo "Sizes:" >&2
printf '%s' "$sizes" >&2
echo "Release $version in $dist:"
ls -l "$dist"
echo "Next: git tag -a v$version -m 'prisn $version' && git push --follow-tags"
