{{- define "ovnkube-route.labels" -}}
app.kubernetes.io/name: ovnkube-route
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ovnkube-route.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ovnkube-route.webhookService" -}}ovnkube-route-webhook{{- end -}}

{{/*
The generated CA and serving pair, as JSON {ca, crt, key} (base64): the existing Secret's when
there is one (upgrades keep them), else made once per render (cached in .Values, so the Secret
and the caBundle get the same CA).
*/}}
{{- define "ovnkube-route.generatedTLS" -}}
{{- if not (hasKey .Values "__generatedTLS") -}}
{{- $svc := include "ovnkube-route.webhookService" . -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace .Values.tls.secretName -}}
{{- if and $existing (index ($existing.data | default dict) "ca.crt") -}}
{{- $_ := set .Values "__generatedTLS" (dict "ca" (index $existing.data "ca.crt") "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key")) -}}
{{- else -}}
{{- $ca := genCA "ovnkube-route webhook CA" 3650 -}}
{{- $names := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) -}}
{{- $cert := genSignedCert (printf "%s.%s.svc" $svc .Release.Namespace) nil $names (int .Values.tls.validityDays) $ca -}}
{{- $_ := set .Values "__generatedTLS" (dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc)) -}}
{{- end -}}
{{- end -}}
{{- index .Values "__generatedTLS" | toJson -}}
{{- end -}}
