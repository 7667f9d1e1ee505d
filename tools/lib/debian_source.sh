# Sourced by tools/setup.sh and tools/third_party/fetch.sh (bash).
# debian_source PACKAGE WORK_DIR [VERSION]: unpacks Debian's source package PACKAGE (at VERSION
# when given and still in the archive, else the current one) under WORK_DIR and prints the path of
# the unpacked tree. Uses a private copy of the machine's own apt sources with deb-src added, so
# no system file changes and no mirror is hard-coded.
debian_source() {
  local package=$1 work=$2 version=${3:-}
  mkdir -p "$work/apt/sources.list.d" "$work/apt/lists/partial"
  local found=0 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] || continue
    sed -E 's/^Types:[[:space:]]*deb$/Types: deb deb-src/' "$f" > "$work/apt/sources.list.d/$(basename "$f")"
    found=1
  done
  if [[ -f /etc/apt/sources.list ]]; then
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$work/apt/sources.list.d/src.list" || true
    [[ -s "$work/apt/sources.list.d/src.list" ]] && found=1
  fi
  (( found )) || { echo "debian_source: no apt sources found under /etc/apt" >&2; return 1; }
  local aptopts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/sources.list.d"
                 -o "Dir::State::Lists=$work/apt/lists" -o APT::Sandbox::User=root)
  if [[ ! -f "$work/apt/lists/.updated" ]]; then
    apt-get "${aptopts[@]}" update -qq < /dev/null >&2 || return 1
    touch "$work/apt/lists/.updated"
  fi
  local dest="$work/$package.src"
  rm -rf "$dest" && mkdir -p "$dest"
  if [[ -n "$version" ]]; then
    (cd "$dest" && apt-get "${aptopts[@]}" source -qq --download-only "$package=$version" < /dev/null >&2) ||
      (cd "$dest" && apt-get "${aptopts[@]}" source -qq --download-only "$package" < /dev/null >&2) || return 1
  else
    (cd "$dest" && apt-get "${aptopts[@]}" source -qq --download-only "$package" < /dev/null >&2) || return 1
  fi
  # dpkg-source applies Debian's patches (the tree builds as Debian's package does); without
  # dpkg-dev the upstream tarball alone is unpacked.
  local dsc
  dsc=$(find "$dest" -maxdepth 1 -name '*.dsc' | head -n 1)
  if command -v dpkg-source > /dev/null && [[ -n "$dsc" ]]; then
    (cd "$dest" && dpkg-source -x "$(basename "$dsc")" tree > /dev/null) || return 1
  else
    local orig
    orig=$(find "$dest" -maxdepth 1 -name '*.orig.tar.*' | head -n 1)
    [[ -n "$orig" ]] || { echo "debian_source: no upstream tarball for $package" >&2; return 1; }
    mkdir -p "$dest/tree" && tar -xf "$orig" -C "$dest/tree" --strip-components=1
  fi
  echo "$dest/tree"
}
