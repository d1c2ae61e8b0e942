# What the certificate tests drive for real: OpenSSL's verifier, skopeo (Docker certs.d layout),
# containerd + ctr (hosts.toml), and the distribution registry they talk to.
apt_install openssl skopeo docker-registry
# containerd.io (Docker's own package) conflicts with Debian's containerd: keep whichever is there.
if ! command -v ctr >/dev/null 2>&1; then
  apt_install containerd
fi
