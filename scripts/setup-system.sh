#!/usr/bin/env bash
# Installs the Debian packages deploykit's tests, lab and demo run against (real borg, OpenSSH,
# PostgreSQL, MariaDB, GNU tar, ACL/xattr tools, ansible-core for the fleet collection's tests). Idempotent:
# does nothing when all are present.
set -euo pipefail
packages=(borgbackup openssh-server openssh-client postgresql mariadb-server mariadb-client acl attr tar util-linux bsdutils procps iproute2 ansible-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-system: missing Debian packages: ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "setup-system: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps the install small; policy-rc.d stops the packages from starting
# system-wide daemons (sshd, postgres, mariadb) that the lab does not use.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}"
