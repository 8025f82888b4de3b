{{/*
Base of every object name: fullnameOverride, else the release name when it
contains "sluice", else "<release>-sluice". A release named `sluice` gets
deploy/'s names (sluice-controller, sluice-leader-election, ...).
*/}}
{{- define "sluice.base" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "sluice" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-sluice" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The controller's name: Deployment, ServiceAccount, ClusterRole, Lease. */}}
{{- define "sluice.fullname" -}}
{{- printf "%s-controller" (include "sluice.base" .) -}}
{{- end -}}

{{/*
"true" unless the base is "sluice": then the install is deploy/'s and carries
its labels only; any other base adds app.kubernetes.io/instance to labels and
selectors, so that two releases in one namespace never select each other's pods.
*/}}
{{- define "sluice.instanced" -}}
{{- if ne (include "sluice.base" .) "sluice" -}}true{{- end -}}
{{- end -}}

{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: sluice
{{- if include "sluice.instanced" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}
{{- end -}}

{{/* Labels of every object: deploy/'s, the instance label of a non-default release, commonLabels. */}}
{{- define "sluice.labels" -}}
{{ include "sluice.selectorLabels" . }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository@digest when a digest is set, else repository:tag (tag defaults to appVersion). */}}
{{- define "sluice.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The one watched namespace in namespaced mode, or "" for all namespaces. */}}
{{- define "sluice.watchNamespace" -}}
{{- if gt (len .Values.watchNamespaces) 1 -}}
{{- fail (printf "watchNamespaces: the controller watches one namespace (--namespace), got %d; install the chart once per namespace (each release has its own Lease)" (len .Values.watchNamespaces)) -}}
{{- end -}}
{{- if .Values.watchNamespaces -}}
{{- first .Values.watchNamespaces -}}
{{- end -}}
{{- end -}}
