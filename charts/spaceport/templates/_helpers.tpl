{{/*
The chart name, truncated to a DNS label.
*/}}
{{- define "spaceport.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The object name prefix: "<release>-<chart>", or the release name when it
already contains the chart name.
*/}}
{{- define "spaceport.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "spaceport.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "spaceport.labels" -}}
helm.sh/chart: {{ include "spaceport.chart" . }}
app.kubernetes.io/name: {{ include "spaceport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels of one component: (dict "ctx" $ "component" "proxy").
*/}}
{{- define "spaceport.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spaceport.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
All labels of one component: (dict "ctx" $ "component" "proxy").
*/}}
{{- define "spaceport.componentLabels" -}}
{{ include "spaceport.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
The name of one component's objects: (dict "ctx" $ "component" "proxy").
*/}}
{{- define "spaceport.componentName" -}}
{{- printf "%s-%s" (include "spaceport.fullname" .ctx | trunc 52 | trimSuffix "-") .component }}
{{- end }}

{{- define "spaceport.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "spaceport.domain" -}}
{{- required "domain is required: Spaces are served at <owner>-<name>.<domain>" .Values.domain }}
{{- end }}

{{- define "spaceport.hubHost" -}}
{{- default (printf "hub.%s" (include "spaceport.domain" .)) .Values.hub.host }}
{{- end }}

{{- define "spaceport.hubPublicUrl" -}}
{{- default (printf "https://%s" (include "spaceport.hubHost" .)) .Values.hub.publicUrl }}
{{- end }}

{{/*
The URL the controller and the proxy reach the hub at, inside the cluster.
*/}}
{{- define "spaceport.hubInternalUrl" -}}
{{- printf "http://%s.%s.svc:%v" (include "spaceport.componentName" (dict "ctx" . "component" "hub")) .Release.Namespace .Values.hub.service.port }}
{{- end }}

{{- define "spaceport.hubTokenSecret" -}}
{{- default (include "spaceport.componentName" (dict "ctx" . "component" "hub-token")) .Values.hub.adminTokenSecret }}
{{- end }}

{{- define "spaceport.hubNamespace" -}}
{{- default .Release.Namespace .Values.hub.spaceNamespace }}
{{- end }}

{{/*
The namespaces Space pods run in, as a JSON list: the watched ones, or (when
all are watched) the hub's, which is where the chart knows Spaces go.
*/}}
{{- define "spaceport.spaceNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- toJson .Values.watchNamespaces }}
{{- else }}
{{- toJson (list (include "spaceport.hubNamespace" .)) }}
{{- end }}
{{- end }}

{{/*
The Docker API endpoint builds go to; empty when none is configured.
*/}}
{{- define "spaceport.builderEndpoint" -}}
{{- if .Values.builder.inCluster.enabled }}
{{- printf "tcp://%s.%s.svc:2375" (include "spaceport.componentName" (dict "ctx" . "component" "builder")) .Release.Namespace }}
{{- else }}
{{- .Values.builder.endpoint }}
{{- end }}
{{- end }}

{{/*
Pod-level fields every component but the builder shares:
(dict "ctx" $ "values" .Values.proxy "component" "proxy").
*/}}
{{- define "spaceport.podCommon" -}}
serviceAccountName: {{ include "spaceport.componentName" (dict "ctx" .ctx "component" .component) }}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The flavor catalog file (the runtime's format: include_builtin, flavors).
*/}}
{{- define "spaceport.flavorsFile" -}}
{{- dict "include_builtin" .Values.flavors.includeBuiltin "flavors" .Values.flavors.catalog | toYaml }}
{{- end }}
