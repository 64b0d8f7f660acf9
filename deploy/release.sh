#!/usr/bin/env bash
# Builds the release set of capt-status into OUT (default: dist/ at the top of the repository):
#
#   capt-host      the operator and CLI, a stripped static (musl) x86_64 Linux binary, built
#                  without the demo (no test double, no simulated CAPT world), profile `dist`
#   policy.wasm    the default capt-status policy component (the one the binary embeds)
#   install.yaml   deploy/crds and deploy rendered with kustomize, the image set to IMAGE:
#                  `kubectl apply --server-side -f install.yaml` installs everything
#   SHA256SUMS     the digests of the three
#
# Usage: deploy/release.sh [--image NAME:TAG] [--manifests-only] [OUT]
#
# Needs kubectl (for `kubectl kustomize`; $KUBECTL overrides which one) and, unless
# --manifests-only, the musl C toolchain (Debian: `apt-get install musl-tools`). The binary's
# target is added to the pinned toolchain with rustup if it is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="capt-status:dev"
manifests_only=false
out=""
while (($#)); do
    case "$1" in
        --image) image="${2:?--image needs NAME:TAG}"; shift 2 ;;
        --image=*) image="${1#--image=}"; shift ;;
        --manifests-only) manifests_only=true; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "deploy/release.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) out="$1"; shift ;;
    esac
done
out="${out:-$root/dist}"
kubectl="${KUBECTL:-kubectl}"
say() { echo "deploy/release.sh: $*" >&2; }

[[ "$image" == *:* || "$image" == *@* ]] || { say "--image $image: expected NAME:TAG or NAME@DIGEST"; exit 2; }
command -v "$kubectl" >/dev/null || { say "kubectl not found (set KUBECTL)"; exit 1; }
mkdir -p "$out"

# install.yaml: the CRDs first, then the operator with its image replaced. The overlay lives in
# a temporary folder at the top of the repository, so that its relative references stay in
# bounds (kustomize refuses to load a folder from inside itself).
overlay="$(mktemp -d "$root/.release-XXXXXX")"
trap 'rm -rf "$overlay"' EXIT
if [[ "$image" == *@* ]]; then
    pin="digest: ${image#*@}"; name="${image%%@*}"
else
    pin="newTag: ${image##*:}"; name="${image%:*}"
fi
cat > "$overlay/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../deploy/crds
- ../deploy
images:
- name: capt-status
  newName: $name
  $pin
YAML
{
    echo "# capt-status $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown): the CAPT CRDs and the operator (image $image)."
    echo "#   kubectl apply --server-side -f install.yaml"
    "$kubectl" kustomize "$overlay"
} > "$out/install.yaml"
say "wrote $out/install.yaml"

if ! $manifests_only; then
    target=x86_64-unknown-linux-musl
    command -v musl-gcc >/dev/null || { say "musl-gcc not found: apt-get install musl-tools"; exit 1; }
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
    say "building capt-host for $target (profile dist; minutes)"
    CC_x86_64_unknown_linux_musl=musl-gcc \
        cargo build --manifest-path "$root/Cargo.toml" --profile dist --locked \
        -p capt-host --no-default-features --target "$target"
    cp "$root/target/$target/dist/capt-host" "$out/capt-host"
    # The component the build script built and embedded (one build folder per build-script hash:
    # take the newest).
    policy="$(ls -t "$root"/target/"$target"/dist/build/capt-host-*/out/default-policy.wasm | head -1)"
    cp "$policy" "$out/policy.wasm"
    say "wrote $out/capt-host and $out/policy.wasm"
    (cd "$out" && sha256sum capt-host policy.wasm install.yaml > SHA256SUMS)
else
    (cd "$out" && sha256sum install.yaml > SHA256SUMS)
fi
say "done: $out"
