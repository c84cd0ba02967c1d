{{/*
Chart name.
*/}}
{{- define "sentinel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or the release name when it already contains
the chart name. Kept to 57 characters so that "-ops" suffixes fit in 63.
*/}}
{{- define "sentinel.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 57 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sentinel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "sentinel.labels" -}}
helm.sh/chart: {{ include "sentinel.chart" . }}
{{ include "sentinel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sentinel
{{- end }}

{{/*
Selector labels (pods).
*/}}
{{- define "sentinel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sentinel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sentinel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sentinel.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Name of the ConfigMap holding sentinel.kdl, and its key.
*/}}
{{- define "sentinel.configMapName" -}}
{{- default (include "sentinel.fullname" .) .Values.config.existingConfigMap }}
{{- end }}

{{- define "sentinel.configMapKey" -}}
{{- if .Values.config.existingConfigMap }}{{ .Values.config.existingConfigMapKey }}{{ else }}sentinel.kdl{{ end }}
{{- end }}

{{/*
The rendered sentinel.kdl (config.raw through tpl).
*/}}
{{- define "sentinel.config" -}}
{{- tpl .Values.config.raw . }}
{{- end }}

{{/*
Secrets: names, and whether the chart's own Secret is needed.
*/}}
{{- define "sentinel.tlsSecretName" -}}
{{- default (include "sentinel.fullname" .) .Values.tls.existingSecret }}
{{- end }}

{{- define "sentinel.tokenSecretName" -}}
{{- default (include "sentinel.fullname" .) .Values.controlPlane.existingSecret }}
{{- end }}

{{- define "sentinel.tokenSecretKey" -}}
{{- if .Values.controlPlane.existingSecret }}{{ .Values.controlPlane.existingSecretKey }}{{ else }}admin-token{{ end }}
{{- end }}

{{- define "sentinel.ownTLSSecret" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) }}true{{ end }}
{{- end }}

{{- define "sentinel.ownTokenSecret" -}}
{{- if and .Values.controlPlane.enabled (not .Values.controlPlane.existingSecret) }}true{{ end }}
{{- end }}

{{/*
Graceful shutdown in seconds: the config's graceful-shutdown-timeout-secs
when the rendered config.raw sets it, else shutdown.gracefulTimeoutSeconds.
*/}}
{{- define "sentinel.gracefulSeconds" -}}
{{- $graceful := int .Values.shutdown.gracefulTimeoutSeconds }}
{{- if not .Values.config.existingConfigMap }}
{{- $line := regexFind "(?m)(^|[{;])[ \t]*graceful-shutdown-timeout-secs[ \t]+[0-9]+" (include "sentinel.config" .) }}
{{- if $line }}
{{- $graceful = regexFind "[0-9]+$" $line | int }}
{{- end }}
{{- end }}
{{- $graceful }}
{{- end }}

{{/*
Pod termination grace period: preStop drain + graceful shutdown + 5 s,
unless terminationGracePeriodSeconds is set.
*/}}
{{- define "sentinel.terminationGracePeriodSeconds" -}}
{{- $t := .Values.terminationGracePeriodSeconds }}
{{- if and (not (kindIs "invalid" $t)) (not (kindIs "string" $t)) }}
{{- int $t }}
{{- else }}
{{- add (int .Values.shutdown.drainSeconds) (int (include "sentinel.gracefulSeconds" .)) 5 }}
{{- end }}
{{- end }}

{{/*
Checks of value combinations that the schema cannot express clearly.
*/}}
{{- define "sentinel.validate" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) (or (not .Values.tls.cert) (not .Values.tls.key)) }}
{{- fail "tls.enabled needs tls.existingSecret, or both tls.cert and tls.key" }}
{{- end }}
{{- if and .Values.service.http3.enabled (not .Values.tls.enabled) }}
{{- fail "service.http3.enabled needs tls.enabled: HTTP/3 is always encrypted" }}
{{- end }}
{{- if and (not .Values.config.existingConfigMap) (not (trim .Values.config.raw)) }}
{{- fail "config.raw is empty: give a sentinel.kdl, or config.existingConfigMap" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas is below autoscaling.minReplicas" }}
{{- end }}
{{- end }}
