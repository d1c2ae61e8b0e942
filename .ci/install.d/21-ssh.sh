# OpenSSH for the ssh:// Docker engine transport test (tests/test_docker_ssh.py) and the SSH
# executor's test cluster (tests/helpers/sshcluster.py: sshd per network namespace, made with
# iproute2's `ip netns`/veth/bridge). The tests start their own sshd; no system sshd is started or
# enabled here (sourced by .ci/setup; apt_install from 00-apt.sh).
apt_install openssh-server openssh-client iproute2
