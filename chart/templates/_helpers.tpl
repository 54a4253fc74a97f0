{{/* Names, labels and the image shared by every template of the chart. */}}

{{/* The release's base name: the release name, or the chart's name when it is not in it. */}}
{{- define "multi-eni.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; `component` is controller or manager. */}}
{{- define "multi-eni.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "multi-eni.selectorLabels" . }}
{{- end -}}

{{/* Labels that select one component's pods. */}}
{{- define "multi-eni.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The ServiceAccount of a component: its own name, or <fullname>-<component>. */}}
{{- define "multi-eni.serviceAccountName" -}}
{{- $values := index .root.Values .component -}}
{{- $values.serviceAccount.name | default (printf "%s-%s" (include "multi-eni.fullname" .root) .component) -}}
{{- end -}}

{{- define "multi-eni.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Environment variables both components read. */}}
{{- define "multi-eni.commonEnv" -}}
- name: LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- end -}}
