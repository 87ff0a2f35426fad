#!/usr/bin/env bash
# Shared by the provisioning scripts of every VM (sourced, not run).
#
# SRC is the repository as the Vagrantfile syncs it into the VM; the images
# deploy/vagrant/up.sh saved on the host are in $SRC/deploy/vagrant/.images.
SRC=${KYB_SRC:-/kybernetes}
IMAGES=${KYB_IMAGES:-$SRC/deploy/vagrant/.images}
STATE=/var/lib/kyb
SPEC_LABEL=org.kybernetes.spec

say() { printf '[%s %s] %s\n' "$(hostname)" "$(date +%T)" "$*"; }
die() { say "$*" >&2; exit 1; }

# plan IMAGE ARGS...: deploy/vagrant/plan.py, run inside IMAGE (kyb/python or
# kyb/node: both hold this project's code and dependencies in /opt/kyb), on
# the VM's network so that it reaches the API server; stdin is passed on.
plan() {
  local image=$1; shift
  docker run --rm -i --network host -v "$SRC/deploy/vagrant:/src/deploy/vagrant:ro" \
    --entrypoint /opt/kyb/bin/python3 "$image" /src/deploy/vagrant/plan.py "$@"
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
# from stdin; create each container, or recreate it when its spec or its
# image changed, or start it when stopped; leave it alone otherwise.
ensure_containers() {
  local name spec ref quoted current image running
  local -a args
  while IFS=$'\t' read -r name spec ref quoted; do
    [ -n "$name" ] || continue
    eval "args=($quoted)"
    image=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null) || die "image $ref missing"
    if docker container inspect "$name" >/dev/null 2>&1; then
      current=$(docker container inspect -f "{{index .Config.Labels \"$SPEC_LABEL\"}} {{.Image}}" "$name")
      if [ "$current" = "$spec $image" ]; then
        running=$(docker container inspect -f '{{.State.Running}}' "$name")
        if [ "$running" = true ]; then say "$name: running"; else docker start "$name" >/dev/null; say "$name: started"; fi
        continue
      fi
      docker rm -f "$name" >/dev/null
      say "$name: spec or image changed"
    fi
    docker run "${args[@]}" >/dev/null || die "docker run $name failed"
    say "$name: created"
  done
}
