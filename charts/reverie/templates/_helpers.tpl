{{/* The chart's name. */}}
{{- define "reverie.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the operator's Deployment, ServiceAccount, Service... */}}
{{- define "reverie.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "reverie.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object (each adds its app.kubernetes.io/component). */}}
{{- define "reverie.labels" -}}
helm.sh/chart: {{ include "reverie.chart" . }}
app.kubernetes.io/name: {{ include "reverie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: reverie
{{- end -}}

{{/* Labels of the operator's objects. */}}
{{- define "reverie.operatorLabels" -}}
{{ include "reverie.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels selecting the operator's pods. */}}
{{- define "reverie.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reverie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "reverie.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "reverie.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator image, also used for the dream and apply Jobs. */}}
{{- define "reverie.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Labels of the collector's objects. */}}
{{- define "reverie.collectorLabels" -}}
{{ include "reverie.labels" . }}
app.kubernetes.io/component: collector
{{- end -}}

{{/* Labels selecting the collector's pods. */}}
{{- define "reverie.collectorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "reverie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: collector
{{- end -}}
