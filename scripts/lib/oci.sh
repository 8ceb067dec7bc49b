# shellcheck shell=bash
# scripts/lib/oci.sh: OCI image tarballs without a registry or a container engine (sourced by
# hw-tests/node/images.sh and deploy/images/build.sh). An image is a tar of an OCI layout
# (oci-layout, index.json, blobs/sha256/...) for `ctr images import`; every file, layer and tarball
# has fixed times and order, so the same inputs give the same digests. Needs jq, tar, gzip,
# sha256sum.

# oci_tar DIR OUT [keep-owners]: a tar of directory DIR's contents into OUT, the same bytes for the
# same tree: names sorted, every mtime 0, owners root unless "keep-owners" (then the tree's numeric
# owners, as a root filesystem needs them).
oci_tar() {
  local own=(--owner=0 --group=0)
  [ "${3:-}" = keep-owners ] && own=()
  (cd "$1" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort \
    | tar --no-recursion --format=gnu --mtime=@0 "${own[@]}" --numeric-owner -cf - -T -) >"$2"
}

oci_sha() { sha256sum "$1" | cut -d' ' -f1; }

# oci_blob FILE LAYOUT: stores FILE as a blob of LAYOUT and prints its digest.
oci_blob() {
  local d
  d=$(oci_sha "$1")
  mkdir -p "$2/blobs/sha256"
  cp "$1" "$2/blobs/sha256/$d"
  echo "$d"
}

# oci_image NAME TAG CONFIG_JSON CREATED_BY OUT.tar LAYER...: one linux/amd64 image whose layers
# are the LAYERs, bottom first: each a directory (tarred with oci_tar) or an uncompressed tar file.
# CONFIG_JSON is the image config's `config` object (Entrypoint, User, Env, ...); the index names
# the image NAME:TAG (annotation io.containerd.image.name, which `ctr images import` uses as the
# image's name). Sets OCI_MANIFEST (the manifest's digest, hex) and OCI_UNPACKED (the layers'
# uncompressed bytes).
oci_image() {
  local name=$1 tag=$2 cfg=$3 by=$4 out=$5
  shift 5
  local w lay i=0 l diffids=() layers=() sizes=()
  w=$(mktemp -d)
  lay="$w/layout"
  mkdir -p "$lay"
  OCI_UNPACKED=0
  for l in "$@"; do
    i=$((i + 1))
    if [ -d "$l" ]; then oci_tar "$l" "$w/layer$i.tar"; else cp "$l" "$w/layer$i.tar"; fi
    gzip -n -9 <"$w/layer$i.tar" >"$w/layer$i.tar.gz"
    diffids+=("sha256:$(oci_sha "$w/layer$i.tar")")
    OCI_UNPACKED=$((OCI_UNPACKED + $(stat -c %s "$w/layer$i.tar")))
    layers+=("sha256:$(oci_blob "$w/layer$i.tar.gz" "$lay")")
    sizes+=("$(stat -c %s "$w/layer$i.tar.gz")")
    rm -f "$w/layer$i.tar" "$w/layer$i.tar.gz"
  done
  jq -cn --argjson c "$cfg" --arg by "$by" --args '{
      created: "1970-01-01T00:00:00Z", architecture: "amd64", os: "linux", config: $c,
      rootfs: { type: "layers", diff_ids: $ARGS.positional },
      history: [$ARGS.positional[] | { created: "1970-01-01T00:00:00Z", created_by: $by }] }' \
    "${diffids[@]}" | tr -d '\n' >"$w/config.json"
  local config
  config=$(oci_blob "$w/config.json" "$lay")
  jq -cn --arg c "sha256:$config" --argjson cs "$(stat -c %s "$w/config.json")" \
    --argjson sizes "$(printf '%s\n' "${sizes[@]}" | jq -cs .)" --args '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs },
      layers: [$ARGS.positional | to_entries[]
        | { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: .value, size: $sizes[.key] }] }' \
    "${layers[@]}" | tr -d '\n' >"$w/manifest.json"
  OCI_MANIFEST=$(oci_blob "$w/manifest.json" "$lay")
  jq -cn --arg m "sha256:$OCI_MANIFEST" --argjson ms "$(stat -c %s "$w/manifest.json")" \
    --arg name "$name:$tag" --arg tag "$tag" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
        platform: { architecture: "amd64", os: "linux" },
        annotations: { "io.containerd.image.name": $name, "org.opencontainers.image.ref.name": $tag } }] }' \
    | tr -d '\n' >"$lay/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$lay/oci-layout"
  chmod -R u=rwX,go=rX "$lay"
  oci_tar "$lay" "$out"
  rm -rf "$w"
}
