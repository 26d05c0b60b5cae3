#!/usr/bin/env bash
# Make what the ovnkube-route webhook needs to run, into OUTDIR:
#   ca.crt, ca.key      a CA (its certificate is the MutatingWebhookConfiguration's caBundle)
#   tls.crt, tls.key    the webhook's serving pair, signed by that CA, with SANs for the
#                       webhook Service's DNS names (<svc>.<ns>.svc[.cluster.local], ...)
#   plan.key            the plan-signing key: base64 of 32 random bytes (HMAC-SHA256)
#   ca-bundle.b64       ca.crt in base64, ready for the caBundle field
# and print the commands that create the Secrets and set the caBundle.
#
# Re-running into the same OUTDIR renews the serving pair with the same CA (so the
# caBundle stays valid) and never touches an existing plan.key: replacing the signing key
# silently would make every plan in the cluster fail verification. --new-ca makes a new CA.
#
# Keys are written with mode 0600. Never commit OUTDIR (certs/.gitignore ignores certs/out/).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: certs/gen.sh OUTDIR [--service NAME] [--namespace NS] [--san DNS:name|IP:addr]... [--days N] [--new-ca]

  OUTDIR           where to write the files (created if missing), e.g. certs/out
  --service NAME   webhook Service name (default ovnkube-route-webhook)
  --namespace NS   its namespace (default ovnkube-route)
  --san SAN        extra subjectAltName, e.g. IP:127.0.0.1 for a webhook reached by URL; repeatable
  --days N         serving certificate validity in days (default 365; the CA gets 10 years)
  --new-ca         make a new CA even if OUTDIR has one (the caBundle must then be updated)
EOF
}

die() { echo "certs/gen.sh: $*" >&2; exit 2; }

out=""
svc="ovnkube-route-webhook"
ns="ovnkube-route"
days=365
new_ca=0
extra_sans=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --service) [ $# -ge 2 ] || die "--service needs a value"; svc="$2"; shift 2 ;;
    --namespace) [ $# -ge 2 ] || die "--namespace needs a value"; ns="$2"; shift 2 ;;
    --san) [ $# -ge 2 ] || die "--san needs a value"; extra_sans+=("$2"); shift 2 ;;
    --days) [ $# -ge 2 ] || die "--days needs a value"; days="$2"; shift 2 ;;
    --new-ca) new_ca=1; shift ;;
    -*) die "unknown flag $1 (see --help)" ;;
    *) [ -z "$out" ] || die "only one OUTDIR may be given (got \"$out\" and \"$1\")"; out="$1"; shift ;;
  esac
done
[ -n "$out" ] || { usage >&2; exit 2; }
# DNS-1035 labels, as Kubernetes requires for Service and Namespace names.
label='^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$'
[[ "$svc" =~ $label ]] || die "--service \"$svc\": expected a DNS-1035 label (lower-case letters, digits, '-')"
[[ "$ns" =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die "--namespace \"$ns\": expected a DNS-1123 label"
[[ "$days" =~ ^[1-9][0-9]{0,4}$ ]] || die "--days \"$days\": expected a whole number of days"
for s in "${extra_sans[@]+"${extra_sans[@]}"}"; do
  [[ "$s" =~ ^(DNS:[A-Za-z0-9.*-]+|IP:[0-9A-Fa-f:.]+)$ ]] || die "--san \"$s\": expected DNS:<name> or IP:<address>"
done
command -v openssl >/dev/null || die "openssl is required (apt-get install openssl)"

umask 077
mkdir -p "$out"
# Made inside OUTDIR so every file lands by an atomic rename on the same filesystem.
tmp="$(mktemp -d "$out/.gen.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# EC P-256: accepted by the Go TLS stack of the API server, and fast to make.
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)

if [ "$new_ca" = 1 ] || [ ! -s "$out/ca.crt" ] || [ ! -s "$out/ca.key" ]; then
  openssl req -x509 "${newkey[@]}" -days 3650 -keyout "$tmp/ca.key" -out "$tmp/ca.crt" \
    -subj "/CN=ovnkube-route webhook CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  mv "$tmp/ca.key" "$out/ca.key"
  mv "$tmp/ca.crt" "$out/ca.crt"
  echo "made a new CA: $out/ca.crt" >&2
else
  echo "reusing the CA in $out (use --new-ca for a new one)" >&2
fi

sans="DNS:$svc,DNS:$svc.$ns,DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local"
for s in "${extra_sans[@]+"${extra_sans[@]}"}"; do sans="$sans,$s"; done
openssl req -x509 -CA "$out/ca.crt" -CAkey "$out/ca.key" "${newkey[@]}" -days "$days" \
  -keyout "$tmp/tls.key" -out "$tmp/tls.crt" -subj "/CN=$svc.$ns.svc" \
  -addext "basicConstraints=critical,CA:FALSE" -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
  -addext "extendedKeyUsage=serverAuth" -addext "subjectAltName=$sans" 2>/dev/null
# Key first, then cert, each by rename: a webhook watching these files sees a complete
# file every time (and the pair matches once both are in place).
mv "$tmp/tls.key" "$out/tls.key"
mv "$tmp/tls.crt" "$out/tls.crt"
chmod 0644 "$out/ca.crt" "$out/tls.crt"

if [ -s "$out/plan.key" ]; then
  echo "keeping the existing plan key $out/plan.key" >&2
else
  openssl rand -base64 32 > "$tmp/plan.key"
  mv "$tmp/plan.key" "$out/plan.key"
  echo "made a new plan key: $out/plan.key" >&2
fi

base64 -w0 < "$out/ca.crt" > "$out/ca-bundle.b64"
chmod 0644 "$out/ca-bundle.b64"

cat <<EOF
# Files in $out: ca.crt ca.key tls.crt tls.key plan.key ca-bundle.b64 (keys are mode 0600; never commit them).
# Serving certificate SANs: $sans

# 1. The namespace, then the Secrets the webhook Deployment mounts:
kubectl apply -f deploy/namespace.yaml
kubectl -n $ns create secret tls ovnkube-route-webhook-tls --cert=$out/tls.crt --key=$out/tls.key --dry-run=client -o yaml | kubectl apply -f -
kubectl -n $ns create secret generic ovnkube-route-plan-key --from-file=plan.key=$out/plan.key --dry-run=client -o yaml | kubectl apply -f -

# 2. Apply deploy/, then give the MutatingWebhookConfiguration this CA:
kubectl apply -f deploy/
kubectl patch mutatingwebhookconfiguration ovnkube-route --type=json \\
  -p '[{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"'"\$(cat $out/ca-bundle.b64)"'"}]'
EOF
