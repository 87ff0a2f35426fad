#!/usr/bin/env bash
# Shared by the provisioning scripts of every VM (sourced, not run).
#
# SRC is the repository as the Vagrantfile syncs it into the VM; the images
# deploy/vagrant/up.sh saved on the host are in $SRC/deploy/vagrant/.images.
#
# The VM's credentials: deploy/vagrant/up.sh makes the cluster's PKI on the
# host and the Vagrantfile uploads this VM's share of it (one bundle per
# container, plan.py pki) to $PKI_UPLOAD; install_pki moves it to
# $STATE/bundles, private to root, whence each container mounts its own.
SRC=${KYB_SRC:-/kybernetes}
IMAGES=${KYB_IMAGES:-$SRC/deploy/vagrant/.images}
STATE=/var/lib/kyb
BUNDLES=$STATE/bundles
PKI_UPLOAD=${KYB_PKI_UPLOAD:-/tmp/kyb-pki}
SPEC_LABEL=org.kybernetes.spec
PKI_LABEL=org.kybernetes.pki

say() { printf '[%s %s] %s\n' "$(hostname)" "$(date +%T)" "$*"; }
die() { say "$*" >&2; exit 1; }

# plan IMAGE ARGS...: deploy/vagrant/plan.py, run inside IMAGE (kyb/python or
# kyb/node: both hold this project's code and dependencies in /opt/kyb), on
# the VM's network so that it reaches the API server; stdin is passed on.
# On the control plane the admin's bundle is mounted too (register-nodes).
plan() {
  local image=$1; shift
  local -a mounts=(-v "$SRC/deploy/vagrant:/src/deploy/vagrant:ro")
  [ -d "$BUNDLES/admin" ] && mounts+=(-v "$BUNDLES/admin:/etc/kybernetes/admin:ro")
  docker run --rm -i --network host "${mounts[@]}" \
    --entrypoint /opt/kyb/bin/python3 "$image" /src/deploy/vagrant/plan.py "$@"
}

# install_pki: the uploaded bundles (one directory per container) into
# $BUNDLES, directories 0700 and keys 0600, owned by root; the upload is
# removed (no key stays in /tmp). A bundle directory is updated in place,
# file by file, so a running container's mount keeps seeing it. Without an
# upload the installed bundles are kept.
install_pki() {
  if [ ! -d "$PKI_UPLOAD" ]; then
    [ -d "$BUNDLES" ] || die "no credentials uploaded to $PKI_UPLOAD (deploy/vagrant/up.sh makes them)"
    say "credentials: as installed"; return 0
  fi
  local dir name file target mode
  mkdir -p "$BUNDLES"; chmod 700 "$STATE" "$BUNDLES"
  for dir in "$PKI_UPLOAD"/*/; do
    name=$(basename "$dir")
    target=$BUNDLES/$name
    mkdir -p "$target"; chmod 700 "$target"
    for file in "$dir"*; do
      mode=644
      case $file in *.key|*/tokens.csv) mode=600 ;; esac
      if ! cmp -s "$file" "$target/$(basename "$file")"; then
        install -o root -g root -m "$mode" "$file" "$target/.new" \
          && mv "$target/.new" "$target/$(basename "$file")"
      fi
      chmod "$mode" "$target/$(basename "$file")"
    done
    for file in "$target"/*; do
      [ -e "$dir$(basename "$file")" ] || rm -f "$file"
    done
  done
  rm -rf "$PKI_UPLOAD"
  say "credentials installed: $(cd "$BUNDLES" && echo *)"
}

# bundle_digest NAME: what the container's credentials are (empty: none).
bundle_digest() {
  [ -d "$BUNDLES/$1" ] || return 0
  (cd "$BUNDLES/$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) \
    | sha256sum | cut -c1-16
}

# load_images: the saved images, loaded into the VM's Docker unless these
# very tarballs were loaded before.
load_images() {
  local tarball=$IMAGES/images.tar sum
  [ -f "$tarball" ] || die "$tarball missing: deploy/vagrant/up.sh saves the images before vagrant up"
  mkdir -p "$STATE"
  sum=$(cat "$IMAGES/images.ids" 2>/dev/null || sha256sum "$tarball")
  if [ "$(cat "$STATE/images.loaded" 2>/dev/null)" = "$sum" ]; then
    say "images up to date"; return 0
  fi
  say "loading images ($(( $(stat -c %s "$tarball") / 1000000 )) MB)"
  docker load -q -i "$tarball" | sed 's/^/  /'
  echo "$sum" >"$STATE/images.loaded"
}

# ensure_containers: read NAME TAB SPEC TAB IMAGE TAB ARGS lines (plan.py containers)
# from stdin; create each container, or recreate it when its spec, its
# image or its credentials changed, or start it when stopped; leave it
# alone otherwise.
ensure_containers() {
  local name spec ref quoted current image running pki
  local -a args
  while IFS=$'\t' read -r name spec ref quoted; do
    [ -n "$name" ] || continue
    eval "args=($quoted)"
    image=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null) || die "image $ref missing"
    pki=$(bundle_digest "$name")
    args=(--label "$PKI_LABEL=$pki" "${args[@]}")
    if docker container inspect "$name" >/dev/null 2>&1; then
      current=$(docker container inspect -f "{{index .Config.Labels \"$SPEC_LABEL\"}} {{.Image}} {{index .Config.Labels \"$PKI_LABEL\"}}" "$name")
      if [ "$current" = "$spec $image $pki" ]; then
        running=$(docker container inspect -f '{{.State.Running}}' "$name")
        if [ "$running" = true ]; then say "$name: running"; else docker start "$name" >/dev/null; say "$name: started"; fi
        continue
      fi
      docker rm -f "$name" >/dev/null
      say "$name: spec, image or credentials changed"
    fi
    docker run "${args[@]}" >/dev/null || die "docker run $name failed"
    say "$name: created"
  done
}
