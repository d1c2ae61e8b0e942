# Packages the certs/registry tests need (sourced by .ci/run; apt_install from 00-apt.sh).
apt_install docker-registry openssl curl
