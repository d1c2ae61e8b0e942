# skopeo reads the OCI layouts crossyard writes (tests) and is the push benchmark baseline.
apt_install skopeo
