# OpenSSH for the ssh:// Docker engine transport test (tests/test_docker_ssh.py): the docker SDK
# shells out to `ssh`, and the test starts its own sshd on a free 127.0.0.1 port (sourced by
# .ci/setup; apt_install from 00-apt.sh). No system sshd is started or enabled here.
apt_install openssh-server openssh-client
