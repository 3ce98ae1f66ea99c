#!/usr/bin/env bash
# Installs LemonLDAP::NG 2.16 from Debian (bookworm) for tests/e2e/test_lemonldap_e2e.py: the
# portal (run by the tests with plackup on 127.0.0.1, no web server), the CLI that edits its
# configuration (in the manager package) and rotateOidcKeys. Idempotent: does nothing when every
# package is already installed.
#
# The portal package needs a FastCGI/uWSGI server and an httpd (nginx here); neither ever runs:
# a policy-rc.d answering 101 keeps their postinst from starting them, and is restored (or
# removed) afterwards. The Perl modules after nginx are only "recommended" by Debian, but the
# portal answers 500 to every request without them (captcha: GD::SecurityImage with
# Image::Magick; the register plugin: MIME::Entity, Email::Sender, String::Random; the OIDC
# issuer: IO::String, Crypt::OpenSSL::Bignum); the CLI needs Email::Sender too.
set -euo pipefail

PACKAGES=(
  liblemonldap-ng-portal-perl liblemonldap-ng-manager-perl lemonldap-ng-fastcgi-server nginx
  libgd-securityimage-perl libimage-magick-perl libmime-tools-perl libemail-sender-perl
  libstring-random-perl libio-string-perl libcrypt-openssl-bignum-perl
)

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for package in "${PACKAGES[@]}"; do
  installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "LemonLDAP::NG: already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

POLICY=/usr/sbin/policy-rc.d
backup=""
if [ -e "$POLICY" ]; then
  backup="$(mktemp)"
  $SUDO cp -p "$POLICY" "$backup"
fi
restore_policy() {
  if [ -n "$backup" ]; then
    $SUDO cp -p "$backup" "$POLICY"
    rm -f "$backup"
  else
    $SUDO rm -f "$POLICY"
  fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# install-lemonldap.sh: start no service while installing\nexit 101\n' \
  | $SUDO tee "$POLICY" >/dev/null
$SUDO chmod 755 "$POLICY"

echo "LemonLDAP::NG: installing ${missing[*]}"
APT=(-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
$SUDO apt-get update -qq "${APT[@]}"
status=0
$SUDO apt-get install -y -qq --no-install-recommends "${APT[@]}" "${missing[@]}" >/dev/null \
  || status=$?

# apt-get also configures packages that something else left half-installed and fails on
# theirs: fail only when one of ours is missing.
for package in "${PACKAGES[@]}"; do
  if ! installed "$package"; then
    echo "LemonLDAP::NG: $package is not installed (apt-get exit $status)" >&2
    exit 1
  fi
done
[ "$status" = 0 ] || echo "LemonLDAP::NG: installed; apt-get exit $status came from other packages" >&2
echo "LemonLDAP::NG: installed"
