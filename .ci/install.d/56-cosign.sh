# cosign 2.5 and oras 1.2 from Debian trixie, through a private apt configuration: the system's
# apt sources are never changed. The mirror is the one crossyard finds (CROSSYARD_DEBIAN_MIRROR,
# [debian] mirror in crossyard.toml, else this machine's apt sources), so this step runs after
# 50-python.sh has installed crossyard.
if [ -x /usr/local/bin/cosign ] && [ -x /usr/local/bin/oras ]; then
  exit 0
fi
mirror=$(crossyard toolchains mirror)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
echo "deb ${mirror} trixie main" > "$tmp/sources.list"
opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache::Archives=$tmp/archives"
      -o APT::Get::List-Cleanup=0)
apt-get "${opts[@]}" update
cd "$tmp"
apt-get "${opts[@]}" download cosign oras
for deb in "$tmp"/cosign_*.deb "$tmp"/oras_*.deb; do
  dpkg -x "$deb" "$tmp/root"
done
install -m 0755 "$tmp/root/usr/bin/cosign" /usr/local/bin/cosign
install -m 0755 "$tmp/root/usr/bin/oras" /usr/local/bin/oras
/usr/local/bin/cosign version >/dev/null
/usr/local/bin/oras version >/dev/null
