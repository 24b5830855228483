{{/*
Names and labels, in the conventions of the common charts.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "guichet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The fully qualified name: fullnameOverride, else RELEASE-NAME (or RELEASE when it already
contains the name). Truncated to 63 characters (DNS label).
*/}}
{{- define "guichet.fullname" -}}
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

{{/* A name derived from the full name: (dict "ctx" $ "suffix" "redis"). */}}
{{- define "guichet.componentName" -}}
{{- printf "%s-%s" (include "guichet.fullname" .ctx | trunc (int (sub 62 (len .suffix)))) .suffix | trimSuffix "-" -}}
{{- end -}}

{{- define "guichet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "guichet.labels" -}}
helm.sh/chart: {{ include "guichet.chart" . }}
app.kubernetes.io/name: {{ include "guichet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: guichet
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Selector labels of the Guichet pods. The component label keeps them apart from the embedded
Redis pods of the same release.
*/}}
{{- define "guichet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "guichet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "guichet.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "guichet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{/*
metadata.annotations of every object: commonAnnotations, plus more given as a dict; the
whole block (on its own lines, indented for metadata) or nothing.
*/}}
{{- define "guichet.annotations" -}}
{{- $all := merge (deepCopy (default dict .extra)) (default dict .ctx.Values.commonAnnotations) -}}
{{- with $all }}
{{- printf "annotations:\n%s" (toYaml . | indent 2) | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "guichet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "guichet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference from { registry, repository, tag, digest }: (dict "image" ... "default" tag). */}}
{{- define "guichet.imageRef" -}}
{{- $repo := .image.repository -}}
{{- if .image.registry -}}
{{- $repo = printf "%s/%s" .image.registry .image.repository -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (toString (default .default .image.tag)) -}}
{{- end -}}
{{- end -}}

{{- define "guichet.image" -}}
{{- include "guichet.imageRef" (dict "image" .Values.image "default" .Chart.AppVersion) -}}
{{- end -}}

{{/*
The session store's mode: embedded, external-url, external-sentinel or memory. Also refuses
contradictory settings, with a message naming the values.
*/}}
{{- define "guichet.redis.mode" -}}
{{- $r := .Values.redis -}}
{{- if and $r.embedded.enabled $r.external.enabled -}}
{{- fail "redis.embedded.enabled and redis.external.enabled are both true: choose one" -}}
{{- end -}}
{{- if $r.external.enabled -}}
{{- if $r.external.sentinel.enabled -}}
{{- if or $r.external.url $r.external.existingSecret -}}
{{- fail "redis.external.sentinel.enabled: leave redis.external.url and redis.external.existingSecret empty (exactly one of URL and Sentinel)" -}}
{{- end -}}
{{- if not $r.external.sentinel.masterName -}}
{{- fail "redis.external.sentinel.masterName is required with Sentinel" -}}
{{- end -}}
{{- if not $r.external.sentinel.nodes -}}
{{- fail "redis.external.sentinel.nodes: list at least one sentinel (host:port)" -}}
{{- end -}}
external-sentinel
{{- else -}}
{{- if and $r.external.url $r.external.existingSecret -}}
{{- fail "redis.external: set url or existingSecret, not both" -}}
{{- end -}}
{{- if not (or $r.external.url $r.external.existingSecret) -}}
{{- fail "redis.external.enabled: set redis.external.existingSecret (a Secret holding the URL), redis.external.url, or enable redis.external.sentinel" -}}
{{- end -}}
external-url
{{- end -}}
{{- else if $r.embedded.enabled -}}
embedded
{{- else -}}
memory
{{- end -}}
{{- end -}}

{{- define "guichet.redis.enabled" -}}
{{- if ne (include "guichet.redis.mode" .) "memory" -}}true{{- end -}}
{{- end -}}

{{/* The Secret holding the chart-managed values (client secrets, inline Redis credentials). */}}
{{- define "guichet.secretName" -}}
{{- include "guichet.fullname" . -}}
{{- end -}}

{{- define "guichet.sessionSecretName" -}}
{{- if .Values.sessionKey.existingSecret -}}
{{- .Values.sessionKey.existingSecret -}}
{{- else -}}
{{- include "guichet.componentName" (dict "ctx" . "suffix" "session") -}}
{{- end -}}
{{- end -}}

{{- define "guichet.redis.fullname" -}}
{{- include "guichet.componentName" (dict "ctx" . "suffix" "redis") -}}
{{- end -}}

{{/* True when the chart-managed Secret has at least one key. */}}
{{- define "guichet.secret.needed" -}}
{{- $ext := .Values.redis.external -}}
{{- $mode := include "guichet.redis.mode" . -}}
{{- if or .Values.secrets (and (eq $mode "external-url") $ext.url) (and $ext.enabled $ext.auth.password (not $ext.auth.existingSecret)) (and $ext.enabled $ext.auth.username (not $ext.auth.existingSecretUsernameKey)) (and (eq $mode "external-sentinel") $ext.sentinel.password (not $ext.sentinel.existingSecret)) -}}
true
{{- end -}}
{{- end -}}

{{/*
A value kept across upgrades: the existing Secret's key when it exists (lookup), else a new
random value: (dict "ctx" $ "secret" NAME "key" KEY "bytes" N) -> base64 of N random bytes;
(dict ... "alphanumeric" N) -> N letters and digits. Not base64-encoded again.
*/}}
{{- define "guichet.stableRandom" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .secret -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else if .bytes -}}
{{- randBytes (int .bytes) -}}
{{- else -}}
{{- randAlphaNum (int .alphanumeric) -}}
{{- end -}}
{{- end -}}

{{/* Where the Redis CA is mounted (inside the configuration volume). */}}
{{- define "guichet.redis.caPath" -}}
/etc/guichet/redis-ca/ca.crt
{{- end -}}

{{- define "guichet.redis.caEnabled" -}}
{{- $ca := .Values.redis.external.tls.ca -}}
{{- if and .Values.redis.external.enabled (or $ca.secretName $ca.configMapName) -}}
{{- if and $ca.secretName $ca.configMapName -}}
{{- fail "redis.external.tls.ca: set secretName or configMapName, not both" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The `session.store` block of the Guichet configuration, as YAML. */}}
{{- define "guichet.sessionStore" -}}
{{- $mode := include "guichet.redis.mode" . -}}
{{- $r := .Values.redis -}}
{{- $ext := $r.external -}}
{{- if eq $mode "memory" }}
kind: memory
{{- else }}
kind: redis
{{- if eq $mode "external-sentinel" }}
sentinel:
  master_name: {{ $ext.sentinel.masterName | quote }}
  nodes:
    {{- range $ext.sentinel.nodes }}
    - {{ . | quote }}
    {{- end }}
  {{- if or $ext.sentinel.password $ext.sentinel.existingSecret }}
  password: { env: GUICHET_REDIS_SENTINEL_PASSWORD }
  {{- end }}
  {{- if $ext.tls.enabled }}
  tls: true
  {{- end }}
  {{- if $ext.sentinel.db }}
  db: {{ int $ext.sentinel.db }}
  {{- end }}
{{- else }}
url: { env: GUICHET_REDIS_URL }
{{- end }}
{{- if $ext.enabled }}
{{- if and (or $ext.auth.username $ext.auth.existingSecretUsernameKey) (not (or $ext.auth.password $ext.auth.existingSecret)) }}
{{- fail "redis.external.auth: a username needs a password (auth.password or auth.existingSecret)" }}
{{- end }}
{{- if or $ext.auth.username $ext.auth.existingSecretUsernameKey }}
username: { env: GUICHET_REDIS_USERNAME }
{{- end }}
{{- if or $ext.auth.password $ext.auth.existingSecret }}
password: { env: GUICHET_REDIS_PASSWORD }
{{- end }}
{{- if include "guichet.redis.caEnabled" . }}
ca_file: {{ include "guichet.redis.caPath" . }}
{{- end }}
{{- end }}
encryption_key: { env: GUICHET_SESSION_KEY }
{{- if include "guichet.sessionKey.hasPrevious" . }}
previous_encryption_keys:
  - { env: GUICHET_SESSION_KEY_PREVIOUS }
{{- end }}
key_prefix: {{ $r.keyPrefix | quote }}
{{- end }}
{{- end -}}

{{- define "guichet.sessionKey.hasPrevious" -}}
{{- $k := .Values.sessionKey -}}
{{- if or (and $k.existingSecret $k.existingSecretPreviousKey) (and (not $k.existingSecret) $k.previousValue) -}}
true
{{- end -}}
{{- end -}}

{{/* The whole Guichet configuration: `config` with the chart-managed parts. */}}
{{- define "guichet.config" -}}
{{- $config := deepCopy (default dict .Values.config) -}}
{{- range $key := list "listen" "admin" -}}
{{- if hasKey $config $key -}}
{{- fail (printf "config.%s is set by the chart from containerPorts and bindAddress: remove it from config" $key) -}}
{{- end -}}
{{- end -}}
{{- $session := default dict (get $config "session") -}}
{{- if hasKey $session "store" -}}
{{- fail "config.session.store is set by the chart from the redis values: remove it from config" -}}
{{- end -}}
{{- $bind := .Values.bindAddress -}}
{{- if contains ":" $bind -}}
{{- $bind = printf "[%s]" $bind -}}
{{- end -}}
{{- $_ := set $config "listen" (list (dict "address" (printf "%s:%d" $bind (int .Values.containerPorts.http)))) -}}
{{- $_ := set $config "admin" (printf "%s:%d" $bind (int .Values.containerPorts.admin)) -}}
{{- $_ := set $session "store" (include "guichet.sessionStore" . | fromYaml) -}}
{{- $_ := set $config "session" $session -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
Whole seconds (rounded up) of a Guichet duration ("10s", "1m 30s", "500ms"); units beyond
these are left to `guichet check`.
*/}}
{{- define "guichet.durationSeconds" -}}
{{- $total := 0 -}}
{{- range regexFindAll "[0-9]+ *[a-z]+" (toString .) -1 -}}
{{- $n := regexFind "[0-9]+" . | int -}}
{{- $unit := regexFind "[a-z]+" . -}}
{{- if has $unit (list "ms" "msec" "millis") -}}
{{- $total = add $total (div (add $n 999) 1000) -}}
{{- else if has $unit (list "s" "sec" "secs" "second" "seconds") -}}
{{- $total = add $total $n -}}
{{- else if has $unit (list "m" "min" "mins" "minute" "minutes") -}}
{{- $total = add $total (mul $n 60) -}}
{{- else if has $unit (list "h" "hr" "hrs" "hour" "hours") -}}
{{- $total = add $total (mul $n 3600) -}}
{{- end -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
Refuses a grace period that cannot cover the drain: the preStop sleep, then, after SIGTERM,
every duration of config.shutdown (drain_timeout counted as 10s when unset, no less than
Guichet's default).
*/}}
{{- define "guichet.checkGracePeriod" -}}
{{- $shutdown := get (default dict .Values.config) "shutdown" -}}
{{- $shutdown = ternary $shutdown dict (kindIs "map" $shutdown) -}}
{{- $drain := 0 -}}
{{- range $key, $value := $shutdown -}}
{{- $drain = add $drain (include "guichet.durationSeconds" $value | int) -}}
{{- end -}}
{{- if not (hasKey $shutdown "drain_timeout") -}}
{{- $drain = add $drain 10 -}}
{{- end -}}
{{- $sleep := int .Values.preStop.sleepSeconds -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (add $sleep $drain) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStop.sleepSeconds (%d) + config.shutdown (%d s, drain_timeout counted as 10 s when unset): the pod would be killed before its requests finish" (int .Values.terminationGracePeriodSeconds) $sleep $drain) -}}
{{- end -}}
{{- end -}}
