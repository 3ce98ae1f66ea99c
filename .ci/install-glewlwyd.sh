#!/usr/bin/env bash
# Installs Glewlwyd (Debian's `glewlwyd`, 2.7.5 on bookworm) and `sqlite3` for the second real
# OpenID Provider of the e2e tests (tests/e2e/_glewlwyd.py). Idempotent: does nothing when both
# are installed. The package's own service is never left running: the tests start their own
# glewlwyd, on a free 127.0.0.1 port, from a private config and database.
set -euo pipefail

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

if installed glewlwyd && installed sqlite3 && command -v glewlwyd >/dev/null \
  && command -v sqlite3 >/dev/null; then
  echo "glewlwyd $(dpkg-query -W -f='${Version}' glewlwyd) and sqlite3 already installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# Keep the postinst from starting the packaged service (invoke-rc.d asks policy-rc.d; 101 means
# "action forbidden"). An existing policy-rc.d (e.g. Docker's, which already exits 101) is kept.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# temporary, written by .ci/install-glewlwyd.sh\nexit 101\n' \
    | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  OWN_POLICY=1
fi
cleanup() { if [ -n "$OWN_POLICY" ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

# "No configuration": the tests write their own config and build their own SQLite database.
# (With the default "Personalized" and no database chosen, the 2.7.5 postinst falls through to
# its PostgreSQL branch, runs psql against localhost:5432 and fails.) dbconfig-sqlite3 is named
# so that apt does not pick dbconfig-mysql (and a MariaDB client) for the dependency.
echo "glewlwyd glewlwyd/config_type select No configuration" | $SUDO debconf-set-selections

APT_OPTS=(-y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends)
$SUDO apt-get update -qq
# A previous failed try may have left glewlwyd unpacked but not configured.
$SUDO dpkg --configure --pending >/dev/null 2>&1 || true
$SUDO apt-get install "${APT_OPTS[@]}" glewlwyd sqlite3 dbconfig-sqlite3 >/dev/null

# Belt and braces: if some init system started the packaged service anyway, stop it.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now glewlwyd >/dev/null 2>&1 || true
elif [ -s /var/run/glewlwyd.pid ] && [ -x /etc/init.d/glewlwyd ]; then
  $SUDO /etc/init.d/glewlwyd stop >/dev/null 2>&1 || true  # by its pidfile: only the service
fi

echo "installed glewlwyd $(dpkg-query -W -f='${Version}' glewlwyd)"
