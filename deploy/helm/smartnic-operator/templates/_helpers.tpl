{{/*
The labels of an object's metadata: its component's name (the argument; none when empty) and
the part-of label the top-level kustomization adds to every object. Pod templates and selectors
carry only app.kubernetes.io/name, as in the kustomization.
*/}}
{{- define "smartnic.labels" -}}
{{- if . -}}
app.kubernetes.io/name: {{ . }}
{{ end -}}
app.kubernetes.io/part-of: smartnic-operator
{{- end }}

{{/* An image reference from images.<component> (the argument: list of root and component). */}}
{{- define "smartnic.image" -}}
{{- $root := index . 0 -}}
{{- $img := index $root.Values.images (index . 1) -}}
{{- printf "%s:%s" $img.repository (default $root.Chart.AppVersion $img.tag) -}}
{{- end }}

{{/* RUST_LOG of the operator and the agent. */}}
{{- define "smartnic.rustLog" -}}
{{ .Values.logLevel }},kube_runtime=warn
{{- end }}

{{/*
Whether the chart writes NicOperatorConfig `default` ("true" or ""): when asked to, when
resourcePrefix or nodeSelector differ from their defaults, and whenever the cluster holds the one
an earlier release wrote (its hook annotation), so that setting a value back to its default
updates the object instead of leaving the old value there.
*/}}
{{- define "smartnic.operatorConfig" -}}
{{- $defaultSelector := dict "kubernetes.io/os" "linux" -}}
{{- $existing := lookup "smartnic.io/v1alpha1" "NicOperatorConfig" "" "default" | default dict -}}
{{- $ours := eq (dig "metadata" "annotations" "helm.sh/hook" "" $existing) "pre-install,pre-upgrade" -}}
{{- if or .Values.operatorConfig.create (ne .Values.resourcePrefix "smartnic.io") (ne (toJson .Values.nodeSelector) (toJson $defaultSelector)) $ours -}}
true
{{- end -}}
{{- end }}

{{/* The webhook's Service name. */}}
{{- define "smartnic.webhookService" -}}
smartnic-operator-webhook
{{- end }}

{{/* The Secret the operator mounts its serving certificate from. */}}
{{- define "smartnic.webhookSecret" -}}
{{- if eq .Values.webhook.certificate.source "secret" -}}
{{ required "webhook.certificate.secret.name is required with source secret" .Values.webhook.certificate.secret.name }}
{{- else -}}
smartnic-operator-webhook-tls
{{- end -}}
{{- end }}

{{/*
The generated certificate of source selfSigned, as a dict of base64 strings (ca.crt, tls.crt,
tls.key): the one already in the cluster when the Secret holds all three (so `helm upgrade`
keeps it), else a new CA and a serving certificate signed by it. Computed once per render and
kept in .Values._selfSignedCert, so the Secret and both webhook configurations get the same CA.
*/}}
{{- define "smartnic.selfSignedCert" -}}
{{- if not (hasKey .Values "_selfSignedCert") -}}
{{- $secret := include "smartnic.webhookSecret" . -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secret -}}
{{- $data := dict -}}
{{- if $existing -}}{{- $data = default dict $existing.data -}}{{- end -}}
{{- if and (hasKey $data "ca.crt") (hasKey $data "tls.crt") (hasKey $data "tls.key") -}}
{{- $_ := set .Values "_selfSignedCert" (dict "ca.crt" (index $data "ca.crt") "tls.crt" (index $data "tls.crt") "tls.key" (index $data "tls.key")) -}}
{{- else -}}
{{- $days := int .Values.webhook.certificate.selfSigned.validityDays -}}
{{- $svc := printf "%s.%s.svc" (include "smartnic.webhookService" .) .Release.Namespace -}}
{{- $ca := genCA "smartnic-operator-webhook-ca" $days -}}
{{- $cert := genSignedCert $svc nil (list $svc (printf "%s.cluster.local" $svc)) $days $ca -}}
{{- $_ := set .Values "_selfSignedCert" (dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc)) -}}
{{- end -}}
{{- end -}}
{{- toJson .Values._selfSignedCert -}}
{{- end }}

{{/*
The clientConfig.caBundle line of a webhook (indented by the caller), or nothing with
cert-manager, whose CA injector fills it.
*/}}
{{- define "smartnic.caBundle" -}}
{{- $source := .Values.webhook.certificate.source -}}
{{- if eq $source "secret" -}}
caBundle: {{ required "webhook.certificate.secret.caBundle (base64 PEM of the CA) is required with source secret" .Values.webhook.certificate.secret.caBundle }}
{{- else if eq $source "selfSigned" -}}
caBundle: {{ index (include "smartnic.selfSignedCert" . | fromJson) "ca.crt" }}
{{- end -}}
{{- end }}

{{/* The cert-manager CA-injection annotation of the webhook configurations, with cert-manager. */}}
{{- define "smartnic.webhookAnnotations" -}}
{{- if eq .Values.webhook.certificate.source "certManager" -}}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/smartnic-operator-webhook
{{- end -}}
{{- end }}
